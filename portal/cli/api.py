"""`flask api …`: API tokens from the command line (scripts, provisioning). `create-token`
prints only the new token on stdout, so `TOKEN=$(flask api create-token …)` works; every
refusal is one line on stderr with exit code 1. The same rules as /staff/api-tokens
(portal.domain.api_tokens): a token never has more than its operator."""
from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from portal.domain import DomainError
from portal.domain.actors import Actor
from portal.extensions import db

group = AppGroup("api", help="API tokens: create, revoke, list.")


def _operator(email: str):
    from portal.models import Operator

    operator = db.session.scalar(select(Operator).where(Operator.email == email.strip().lower()))
    if operator is None:
        raise click.ClickException(f"No operator with e-mail {email!r}.")
    return operator


def _check_locations(ids: tuple[int, ...]) -> None:
    """The rule checks a location against the operator's; one that does not exist at all is
    a typo here (the staff form offers only real ones)."""
    from portal.models import Location

    found = set(db.session.scalars(select(Location.id).where(Location.id.in_(ids)))) if ids else set()
    missing = sorted(set(ids) - found)
    if missing:
        raise click.ClickException("No location with id " + ", ".join(map(str, missing)) + ".")


@group.command("create-token")
@click.option("--operator", "email", required=True, help="The operator the token acts for (e-mail).")
@click.option("--name", required=True, help="What the token is for.")
@click.option("--right", "rights", multiple=True, help="A right of the operator's; repeat for more (at least one).")
@click.option("--location", "locations", multiple=True, type=int,
              help="A location id of the operator's; repeat for more (none: all of the operator's).")
@click.option("--expires", type=int, default=None, help="Expires after this many days (default: never).")
def create_token(email: str, name: str, rights: tuple[str, ...], locations: tuple[int, ...], expires: int | None):
    """Create a token and print it (only it: it is shown this once)."""
    from portal.domain.api_tokens import create_token as create

    operator = _operator(email)
    _check_locations(locations)
    try:
        _token, plain = create(db.session, Actor.system("cli: api create-token"), operator, name=name,
                               rights=rights, location_ids=locations, expires_in_days=expires)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(plain)


@group.command("revoke-token")
@click.argument("token_id", type=int)
def revoke_token(token_id: int):
    """Revoke a token by its id (see list-tokens)."""
    from portal.domain.api_tokens import revoke_token as revoke
    from portal.models import ApiToken

    token = db.session.get(ApiToken, token_id) if 0 < token_id <= 2**31 - 1 else None
    if token is None:
        raise click.ClickException(f"No token with id {token_id}.")
    try:
        revoke(db.session, Actor.system("cli: api revoke-token"), token)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"Token {token.id} ({token.name}, {token.prefix}…) revoked.")


def _when(value) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


@group.command("list-tokens")
@click.option("--operator", "email", default=None, help="Only this operator's tokens (e-mail).")
def list_tokens(email: str | None):
    """List tokens, newest first, one a line (tab-separated, with a header)."""
    from portal.domain.api_tokens import token_state, tokens_of

    operator = _operator(email) if email else None
    click.echo("\t".join(["id", "operator", "name", "prefix", "state", "rights", "locations", "created",
                          "expires", "last_used"]))
    for token in tokens_of(db.session, operator):
        click.echo("\t".join([
            str(token.id), token.operator.email, " ".join(token.name.split()), token.prefix, token_state(token),
            ",".join(token.rights or []), ",".join(map(str, token.location_ids or [])) or "*",
            _when(token.created_at), _when(token.expires_at), _when(token.last_used_at),
        ]))
