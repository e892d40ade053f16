"""Who acts: an operator, a customer, or the system (CLI, jobs). Domain functions take an
Actor explicitly so they can write history and audit without a request."""
from __future__ import annotations

from dataclasses import dataclass

from portal.models import ActorType


@dataclass(frozen=True)
class Actor:
    type: ActorType
    id: int | None = None
    name: str = ""
    ip: str | None = None
    request_id: str | None = None
    via: str | None = None  # the means, when not a page: an API token

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(ActorType.SYSTEM, None, name)

    @classmethod
    def operator(cls, operator, ip: str | None = None, request_id: str | None = None,
                 via: str | None = None) -> Actor:
        return cls(ActorType.OPERATOR, operator.id, operator.name, ip, request_id, via)

    @classmethod
    def customer(cls, login, ip: str | None = None, request_id: str | None = None) -> Actor:
        return cls(ActorType.CUSTOMER, login.customer_id, login.email, ip, request_id)
