"""Operators and roles: accounts of the staff, roles as sets of rights, locations, and the
operator's own second factor. Every change is audited.

The lock-out rule (`_check_admins`): after any change to operators or roles there is still at
least one active operator holding `operators.admin`, and the acting operator keeps their own
`operators.admin` and stays active — an administrator can hand the keys over, but cannot
drop them on the floor. The rule is computed on the state the change would leave, before
anything is written.

An administrator limited to some locations manages only operators within those locations
(`_check_location_grant`, `_check_reach`)."""
from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from datetime import timedelta

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.domain import DomainError, two_factor
from portal.domain.accounts import (
    create_operator,
    create_reset_token,
    ensure_rights,
    normalise_email,
)
from portal.domain.actors import Actor
from portal.domain.audit import record
from portal.models import RIGHTS, ActorType, Location, Operator, Right, Role
from portal.security.sessions import end_all_sessions

ADMIN_RIGHT = "operators.admin"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class OperatorError(DomainError):
    """An operators-and-roles rule refused the change."""


# ------------------------------------------------------------------------- the admin rule

def _check_admins(session: Session, actor: Actor, *, operator: Operator | None = None,
                  active: bool | None = None, role_ids: Iterable[int] | None = None,
                  role: Role | None = None, right_codes: Iterable[str] | None = None,
                  field: str | None = None) -> None:
    """Refuse a change that would leave no active administrator, or take the acting operator's
    own `operators.admin` (or their account) away. The change is described, not yet applied:
    `operator` with its future `active` flag and `role_ids`, or `role` with its future
    `right_codes`."""
    role_rights = {r.id: {x.code for x in r.rights} for r in session.scalars(select(Role))}
    if role is not None:
        role_rights[role.id if role.id is not None else -1] = set(right_codes or ())

    def is_admin_after(op: Operator) -> bool:
        is_active = active if (operator is not None and op is operator and active is not None) else op.active
        ids = list(role_ids) if (operator is not None and op is operator and role_ids is not None) \
            else [r.id for r in op.roles]
        return bool(is_active) and any(ADMIN_RIGHT in role_rights.get(i, set()) for i in ids)

    operators = list(session.scalars(select(Operator)))
    if operator is not None and operator not in operators:
        operators.append(operator)
    if not any(is_admin_after(op) for op in operators):
        raise OperatorError(_("At least one active operator must keep the right to manage operators."), field=field)
    if actor.type == ActorType.OPERATOR:
        me = next((op for op in operators if op.id == actor.id), None)
        if me is not None and not is_admin_after(me):
            raise OperatorError(_("You cannot take away your own right to manage operators."), field=field)


def active_admin_count(session: Session) -> int:
    return session.scalar(
        select(func.count(func.distinct(Operator.id)))
        .join(Operator.roles).join(Role.rights)
        .where(Operator.active.is_(True), Right.code == ADMIN_RIGHT)
    ) or 0


# ---------------------------------------------------------------------------------- roles

def _rights(session: Session, codes: Iterable[str]) -> list[Right]:
    codes = sorted(set(codes))
    unknown = [c for c in codes if c not in RIGHTS]
    if unknown:
        raise OperatorError(_("Unknown right: %(code)s.", code=unknown[0]), field="rights")
    catalogue = ensure_rights(session)
    return [catalogue[c] for c in codes]


def save_role(session: Session, actor: Actor, role: Role | None, *, name: str, right_codes: Iterable[str]) -> Role:
    """Create (role=None) or edit a role: a unique name and a set of rights from RIGHTS."""
    name = (name or "").strip()
    if not name:
        raise OperatorError(_("This field is required."), field="name")
    if len(name) > 100:
        raise OperatorError(_("Use at most %(n)d characters.", n=100), field="name")
    clash = session.scalar(select(Role.id).where(func.lower(Role.name) == name.lower()))
    if clash is not None and (role is None or clash != role.id):
        raise OperatorError(_("A role with this name already exists."), field="name")
    rights = _rights(session, right_codes)
    new_codes = [r.code for r in rights]
    if role is not None:
        _check_admins(session, actor, role=role, right_codes=new_codes, field="rights")
        before = {"name": role.name, "rights": sorted(r.code for r in role.rights)}
        role.name, role.rights = name, rights
    else:
        before = {}
        role = Role(name=name, rights=rights)
        session.add(role)
    session.flush()
    after = {"name": role.name, "rights": new_codes}
    changes = {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}
    if before and not changes:
        return role
    record(session, actor, "role.updated" if before else "role.created", "role", role.id, changes)
    return role


def delete_role(session: Session, actor: Actor, role: Role) -> None:
    """Delete a role; its operators lose its rights (the admin rule still holds)."""
    _check_admins(session, actor, role=role, right_codes=(), field=None)
    holders = session.scalar(select(func.count()).select_from(Operator).join(Operator.roles).where(Role.id == role.id))
    record(session, actor, "role.deleted", "role", role.id,
           {"name": [role.name, None], "rights": [sorted(r.code for r in role.rights), None], "operators": holders})
    session.delete(role)
    session.flush()


# ------------------------------------------------------------------------------ operators

def _roles(session: Session, role_ids: Iterable[int]) -> list[Role]:
    ids = sorted({int(i) for i in role_ids})
    if any(not 0 < i <= 2**31 - 1 for i in ids):
        raise OperatorError(_("Choose one of the options."), field="role_ids")
    roles = list(session.scalars(select(Role).where(Role.id.in_(ids)))) if ids else []
    if len(roles) != len(ids):
        raise OperatorError(_("Choose one of the options."), field="role_ids")
    return roles


def _locations(session: Session, location_ids: Iterable[int]) -> list[Location]:
    ids = sorted({int(i) for i in location_ids})
    if any(not 0 < i <= 2**31 - 1 for i in ids):
        raise OperatorError(_("Choose one of the options."), field="location_ids")
    locations = list(session.scalars(select(Location).where(Location.id.in_(ids)))) if ids else []
    if len(locations) != len(ids):
        raise OperatorError(_("Choose one of the options."), field="location_ids")
    return locations


def _check_location_grant(session: Session, actor: Actor, target: Operator | None,
                          locations: list[Location]) -> None:
    """An administrator limited to some locations manages only operators limited to those
    locations: they can neither give more (no locations at all means every location) nor
    edit an operator who reaches further than they do."""
    mine = _actor_locations(session, actor)
    if mine is None:
        return
    if not locations or not {loc.id for loc in locations} <= mine:
        raise OperatorError(_("Choose only among your own locations."), field="location_ids")
    _check_reach(session, actor, target, field="location_ids")


def _actor_locations(session: Session, actor: Actor) -> frozenset[int] | None:
    if actor.type != ActorType.OPERATOR:
        return None
    me = session.get(Operator, actor.id)
    return me.location_ids if me is not None else None


def _check_reach(session: Session, actor: Actor, target: Operator | None, field: str | None = None) -> None:
    """A location-limited administrator acts only on operators within their locations."""
    mine = _actor_locations(session, actor)
    if mine is None or target is None:
        return
    if target.location_ids is None or not target.location_ids <= mine:
        raise OperatorError(_("This operator works in locations you do not manage."), field=field)


def _snapshot(op: Operator) -> dict:
    return {
        "name": op.name,
        "email": op.email,
        "roles": sorted(r.name for r in op.roles),
        "locations": sorted(loc.code for loc in op.locations),
        "active": op.active,
    }


def _record_change(session: Session, actor: Actor, action: str, op: Operator, before: dict) -> dict:
    after = _snapshot(op)
    changes = {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}
    if changes:
        record(session, actor, action, "operator", op.id, changes)
    return changes


def add_operator(session: Session, actor: Actor, *, email: str, name: str, password: str | None,
                 role_ids: Iterable[int], location_ids: Iterable[int],
                 link_max_age: timedelta) -> tuple[Operator, str | None]:
    """A new operator with roles and locations (none = all). With a password, they log in with
    it; without one, they get an unusable random password and a single-use link to choose
    their own (returned as the token, for the caller to e-mail)."""
    name = (name or "").strip()
    if not name:
        raise OperatorError(_("This field is required."), field="name")
    if len(name) > 200:
        raise OperatorError(_("Use at most %(n)d characters.", n=200), field="name")
    email = normalise_email(email)
    if not _EMAIL.fullmatch(email) or len(email) > 254:
        raise OperatorError(_("Enter an e-mail address."), field="email")
    roles = _roles(session, role_ids)
    locations = _locations(session, location_ids)
    _check_location_grant(session, actor, None, locations)
    token = None
    op = create_operator(session, email, name, password or secrets.token_urlsafe(32), roles, actor)
    op.locations = locations
    session.flush()
    record(session, actor, "operator.access_set", "operator", op.id,
           {"roles": [None, sorted(r.name for r in roles)], "locations": [None, sorted(loc.code for loc in locations)]})
    if not password:
        token = create_reset_token(session, op, link_max_age, ip=actor.ip)
        record(session, actor, "operator.invited", "operator", op.id, {"email": email})
    return op, token


def update_operator(session: Session, actor: Actor, op: Operator, *, name: str, role_ids: Iterable[int],
                    location_ids: Iterable[int]) -> dict:
    """Change an operator's name, roles and locations (the admin rule holds)."""
    name = (name or "").strip()
    if not name:
        raise OperatorError(_("This field is required."), field="name")
    if len(name) > 200:
        raise OperatorError(_("Use at most %(n)d characters.", n=200), field="name")
    roles = _roles(session, role_ids)
    locations = _locations(session, location_ids)
    _check_location_grant(session, actor, op, locations)
    _check_admins(session, actor, operator=op, role_ids=[r.id for r in roles], field="role_ids")
    before = _snapshot(op)
    op.name, op.roles, op.locations = name, roles, locations
    op.__dict__.pop("_access_cache", None)
    session.flush()
    return _record_change(session, actor, "operator.updated", op, before)


def deactivate_operator(session: Session, actor: Actor, op: Operator) -> int:
    """Switch an operator off: they cannot log in, and every session of theirs ends at once.
    Not oneself, and not the last active administrator. Returns the sessions ended."""

    if not op.active:
        raise OperatorError(_("This operator is already inactive."))
    if actor.type == ActorType.OPERATOR and actor.id == op.id:
        raise OperatorError(_("You cannot deactivate yourself."))
    _check_reach(session, actor, op)
    _check_admins(session, actor, operator=op, active=False)
    op.active = False
    ended = end_all_sessions(op)
    session.flush()
    record(session, actor, "operator.deactivated", "operator", op.id, {"active": [True, False], "sessions_ended": ended})
    return ended


def reactivate_operator(session: Session, actor: Actor, op: Operator) -> None:
    if op.active:
        raise OperatorError(_("This operator is already active."))
    _check_reach(session, actor, op)
    before = _snapshot(op)
    op.active = True
    op.failed_logins = 0
    op.locked_until = None
    session.flush()
    _record_change(session, actor, "operator.reactivated", op, before)


def reset_operator_totp(session: Session, actor: Actor, op: Operator) -> None:
    """Clear an operator's second factor (a lost phone): the secret and the recovery codes go;
    their next login asks for the password only (and, where TOTP is required, sends them to
    enrol again)."""
    if op.totp_secret is None and op.totp_enabled_at is None and not op.recovery_code_hashes:
        raise OperatorError(_("This operator has no two-factor authentication to reset."))
    _check_reach(session, actor, op)
    was_on = op.totp_enabled_at is not None
    op.totp_secret = None
    op.totp_enabled_at = None
    op.recovery_code_hashes = []
    session.flush()
    record(session, actor, "operator.totp_reset", "operator", op.id, {"totp": [was_on, False]})


# ------------------------------------------------------------- an operator's own second factor

def totp_required(op: Operator, config) -> bool:
    """`OPERATOR_TOTP_REQUIRED` makes TOTP mandatory for every operator not listed (by
    e-mail) in `OPERATOR_TOTP_EXEMPT`."""
    if not config.get("OPERATOR_TOTP_REQUIRED"):
        return False
    exempt = {normalise_email(e) for e in (config.get("OPERATOR_TOTP_EXEMPT") or [])}
    return normalise_email(op.email) not in exempt


def needs_enrolment(op: Operator, config) -> bool:
    return op.totp_enabled_at is None and totp_required(op, config)


def pending_secret(op: Operator) -> str | None:
    return two_factor.pending_secret(op)


def start_totp_enrolment(session: Session, op: Operator, actor: Actor) -> str:
    """A fresh secret for the authenticator app (replacing one not yet confirmed)."""
    return two_factor.start_enrolment(session, op, actor, error=OperatorError)


def confirm_totp(session: Session, op: Operator, code: str, actor: Actor) -> list[str]:
    """The first right code turns the second factor on; returns the recovery codes (shown once)."""
    return two_factor.confirm(session, op, code, actor, error=OperatorError)


def regenerate_recovery_codes(session: Session, op: Operator, proof: str, actor: Actor) -> list[str]:
    return two_factor.regenerate_recovery_codes(session, op, proof, actor, error=OperatorError)


def disable_totp(session: Session, op: Operator, proof: str, actor: Actor, config) -> None:
    """Turn one's own second factor off — not where it is required."""
    if two_factor.enabled(op) and totp_required(op, config):
        raise OperatorError(_("Two-factor authentication is required for operators."), field="proof")
    two_factor.disable(session, op, proof, actor, error=OperatorError)
