"""Selfcare requests: the list with the new-request form, a request's page and replies."""
from __future__ import annotations

from flask import abort, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal.domain import customer_requests as requests_rules
from portal.domain.request_attachments import attach
from portal.extensions import db
from portal.models import CustomerRequest, CustomerService, RequestAttachment
from portal.selfcare import bp
from portal.selfcare.common import PER_PAGE, current_customer_id, customer_actor, customer_writes
from portal.selfcare.forms import CommentForm, NewRequestForm
from portal.web.access import customer_required, owned_or_404
from portal.web.actions import carry_out, saved
from portal.web.attachments import send_attachment, uploads_of
from portal.web.forms import choices, field_error
from portal.web.htmx import render
from portal.web.pagination import page_number, paginate


def _request_form_choices(form: NewRequestForm) -> None:
    """The services, and as new plans only the allowed plan-change targets of the chosen
    service (of the only one when the customer has one): htmx refreshes the list when the
    service changes; without JavaScript a plan of another service is refused next to the field."""
    services = requests_rules.customer_services_for_requests(db.session, current_customer_id())
    form.service_id.choices = choices([("", "—")] + [
        (s.id, s.definition.customer_name + (f" — {s.installation_address}" if s.installation_address else ""))
        for s in services
    ])
    chosen = next((s for s in services if s.id == form.service_id.data), None)
    if chosen is None and len(services) == 1:
        chosen = services[0]
    targets = requests_rules.plan_targets(chosen) if chosen is not None else []
    form.target_definition_id.choices = choices([("", "—")] + [(d.id, d.customer_name) for d in targets])


def _requests_page(form: NewRequestForm, status: int = 200, block: str | None = None):
    page = paginate(requests_rules.requests_query(current_customer_id()), page_number(request.args.get("page")), PER_PAGE)
    return render("selfcare/requests.html", block=block or ("request_form" if status != 200 else None), status=status,
                  page=page, form=form)


@bp.get("/requests")
@customer_required
def requests():
    # ?service_id=… (htmx on choosing the service, or a plain link) fills the form in,
    # so its plan list is that service's; only the form block goes back to htmx.
    form = NewRequestForm(formdata=request.args if "service_id" in request.args else None)
    _request_form_choices(form)
    return _requests_page(form, block="request_form" if "service_id" in request.args else None)


@bp.post("/requests")
@customer_writes
def request_create():
    form = NewRequestForm()
    _request_form_choices(form)
    if form.validate():
        # Another customer's service id is a 404, like any other foreign id.
        service = owned_or_404(CustomerService, form.service_id.data) if form.service_id.data is not None else None
        return carry_out(
            lambda: requests_rules.create_request(
                db.session, current_user.customer, customer_actor(), kind=form.kind.data, subject=form.subject.data,
                message=form.message.data, service=service, target_definition_id=form.target_definition_id.data,
                new_address={"street": form.new_street.data, "city": form.new_city.data,
                             "postal_code": form.new_postal_code.data},
            ),
            refused=lambda exc: _requests_page(field_error(form, exc), status=422),
            done=lambda created: saved(_("Your request has been sent. We will answer here and by e-mail."),
                                       url_for("selfcare.request_detail", request_id=created.id)))
    return _requests_page(form, status=422)


def _request_page(customer_request: CustomerRequest, form: CommentForm, status: int = 200):
    comments = requests_rules.visible_comments(db.session, customer_request)
    service = customer_request.customer_service
    return render("selfcare/request_detail.html", block="comment_form" if status != 200 else None, status=status,
                  req=customer_request, comments=comments, form=form, service=service)


@bp.get("/requests/<int:request_id>")
@customer_required
def request_detail(request_id: int):
    return _request_page(owned_or_404(CustomerRequest, request_id), CommentForm(formdata=None))


@bp.post("/requests/<int:request_id>/comments")
@customer_writes
def request_comment(request_id: int):
    customer_request = owned_or_404(CustomerRequest, request_id)
    form = CommentForm()
    if form.validate():
        def reply():
            # The files are checked before anything is written: a bad one saves nothing.
            uploads = uploads_of(form.attachments)
            comment = requests_rules.add_customer_comment(db.session, customer_request, current_user.customer,
                                                          form.body.data, customer_actor())
            attach(db.session, comment, uploads, customer_actor())
            return comment

        return carry_out(
            reply,
            refused=lambda exc: _request_page(customer_request, field_error(form, exc), status=422),
            done=lambda _result: saved(_("Your reply has been sent."),
                                       url_for("selfcare.request_detail", request_id=request_id)))
    return _request_page(customer_request, form, status=422)



@bp.get("/requests/<int:request_id>/attachments/<int:attachment_id>")
@customer_required
def request_attachment(request_id: int, attachment_id: int):
    """A file of the conversation, as a download: the customer's own, and never one on a
    staff-only note."""
    attachment = owned_or_404(RequestAttachment, attachment_id)
    if attachment.request_id != request_id or attachment.comment.internal:
        abort(404)
    return send_attachment(attachment)
