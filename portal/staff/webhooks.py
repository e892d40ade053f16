"""Staff area: webhook endpoints (right `integrations.admin`) — subscribe an HTTPS URL to event
types, see each endpoint's deliveries and replay one, rotate or delete. A secret is shown
once, in the answer to the POST that made it (never stored in a flash or a URL), with
Cache-Control: no-store."""
from __future__ import annotations

from flask import abort, current_app, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from wtforms import BooleanField, StringField
from wtforms.validators import InputRequired, Length

from portal.domain import DomainError
from portal.domain import webhooks as rules
from portal.domain.events import EVENT_TYPES
from portal.extensions import db
from portal.jobs import get_queue
from portal.models import DeliveryState, WebhookDelivery, WebhookEndpoint
from portal.models.base import utcnow
from portal.staff import bp
from portal.staff.common import get_or_404, operator_actor
from portal.web.access import requires
from portal.web.actions import carry_out, refused, saved
from portal.web.forms import EmptyForm, MultiCheckboxField, choices, field_error
from portal.web.htmx import render
from portal.web.pagination import page_number, paginate

RIGHT = "integrations.admin"
PER_PAGE = 25


class EndpointForm(FlaskForm):
    url = StringField(_l("URL"), validators=[InputRequired(), Length(max=500)],
                      description=_l("Where the events are POSTed; https:// only."),
                      render_kw={"inputmode": "url", "autocomplete": "off"})
    description = StringField(_l("Description"), validators=[Length(max=200)])
    event_types = MultiCheckboxField(_l("Event types"), choices=choices([(t, t) for t in EVENT_TYPES]),
                                     validate_choice=False)
    active = BooleanField(_l("Active"), default=True,
                          description=_l("Nothing is sent to an inactive endpoint; its pending deliveries wait."))


def _allow_http() -> bool:
    return bool(current_app.config.get("WEBHOOKS_ALLOW_HTTP_LOOPBACK"))


def _secret_page(endpoint: WebhookEndpoint, secret: str, rotated: bool):
    body, status = render("staff/webhooks/secret.html", endpoint=endpoint, secret=secret, rotated=rotated,
                          grace_until=endpoint.previous_secret_until if rotated else None)
    return body, status, {"Cache-Control": "no-store"}


@bp.get("/webhooks")
@requires(RIGHT)
def webhooks():
    endpoints = list(db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))
    counts: dict[tuple[int, str], int] = {
        (row.endpoint_id, row.state): row.n for row in db.session.execute(
            select(WebhookDelivery.endpoint_id, WebhookDelivery.state, func.count().label("n"))
            .where(WebhookDelivery.state.in_([DeliveryState.PENDING, DeliveryState.FAILED]))
            .group_by(WebhookDelivery.endpoint_id, WebhookDelivery.state))
    }
    return render("staff/webhooks/index.html", endpoints=endpoints, counts=counts)


@bp.route("/webhooks/new", methods=["GET", "POST"])
@requires(RIGHT)
def webhook_new():
    form = EndpointForm()
    if request.method == "POST":
        if form.validate():
            try:
                endpoint = rules.create_endpoint(
                    db.session, operator_actor(), url=form.url.data, description=form.description.data,
                    event_types=form.event_types.data or [], active=form.active.data,
                    allow_http_loopback=_allow_http())
            except DomainError as exc:
                db.session.rollback()
                field_error(form, exc)
            else:
                db.session.commit()
                return _secret_page(endpoint, endpoint.secret, rotated=False)
        return render("staff/webhooks/new.html", block="endpoint_form", status=422, form=form)
    return render("staff/webhooks/new.html", form=form)


def _endpoint_page(endpoint: WebhookEndpoint, form: EndpointForm, status: int = 200, block: str | None = None):
    stmt = (select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
            .options(selectinload(WebhookDelivery.event)).order_by(WebhookDelivery.id.desc()))
    page = paginate(stmt, page_number(request.args.get("page")), PER_PAGE)
    return render("staff/webhooks/detail.html", block=block, status=status, endpoint=endpoint, form=form,
                  page=page, empty_form=EmptyForm(formdata=None), now=utcnow())


@bp.route("/webhooks/<int:endpoint_id>", methods=["GET", "POST"])
@requires(RIGHT)
def webhook_detail(endpoint_id: int):
    endpoint = get_or_404(WebhookEndpoint, endpoint_id)
    if request.method == "GET":
        form = EndpointForm(obj=endpoint)
        form.event_types.data = list(endpoint.event_types)
        block = "deliveries" if request.args.get("page") else None
        return _endpoint_page(endpoint, form, block=block)
    form = EndpointForm()
    if form.validate():
        return carry_out(
            lambda: rules.update_endpoint(db.session, operator_actor(), endpoint, url=form.url.data,
                                          description=form.description.data, event_types=form.event_types.data or [],
                                          active=form.active.data, allow_http_loopback=_allow_http()),
            refused=lambda exc: _endpoint_page(endpoint, field_error(form, exc), status=422, block="endpoint_form"),
            done=lambda changes: saved(_("Saved.") if changes else _("Nothing changed."),
                                       url_for("staff.webhook_detail", endpoint_id=endpoint.id), htmx_form=True))
    return _endpoint_page(endpoint, form, status=422, block="endpoint_form")


@bp.post("/webhooks/<int:endpoint_id>/rotate")
@requires(RIGHT)
def webhook_rotate(endpoint_id: int):
    endpoint = get_or_404(WebhookEndpoint, endpoint_id)
    if not EmptyForm().validate():
        abort(400)
    secret = rules.rotate_secret(db.session, operator_actor(), endpoint)
    db.session.commit()
    return _secret_page(endpoint, secret, rotated=True)


@bp.route("/webhooks/<int:endpoint_id>/delete", methods=["GET", "POST"])
@requires(RIGHT)
def webhook_delete(endpoint_id: int):
    """GET asks (works without JavaScript); POST deletes."""
    endpoint = get_or_404(WebhookEndpoint, endpoint_id)
    if request.method == "GET":
        return render("staff/webhooks/delete.html", endpoint=endpoint, empty_form=EmptyForm(formdata=None))
    if not EmptyForm().validate():
        abort(400)
    url = endpoint.url
    return carry_out(lambda: rules.delete_endpoint(db.session, operator_actor(), endpoint),
                     refused=lambda exc: refused(exc, url_for("staff.webhook_detail", endpoint_id=endpoint_id)),
                     done=lambda _r: saved(_("Endpoint %(url)s deleted.", url=url), url_for("staff.webhooks")))


@bp.post("/webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>/replay")
@requires(RIGHT)
def webhook_replay(endpoint_id: int, delivery_id: int):
    delivery = get_or_404(WebhookDelivery, delivery_id)
    if delivery.endpoint_id != endpoint_id:
        abort(404)
    if not EmptyForm().validate():
        abort(400)
    page = url_for("staff.webhook_detail", endpoint_id=endpoint_id)

    def done(_delivery):
        get_queue().run_periodic_soon("webhooks_deliver")  # a pass now, not at the next minute
        return saved(_("The delivery will be sent again within a minute."), page)

    return carry_out(lambda: rules.replay_delivery(db.session, operator_actor(), delivery),
                     refused=lambda exc: refused(exc, page), done=done)
