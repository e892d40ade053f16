"""`flask portal …`: set-up and administration."""
from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from portal.domain import DomainError
from portal.domain.actors import Actor
from portal.extensions import db

group = AppGroup("portal", help="Set-up and administration of the portal.")


@group.command("demo-data")
@click.option("--customers", default=200, show_default=True, help="How many customers to create.")
@click.option("--seed", default=42, show_default=True, help="Random seed: the same seed gives the same data.")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database already has customers.")
def demo_data(customers: int, seed: int, if_empty: bool):
    """Load realistic, deterministic demo data (see README for the demo logins)."""
    from portal.demo import load_demo_data
    from portal.models import Customer

    if if_empty and db.session.scalar(select(func.count(Customer.id))):
        click.echo("Database already has data; demo data not loaded.")
        return
    import logging

    # The demo sends hundreds of reminder e-mails into the outbox; don't list each one.
    logging.getLogger("portal.mail").setLevel(logging.WARNING)
    summary = load_demo_data(db.session, customers=customers, seed=seed, progress=click.echo)
    db.session.commit()
    click.echo(summary)


@group.command("create-operator")
@click.option("--email", prompt=True)
@click.option("--name", prompt=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--admin/--no-admin", default=True, show_default=True, help="Give the operator every right.")
def create_operator(email: str, name: str, password: str, admin: bool):
    """Create a staff operator."""
    from portal.domain.accounts import create_operator as make
    from portal.domain.accounts import ensure_admin_role, ensure_rights

    ensure_rights(db.session)
    roles = [ensure_admin_role(db.session)] if admin else []
    try:
        op = make(db.session, email, name, password, roles, Actor.system("cli"))
    except DomainError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"Operator {op.email} created (id {op.id}).")


@group.command("create-customer-login")
@click.option("--customer-number", prompt=True, help="The customer's number.")
@click.option("--email", prompt=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def create_customer_login(customer_number: str, email: str, password: str):
    """Create a selfcare login for an existing customer."""
    from portal.domain.accounts import create_customer_login as make
    from portal.models import Customer

    customer = db.session.scalar(select(Customer).where(Customer.customer_number == customer_number.strip()))
    if customer is None:
        raise click.ClickException(f"No customer with number {customer_number!r}.")
    try:
        login = make(db.session, customer, email, password, Actor.system("cli"))
    except DomainError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"Login {login.email} created for {customer.display_name} ({customer.customer_number}).")

