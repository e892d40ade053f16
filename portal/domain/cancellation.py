"""A customer cancels a contract themselves: logged in, or logged out through a link e-mailed
to an address we already know for them (domain.md §3 "Cancellation").

The rules:
- Only the customer's own services that are not cancelled and have no cancellation or plan
  change scheduled may be cancelled.
- The end date is at least the earliest end date: max(today + notice days, end of the
  commitment) (`lifecycle.earliest_end_date`); staff may waive that, the customer may not.
- Confirming schedules the cancellation for that date (`lifecycle.cancel`), opens a
  cancellation request for staff, stores a PDF confirmation and e-mails it at once.
- Logged out, the customer proves who they are by knowing their customer number and being
  able to read one of their e-mail addresses (a contact or a login); the answer to the form
  is the same whether or not the details match, so it tells a stranger nothing.

The request is created in state `new` (not `resolved`): the cancellation itself is already
scheduled — its payload says so (`scheduled: true`), so staff must not carry it out again —
but staff still have work to do on it (collect equipment, the final invoice, perhaps a call),
and a `new` request is what lands in their queue. They resolve it when that is done.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from flask_babel import force_locale
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from portal.documents import document_for, read_document
from portal.domain import DomainError, lifecycle
from portal.domain.actors import Actor
from portal.domain.audit import record
from portal.domain.wording import day
from portal.mail import send_email
from portal.models import (
    ActorType,
    Contact,
    ContactKind,
    Customer,
    CustomerLogin,
    CustomerRequest,
    CustomerService,
    DocumentKind,
    RequestComment,
    RequestKind,
    RequestState,
    ServiceEvent,
    ServiceEventKind,
    ServiceState,
    StoredDocument,
)

LINK_SALT = "selfcare-cancellation-link"
LINK_MAX_AGE = 24 * 3600  # seconds: the e-mailed link works for a day
REASON = "Cancelled by the customer in selfcare"


class CancellationRefused(DomainError):
    """The service cannot be cancelled by the customer (not theirs, already cancelled…)."""


@dataclass
class CancellationDone:
    service: CustomerService
    event: ServiceEvent
    request: CustomerRequest
    document: StoredDocument
    end_date: date
    emailed_to: str | None


# -- who is asking -----------------------------------------------------------------------------


def _normalise_email(email: str | None) -> str:
    return (email or "").strip().lower()


def customer_emails(session: Session, customer_id: int) -> set[str]:
    """Every e-mail address we know for the customer: e-mail contacts and selfcare logins,
    lower-cased."""
    contacts = session.scalars(
        select(Contact.value).where(Contact.customer_id == customer_id, Contact.kind == ContactKind.EMAIL)
    )
    logins = session.scalars(select(CustomerLogin.email).where(CustomerLogin.customer_id == customer_id))
    return {_normalise_email(e) for e in [*contacts, *logins] if e}


def identify(session: Session, customer_number: str, email: str) -> Customer | None:
    """The customer with this number whose e-mail addresses include `email`, else None (the
    caller answers the same either way)."""
    number = (customer_number or "").strip()
    wanted = _normalise_email(email)
    if not number or not wanted:
        return None
    customer = session.scalar(select(Customer).where(func.upper(Customer.customer_number) == number.upper()))
    if customer is None or wanted not in customer_emails(session, customer.id):
        return None
    return customer


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=LINK_SALT)


def make_link_token(secret_key: str, customer: Customer, email: str) -> str:
    """A signed token naming the customer and the address the link was sent to."""
    return _serializer(secret_key).dumps({"c": customer.id, "e": _normalise_email(email)})


def read_link_token(session: Session, secret_key: str, token: str,
                    max_age: int = LINK_MAX_AGE) -> tuple[Customer, str] | None:
    """(customer, e-mail) for a valid, unexpired token whose address still belongs to the
    customer; None otherwise."""
    try:
        data = _serializer(secret_key).loads(token, max_age=max_age)
    except (SignatureExpired, BadSignature):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("c"), int) or not isinstance(data.get("e"), str):
        return None
    customer = session.get(Customer, data["c"])
    if customer is None or data["e"] not in customer_emails(session, customer.id):
        return None
    return customer, data["e"]


def send_link(session: Session, customer: Customer, email: str, link: str) -> None:
    """E-mail the cancellation link to `email` (one of the customer's addresses)."""
    email = _normalise_email(email)
    _mail(customer, email, lambda: _("Your link to cancel a contract"), "cancellation_link", link=link,
          hours=LINK_MAX_AGE // 3600)
    record(session, Actor(ActorType.CUSTOMER, customer.id, _normalise_email(email)), "cancellation.link_sent",
           "customer", customer.id, {"to": _normalise_email(email)}, customer_id=customer.id)


# -- what may be cancelled, and when -----------------------------------------------------------


def _has_pending_end(service: CustomerService) -> bool:
    return any(e.kind in (ServiceEventKind.CANCELLED, ServiceEventKind.CHANGED)
               for e in lifecycle.pending_events(service))


def cancellable_services(session: Session, customer_id: int) -> list[CustomerService]:
    """The customer's services that may be cancelled: not cancelled, nothing scheduled that
    ends them already."""
    services = session.scalars(
        select(CustomerService)
        .options(selectinload(CustomerService.definition), selectinload(CustomerService.events))
        .where(CustomerService.customer_id == customer_id, CustomerService.state != ServiceState.CANCELLED)
        .order_by(CustomerService.id)
    ).all()
    return [s for s in services if not _has_pending_end(s)]


def cancellable_service(session: Session, customer_id: int, service_id: int | None) -> CustomerService | None:
    """One of `cancellable_services`, or None (another customer's, cancelled, unknown)."""
    return next((s for s in cancellable_services(session, customer_id) if s.id == service_id), None)


def earliest_end(service: CustomerService, today: date | None = None) -> date:
    return lifecycle.earliest_end_date(service, today or date.today())


# -- doing it ----------------------------------------------------------------------------------


def cancel_by_customer(session: Session, service: CustomerService, *, end_date: date, actor: Actor,
                       email: str | None, today: date | None = None) -> CancellationDone:
    """Schedule the cancellation of `service` on `end_date` (≥ the earliest end date), open a
    cancellation request for staff, store the PDF confirmation and e-mail it to `email`.
    Errors name the field: `end_date` or `service_id`."""
    today = today or date.today()
    if service.state == ServiceState.CANCELLED or _has_pending_end(service):
        raise CancellationRefused(_("This service is already cancelled or its end is already scheduled."),
                                  field="service_id")
    earliest = lifecycle.earliest_end_date(service, today)
    if end_date < earliest:
        raise CancellationRefused(_("The earliest possible end date is %(day)s.", day=day(earliest)), field="end_date")
    try:
        event = lifecycle.cancel(session, service, actor=actor, on=end_date, reason=REASON, today=today)
    except DomainError as exc:
        raise CancellationRefused(str(exc), field="end_date" if exc.field == "on" else None) from exc

    name = service.definition.customer_name or service.definition.name
    payload = {"service_id": service.id, "end_date": end_date.isoformat(), "event_id": event.id,
               "scheduled": True, "requested_by": "customer", "confirmation_sent_to": email}
    request = CustomerRequest(
        customer_id=service.customer_id, kind=RequestKind.CANCELLATION, state=RequestState.NEW,
        subject=f"Cancellation of {name}"[:200], customer_service_id=service.id, payload=payload,
        created_by_type=ActorType.CUSTOMER, created_by_id=service.customer_id,
    )
    session.add(request)
    session.flush()
    session.add(RequestComment(
        request_id=request.id, author_type=ActorType.CUSTOMER, author_id=service.customer_id,
        author_name=service.customer.display_name[:200], internal=False,
        body=f"I cancel {name} with the end date {end_date.isoformat()}.",
    ))
    document = document_for(session, DocumentKind.CANCELLATION_CONFIRMATION, service)
    record(session, actor, "cancellation.confirmed", "customer_service", service.id,
           {"end_date": [None, end_date], "request_id": [None, request.id], "document_id": [None, document.id],
            "emailed_to": [None, email]},
           customer_id=service.customer_id)
    if email:
        _mail(service.customer, email, lambda: _("Cancellation of %(name)s confirmed", name=name),
              "cancellation_confirmation",
              attachments=[(document.file_name, "application/pdf", read_document(document))],
              service=service, service_name=name, end_date=end_date, request=request)
    session.flush()
    return CancellationDone(service, event, request, document, end_date, email)


def _mail(customer: Customer, to: str, subject, template: str, **context) -> None:
    """In the customer's language (`subject` is called inside it); a failed delivery is
    recorded on the e-mail row, not raised."""
    lang = customer.language.value if customer.language else None
    with force_locale(lang):
        send_email(to, subject(), template, customer_id=customer.id, customer=customer, **context)
