"""Job parameters and results as JSON: the actor who asked, dates, decimals, dataclasses."""
from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from portal.domain.actors import Actor
from portal.models import ActorType


def actor_to_params(actor: Actor) -> dict[str, Any]:
    return {
        "type": str(actor.type),
        "id": actor.id,
        "name": actor.name,
        "ip": actor.ip,
        "request_id": actor.request_id,
        "via": actor.via,
    }


def actor_from_params(data: dict[str, Any] | None) -> Actor:
    if not data:
        return Actor.system("jobs")
    return Actor(
        ActorType(data["type"]), data.get("id"), data.get("name") or "", data.get("ip"), data.get("request_id"),
        data.get("via"),
    )


# --- JSON -------------------------------------------------------------------------------------


def to_json_safe(value: Any, *, strict: bool) -> Any:
    """Dates → ISO strings, decimals → strings, enums → values, dataclasses → dicts, model
    objects → their id. `strict` refuses anything else (parameters); otherwise it becomes its
    string (results: never lose a finished job over a stray object)."""

    def default(o: Any) -> Any:
        if isinstance(o, datetime | date):
            return o.isoformat()
        if isinstance(o, Decimal):
            return str(o)
        if isinstance(o, Enum):
            return o.value
        if isinstance(o, set | frozenset):
            return sorted(o, key=str)
        if isinstance(o, Path):
            return str(o)
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return {f.name: getattr(o, f.name) for f in dataclasses.fields(o)}
        if hasattr(o, "__mapper__") and hasattr(o, "id"):
            return o.id
        if strict:
            raise TypeError(f"job parameters must be JSON: {type(o).__name__} is not")
        return str(o)

    return json.loads(json.dumps(value, default=default))
