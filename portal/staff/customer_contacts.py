"""Staff customers: a customer's contacts and addresses — add, edit, remove (each from the
customer's edit page, which shows them)."""
from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from portal.domain import DomainError
from portal.domain import customers as rules
from portal.extensions import db
from portal.models import Contact, CustomerAddress
from portal.staff import bp
from portal.staff.common import operator_actor, scoped_customer_or_404
from portal.staff.customer_forms import (
    ActionForm,
    build_address_form,
    build_contact_form,
    edit_page,
)
from portal.web.access import requires
from portal.web.actions import carry_out, saved
from portal.web.forms import field_error
from portal.web.htmx import render


def _own_or_404(model, customer, ident):
    row = db.session.scalar(select(model).where(model.id == ident, model.customer_id == customer.id))
    if row is None:
        abort(404)
    return row


def _edit_url(customer_id: int, section: str) -> str:
    return url_for("staff.customer_edit", customer_id=customer_id) + "#" + section


@bp.post("/customers/<int:customer_id>/contacts")
@requires("customers.read", "customers.write")
def customer_contact_add(customer_id: int):
    customer = scoped_customer_or_404(customer_id)
    form = build_contact_form(formdata=request.form)
    if form.validate():
        return carry_out(
            lambda: rules.add_contact(db.session, operator_actor(), customer, kind=form.kind.data,
                                      value=form.value.data, purpose=form.purpose.data, primary=form.primary.data),
            refused=lambda exc: edit_page(scoped_customer_or_404(customer_id), contact_form=field_error(form, exc),
                                          status=422),
            done=lambda _result: saved(_("Contact added."), _edit_url(customer_id, "contacts"), code=303))
    return edit_page(scoped_customer_or_404(customer_id), contact_form=form, status=422)


@bp.route("/customers/<int:customer_id>/contacts/<int:contact_id>", methods=["GET", "POST"])
@requires("customers.read", "customers.write")
def customer_contact_edit(customer_id: int, contact_id: int):
    customer = scoped_customer_or_404(customer_id)
    contact = _own_or_404(Contact, customer, contact_id)
    form = build_contact_form(contact, formdata=request.form if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if form.validate():
            def refused(exc):
                customer = scoped_customer_or_404(customer_id)
                return render("staff/customers/contact.html", status=422, customer=customer,
                              contact=_own_or_404(Contact, customer, contact_id), form=field_error(form, exc))

            return carry_out(
                lambda: rules.update_contact(db.session, operator_actor(), contact, value=form.value.data,
                                             purpose=form.purpose.data, primary=form.primary.data),
                refused=refused,
                done=lambda _result: saved(_("Contact saved."), _edit_url(customer_id, "contacts"), code=303))
        status = 422
        customer = scoped_customer_or_404(customer_id)
        contact = _own_or_404(Contact, customer, contact_id)
    return render("staff/customers/contact.html", status=status, customer=customer, contact=contact, form=form)


@bp.post("/customers/<int:customer_id>/contacts/<int:contact_id>/remove")
@requires("customers.read", "customers.write")
def customer_contact_remove(customer_id: int, contact_id: int):
    customer = scoped_customer_or_404(customer_id)
    contact = _own_or_404(Contact, customer, contact_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        rules.remove_contact(db.session, operator_actor(), contact)
    except DomainError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return edit_page(scoped_customer_or_404(customer_id), status=422)
    db.session.commit()
    flash(_("Contact removed."), "success")
    return redirect(url_for("staff.customer_edit", customer_id=customer.id) + "#contacts", 303)


@bp.post("/customers/<int:customer_id>/addresses")
@requires("customers.read", "customers.write")
def customer_address_add(customer_id: int):
    customer = scoped_customer_or_404(customer_id)
    form = build_address_form(formdata=request.form)
    if form.validate():
        return carry_out(
            lambda: rules.add_address(db.session, operator_actor(), customer, form.data),
            refused=lambda exc: edit_page(scoped_customer_or_404(customer_id), address_form=field_error(form, exc),
                                          status=422),
            done=lambda _result: saved(_("Address added."), _edit_url(customer_id, "addresses"), code=303))
    return edit_page(scoped_customer_or_404(customer_id), address_form=form, status=422)


@bp.route("/customers/<int:customer_id>/addresses/<int:address_id>", methods=["GET", "POST"])
@requires("customers.read", "customers.write")
def customer_address_edit(customer_id: int, address_id: int):
    customer = scoped_customer_or_404(customer_id)
    address = _own_or_404(CustomerAddress, customer, address_id)
    form = build_address_form(address, formdata=request.form if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if form.validate():
            def refused(exc):
                customer = scoped_customer_or_404(customer_id)
                return render("staff/customers/address.html", status=422, customer=customer,
                              address=_own_or_404(CustomerAddress, customer, address_id), form=field_error(form, exc))

            return carry_out(
                lambda: rules.update_address(db.session, operator_actor(), address, form.data),
                refused=refused,
                done=lambda _result: saved(_("Address saved."), _edit_url(customer_id, "addresses"), code=303))
        status = 422
        customer = scoped_customer_or_404(customer_id)
        address = _own_or_404(CustomerAddress, customer, address_id)
    return render("staff/customers/address.html", status=status, customer=customer, address=address, form=form)


@bp.post("/customers/<int:customer_id>/addresses/<int:address_id>/remove")
@requires("customers.read", "customers.write")
def customer_address_remove(customer_id: int, address_id: int):
    customer = scoped_customer_or_404(customer_id)
    address = _own_or_404(CustomerAddress, customer, address_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    rules.remove_address(db.session, operator_actor(), address)
    db.session.commit()
    flash(_("Address removed."), "success")
    return redirect(url_for("staff.customer_edit", customer_id=customer.id) + "#addresses", 303)

