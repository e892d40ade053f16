"""Staff area: IP pools per location (list, create, edit; right catalogue.write to change,
customers.read to see) and a service's network section (set up access, regenerate the
password, set the MAC, assign or release an address; right services.lifecycle). Every change
goes through portal.domain.network, which audits it and writes the provisioning outbox."""
from __future__ import annotations

from flask import abort, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectField, StringField
from wtforms.validators import InputRequired, Length, Optional

from portal.domain import DomainError
from portal.domain import network as rules
from portal.extensions import db
from portal.models import IpPool, Location
from portal.staff import bp
from portal.staff.common import get_or_404, operator_actor
from portal.staff.services import scoped_service_or_404
from portal.web.access import in_operator_locations, requires
from portal.web.actions import carry_out, refused, saved
from portal.web.forms import EmptyForm, choices, field_error, int_or_none
from portal.web.htmx import render


class PoolForm(FlaskForm):
    location = SelectField(_l("Location"), coerce=int_or_none, validate_choice=False,
                           validators=[InputRequired(message=_l("Choose a location."))])
    name = StringField(_l("Name"), validators=[InputRequired(message=_l("Give the pool a name.")), Length(max=100)])
    cidr = StringField(_l("Network (CIDR)"), validators=[InputRequired(message=_l("Enter the network.")),
                                                         Length(max=43)],
                       description=_l("For example 100.64.0.0/24; the network and broadcast addresses are left out."),
                       render_kw={"autocomplete": "off", "spellcheck": "false"})
    note = StringField(_l("Note"), validators=[Optional(), Length(max=300)])


class MacForm(FlaskForm):
    mac_address = StringField(_l("MAC address"), validators=[Optional(), Length(max=17)],
                              description=_l("Empty: none."), render_kw={"autocomplete": "off"})


class AddressForm(FlaskForm):
    ip_pool = SelectField(_l("Pool"), coerce=int_or_none, validate_choice=False)
    ip_address = StringField(_l("Static address"), validators=[Optional(), Length(max=15)],
                             description=_l("Empty: the pool's first free address."),
                             render_kw={"autocomplete": "off", "inputmode": "decimal"})


def _locations():
    return list(db.session.execute(in_operator_locations(select(Location.id, Location.name).order_by(Location.name),
                                                         Location.id)))


def _scoped_pool_or_404(pool_id: int) -> IpPool:
    pool = get_or_404(IpPool, pool_id)
    ids = current_user.location_ids
    if ids is not None and pool.location_id not in ids:
        abort(404)
    return pool


def _pool_form(formdata=None, obj=None) -> PoolForm:
    form = PoolForm(formdata=formdata, obj=obj)
    if obj is not None and formdata is None:
        form.location.data = obj.location_id
    form.location.choices = choices([(None, _("Choose…"))] + [(r.id, r.name) for r in _locations()])
    return form


@bp.get("/ip-pools")
@requires("customers.read")
def ip_pools():
    pools = list(db.session.scalars(in_operator_locations(select(IpPool).order_by(IpPool.name), IpPool.location_id)))
    usage = {p.id: rules.pool_usage(db.session, p) for p in pools}
    return render("staff/network/pools.html", pools=pools, usage=usage,
                  can_edit=current_user.has_right("catalogue.write"))


def _save_pool(form: PoolForm, pool: IpPool | None):
    allowed = {r.id for r in _locations()}
    if form.location.data not in allowed:
        form.location.errors = [*form.location.errors, _("Choose a location.")]
        return None
    return rules.save_pool(db.session, actor=operator_actor(), location=db.session.get(Location, form.location.data),
                           name=form.name.data, cidr=form.cidr.data, note=form.note.data or "", pool=pool)


@bp.route("/ip-pools/new", methods=["GET", "POST"])
@bp.route("/ip-pools/<int:pool_id>", methods=["GET", "POST"])
@requires("catalogue.write")
def ip_pool_edit(pool_id: int | None = None):
    pool = _scoped_pool_or_404(pool_id) if pool_id is not None else None
    if request.method == "GET":
        return render("staff/network/pool.html", form=_pool_form(obj=pool), pool=pool)
    form = _pool_form(request.form)
    if form.validate():
        result = carry_out(lambda: _save_pool(form, pool),
                           refused=lambda exc: field_error(form, exc),
                           done=lambda saved_pool: saved_pool)
        if isinstance(result, IpPool):
            return saved(_("Pool %(name)s saved.", name=result.name), url_for("staff.ip_pools"), htmx_form=True)
    return render("staff/network/pool.html", block="pool_form", status=422, form=form, pool=pool)


# -- a service's network section ---------------------------------------------------------------


def _service_and_identity(service_id: int, need_identity: bool = True):
    service = scoped_service_or_404(service_id)
    if not EmptyForm().validate():
        abort(400)
    identity = rules.identity_of(db.session, service)
    if need_identity and identity is None:
        abort(404)
    return service, identity


def _back(service_id: int) -> str:
    return url_for("staff.service_detail", service_id=service_id) + "#network-heading"


@bp.post("/services/<int:service_id>/network/setup")
@requires("services.lifecycle")
def service_network_setup(service_id: int):
    service, _identity = _service_and_identity(service_id, need_identity=False)
    return carry_out(lambda: rules.create_identity(db.session, service, actor=operator_actor()),
                     refused=lambda exc: refused(exc, _back(service_id)),
                     done=lambda _r: saved(_("Network access set up."), _back(service_id)))


@bp.post("/services/<int:service_id>/network/password")
@requires("services.lifecycle")
def service_network_password(service_id: int):
    _service, identity = _service_and_identity(service_id)
    return carry_out(lambda: rules.regenerate_password(db.session, identity, actor=operator_actor()),
                     refused=lambda exc: refused(exc, _back(service_id)),
                     done=lambda _r: saved(_("A new password was generated; the network is being told."),
                                           _back(service_id)))


@bp.post("/services/<int:service_id>/network/mac")
@requires("services.lifecycle")
def service_network_mac(service_id: int):
    _service, identity = _service_and_identity(service_id)
    form = MacForm()
    return carry_out(lambda: rules.set_mac(db.session, identity, form.mac_address.data or "", actor=operator_actor()),
                     refused=lambda exc: refused(exc, _back(service_id)),
                     done=lambda _r: saved(_("MAC address saved."), _back(service_id)))


@bp.post("/services/<int:service_id>/network/address")
@requires("services.lifecycle")
def service_network_address(service_id: int):
    service, identity = _service_and_identity(service_id)
    form = AddressForm()
    pool = None
    if form.ip_pool.data is not None:
        pool = db.session.get(IpPool, form.ip_pool.data)
        if pool is None or pool.location_id != service.customer.location_id:
            return refused(DomainError(_("Choose a pool of the customer's location.")), _back(service_id))
    return carry_out(lambda: rules.assign_address(db.session, identity, actor=operator_actor(), pool=pool,
                                                  address=form.ip_address.data or ""),
                     refused=lambda exc: refused(exc, _back(service_id)),
                     done=lambda ip: saved(_("Address %(ip)s assigned.", ip=ip), _back(service_id)))


@bp.post("/services/<int:service_id>/network/release")
@requires("services.lifecycle")
def service_network_release(service_id: int):
    _service, identity = _service_and_identity(service_id)
    return carry_out(lambda: rules.release_address(db.session, identity, actor=operator_actor()),
                     refused=lambda exc: refused(exc, _back(service_id)),
                     done=lambda _r: saved(_("Address released."), _back(service_id)))
