"""Staff area: customers — live search and list (CSV too), create and edit, groups, the
customer page with its tabs, and "view as customer". Contacts and addresses are in
customer_contacts.py, the forms in customer_forms.py."""
from __future__ import annotations

from datetime import date

from flask import abort, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from portal.domain import DomainError
from portal.domain import customers as rules
from portal.domain.payments import credited_expr, invoice_due
from portal.extensions import db
from portal.models import (
    Agreement,
    AuditEntry,
    ContactKind,
    Customer,
    CustomerGroup,
    CustomerKind,
    CustomerRequest,
    CustomerService,
    Invoice,
    Payment,
)
from portal.security.sessions import current_auth_session, start_impersonation
from portal.staff import bp
from portal.staff.common import csv_response, operator_actor, scoped_customer_or_404, wants_csv
from portal.staff.customer_forms import (
    ActionForm,
    CustomerFilterForm,
    CustomerForm,
    GroupForm,
    address_labels,
    allowed_locations,
    build_customer_form,
    edit_page,
    kind_labels,
    purpose_labels,
    selfcare_access_context,
)
from portal.web.access import in_operator_locations, requires
from portal.web.actions import carry_out, saved
from portal.web.forms import choices, field_error
from portal.web.htmx import is_htmx, render
from portal.web.pagination import Page, page_number, paginate

PER_PAGE = 25
TAB_PER_PAGE = 20


# ---------------------------------------------------------------------------------- list

def _filters(form: CustomerFilterForm) -> rules.CustomerFilters:
    state = {"active": True, "inactive": False}.get(form.state.data or "")
    try:
        kind = CustomerKind(form.kind.data) if form.kind.data else None
    except ValueError:
        kind = None
    return rules.CustomerFilters(query=(form.q.data or "").strip()[:rules.SEARCH_MAX_LENGTH],
                                 location_id=form.location.data, active=state, kind=kind,
                                 group_id=form.group.data)


CSV_HEADER = ["customer_number", "name", "kind", "company_id", "vat_id", "street", "city", "postal_code", "country",
              "location", "email", "phone", "variable_symbol", "active"]


def _csv_rows(stmt):
    rows = db.session.scalars(stmt.options(joinedload(Customer.location), selectinload(Customer.contacts))
                              .execution_options(yield_per=500))
    for c in rows:
        email = rules.primary_contact(c, ContactKind.EMAIL)
        phone = rules.primary_contact(c, ContactKind.PHONE)
        yield [c.customer_number, c.display_name, c.kind, c.company_id, c.vat_id, c.street, c.city, c.postal_code,
               c.country, c.location.code, email.value if email else "", phone.value if phone else "",
               c.variable_symbol, "yes" if c.active else "no"]


@bp.get("/customers")
@requires("customers.read")
def customers():
    form = CustomerFilterForm(request.args)
    locations = allowed_locations()
    if not is_htmx():
        # The filter form is shown on the full page only: live search renders the results
        # block, and reading the fields' data needs no choices.
        form.location.choices = choices([("", _("All locations"))] + [(loc.id, loc.name) for loc in locations])
        form.state.choices = choices([("", _("Active and inactive")), ("active", _("Active")),
                                      ("inactive", _("Inactive"))])
        form.kind.choices = choices([("", _("People and companies"))] + list(kind_labels().items()))
        groups = list(db.session.scalars(select(CustomerGroup).order_by(CustomerGroup.name)))
        form.group.choices = choices([("", _("Any group"))] + [(g.id, g.name) for g in groups])
    filters = _filters(form)
    if wants_csv():
        stmt = rules.search_statement(filters, current_user.location_ids)
        return csv_response(f"customers-{date.today().isoformat()}.csv", CSV_HEADER, _csv_rows(stmt))
    page_no = page_number(request.args.get("page"))
    found = rules.search_customers(db.session, filters.query, current_user.location_ids, limit=PER_PAGE,
                                   offset=(page_no - 1) * PER_PAGE, filters=filters)
    page = Page(items=found.items, page=page_no, per_page=PER_PAGE, total=found.total)
    params = {k: v for k, v in request.args.items() if k in ("q", "location", "state", "kind", "group") and v}
    return render("staff/customers/list.html", block="results", form=form, page=page, params=params,
                  show_location=len(locations) > 1, email_kind=ContactKind.EMAIL, phone_kind=ContactKind.PHONE,
                  contacts=found.contacts, can_write=current_user.has_right("customers.write"))


# ---------------------------------------------------------------------------------- create / edit

@bp.route("/customers/new", methods=["GET", "POST"])
@requires("customers.read", "customers.write")
def customer_new():
    form = build_customer_form(formdata=request.form if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if form.validate():
            return carry_out(
                lambda: rules.create_customer(db.session, operator_actor(), _form_data(form),
                                              location_ids=current_user.location_ids),
                refused=lambda exc: render("staff/customers/form.html", status=422, form=field_error(form, exc),
                                           customer=None),
                done=lambda customer: saved(_("Customer %(number)s created.", number=customer.customer_number),
                                            url_for("staff.customer_detail", customer_id=customer.id), code=303))
        status = 422
    return render("staff/customers/form.html", status=status, form=form, customer=None)


def _form_data(form: CustomerForm) -> dict:
    data = {name: getattr(form, name).data for name in rules.CUSTOMER_FIELDS if hasattr(form, name)}
    data["group_ids"] = form.group_ids.data or []
    data["customer_number"] = form.customer_number.data
    data["variable_symbol"] = form.variable_symbol.data
    return data



@bp.route("/customers/<int:customer_id>/edit", methods=["GET", "POST"])
@requires("customers.read", "customers.write")
def customer_edit(customer_id: int):
    customer = scoped_customer_or_404(customer_id)
    if request.method == "GET":
        return edit_page(customer)
    form = build_customer_form(customer, formdata=request.form)
    if form.validate():
        return carry_out(
            lambda: rules.update_customer(db.session, operator_actor(), customer, _form_data(form),
                                          location_ids=current_user.location_ids),
            refused=lambda exc: edit_page(scoped_customer_or_404(customer_id), form=field_error(form, exc), status=422),
            done=lambda changes: saved(_("Customer saved.") if changes else _("Nothing changed."),
                                       url_for("staff.customer_detail", customer_id=customer_id), code=303,
                                       category="success" if changes else "info"))
    return edit_page(scoped_customer_or_404(customer_id), form=form, status=422)


# ---------------------------------------------------------------------------------- groups

def _groups_page(form=None, status=200):
    rows = rules.groups_with_counts(db.session, current_user.location_ids)
    if wants_csv():
        return csv_response("customer-groups.csv", ["name", "description", "customers"],
                            [(g.name, g.description, n) for g, n in rows])
    return render("staff/customers/groups.html", status=status, rows=rows, form=form or GroupForm(),
                  can_write=current_user.has_right("customers.write"))


@bp.get("/customers/groups")
@requires("customers.read")
def customer_groups():
    return _groups_page()


@bp.post("/customers/groups")
@requires("customers.read", "customers.write")
def customer_group_create():
    form = GroupForm()
    if form.validate():
        return carry_out(
            lambda: rules.create_group(db.session, operator_actor(), name=form.name.data,
                                       description=form.description.data),
            refused=lambda exc: _groups_page(form=field_error(form, exc), status=422),
            done=lambda _result: saved(_("Group created."), url_for("staff.customer_groups"), code=303))
    return _groups_page(form=form, status=422)


@bp.route("/customers/groups/<int:group_id>", methods=["GET", "POST"])
@requires("customers.read", "customers.write")
def customer_group_edit(group_id: int):
    group = db.session.get(CustomerGroup, group_id) or abort(404)
    form = GroupForm(formdata=request.form if request.method == "POST" else None, obj=group)
    status = 200
    if request.method == "POST":
        if form.validate():
            return carry_out(
                lambda: rules.update_group(db.session, operator_actor(), group, name=form.name.data,
                                           description=form.description.data),
                refused=lambda exc: render("staff/customers/group.html", status=422,
                                           group=db.session.get(CustomerGroup, group_id), form=field_error(form, exc)),
                done=lambda _result: saved(_("Group saved."), url_for("staff.customer_groups"), code=303))
        status = 422
        group = db.session.get(CustomerGroup, group_id)
    return render("staff/customers/group.html", status=status, group=group, form=form)


# ---------------------------------------------------------------------------------- customer page

TABS = ["overview", "services", "agreements", "invoices", "payments", "requests", "audit"]


def _tab_labels():
    return {"overview": _("Overview"), "services": _("Services"), "agreements": _("Agreements"),
            "invoices": _("Invoices"), "payments": _("Payments"), "requests": _("Requests"), "audit": _("Audit")}


def _visible_tabs():
    return [t for t in TABS if t != "audit" or current_user.has_right("audit.read")]


def _tab_list(tab: str, customer_id: int):
    """(statement, CSV header, CSV row) of a list tab; rows carry what the table shows."""
    if tab == "services":
        stmt = (select(CustomerService).options(joinedload(CustomerService.definition))
                .where(CustomerService.customer_id == customer_id).order_by(CustomerService.id.desc()))
        return stmt, ["id", "service", "state", "ordered_on", "activated_on", "billing_to", "variable_symbol", "installation"], \
            lambda s: [s.id, s.definition.name, s.state, s.ordered_on, s.activated_on, s.billing_to, s.variable_symbol,
                       ", ".join(p for p in (s.installation_street, s.installation_city) if p)]
    if tab == "agreements":
        stmt = (select(Agreement).options(joinedload(Agreement.type))
                .where(Agreement.customer_id == customer_id).order_by(Agreement.id.desc()))
        return stmt, ["id", "number", "type", "state", "conclusion_date", "accepted_at"], \
            lambda a: [a.id, a.number, a.type.name, a.state, a.conclusion_date, a.accepted_at]
    if tab == "invoices":
        credited = credited_expr()
        stmt = (select(Invoice, credited.label("credited")).where(Invoice.customer_id == customer_id)
                .order_by(Invoice.issue_date.desc(), Invoice.id.desc()))
        return stmt, ["number", "type", "issue_date", "due_date", "currency", "gross_total", "due", "state"], \
            lambda r: [r[0].number, r[0].type, r[0].issue_date, r[0].due_date, r[0].currency, r[0].gross_total,
                       invoice_due(r[0], r[1]), r[0].state]
    if tab == "payments":
        stmt = (select(Payment).where(Payment.customer_id == customer_id)
                .order_by(Payment.received_on.desc(), Payment.id.desc()))
        return stmt, ["received_on", "amount", "currency", "variable_symbol", "source", "state", "unallocated"], \
            lambda p: [p.received_on, p.amount, p.currency, p.variable_symbol, p.source, p.state, p.unallocated]
    if tab == "requests":
        stmt = (select(CustomerRequest).where(CustomerRequest.customer_id == customer_id)
                .order_by(CustomerRequest.created_at.desc(), CustomerRequest.id.desc()))
        return stmt, ["id", "created_at", "kind", "subject", "state"], \
            lambda r: [r.id, r.created_at, r.kind, r.subject, r.state]
    if tab == "audit":
        stmt = (select(AuditEntry).where(AuditEntry.customer_id == customer_id)
                .order_by(AuditEntry.at.desc(), AuditEntry.id.desc()))
        return stmt, ["at", "actor_type", "actor_name", "action", "entity_type", "entity_id", "changes"], \
            lambda e: [e.at, e.actor_type, e.actor_name, e.action, e.entity_type, e.entity_id, e.changes]
    raise KeyError(tab)


def detail_url(endpoint: str, ident: int) -> str | None:
    """The page of a row in another staff area, if that area exists and the operator holds
    its right; built from the route's one argument, whatever the other area named it."""
    view = current_app.view_functions.get(endpoint)
    if view is None or not all(current_user.has_right(r) for r in getattr(view, "required_rights", ())):
        return None
    for rule in current_app.url_map.iter_rules(endpoint):
        if len(rule.arguments) == 1:
            return url_for(endpoint, **{next(iter(rule.arguments)): ident})
    return None


def _page_customer_or_404(customer_id, tab: str) -> Customer:
    """scoped_customer_or_404 with what the page shows loaded along: the location (every
    tab's header) and, on the overview, the billing plan, contacts, addresses and groups —
    one statement plus one per collection instead of a lazy load each."""
    try:
        ident = int(customer_id)
    except (TypeError, ValueError):
        abort(404)
    stmt = select(Customer).where(Customer.id == ident).options(joinedload(Customer.location))
    if tab == "overview":
        stmt = stmt.options(joinedload(Customer.billing_plan), selectinload(Customer.contacts),
                            selectinload(Customer.addresses), selectinload(Customer.groups))
    customer = db.session.scalar(in_operator_locations(stmt, Customer.location_id))
    if customer is None:
        abort(404)
    return customer


def _customer_page(customer_id, tab: str, *, invite_form=None, status: int = 200):
    if tab not in TABS:
        abort(404)
    if tab == "audit" and not current_user.has_right("audit.read"):
        abort(403)
    customer = _page_customer_or_404(customer_id, tab)
    ctx = {"customer": customer, "tab": tab, "tabs": _visible_tabs(), "tab_labels": _tab_labels(),
           "action_form": ActionForm(), "today": date.today(), "detail_url": detail_url}
    if tab == "overview":
        ctx["summary"] = rules.customer_summary(db.session, customer)
        ctx["service_states"] = rules.SERVICE_STATES
        ctx["login"] = rules.impersonation_login(db.session, customer)
        ctx["purpose_labels"] = purpose_labels()
        ctx["address_labels"] = address_labels()
        ctx["kind_labels"] = kind_labels()
        ctx["iban"] = rules.format_iban(customer.iban)
        ctx.update(selfcare_access_context(customer, invite_form))
    else:
        stmt, header, row = _tab_list(tab, customer.id)
        if wants_csv():
            result = db.session.execute(stmt.execution_options(yield_per=500))
            rows = [row(r) for r in (result if tab == "invoices" else result.scalars())]
            return csv_response(f"customer-{customer.customer_number}-{tab}.csv", header, rows)
        ctx["page"] = paginate(stmt, page_number(request.args.get("page")), TAB_PER_PAGE, scalars=tab != "invoices")
        if tab == "invoices":
            ctx["rows"] = [(inv, invoice_due(inv, credited)) for inv, credited in ctx["page"].items]
    return render("staff/customers/detail.html", block="tab_area", status=status, **ctx)


@bp.get("/customers/<int:customer_id>")
@requires("customers.read")
def customer_detail(customer_id: int):
    return _customer_page(customer_id, "overview")


@bp.get("/customers/<int:customer_id>/<tab>")
@requires("customers.read")
def customer_tab(customer_id: int, tab: str):
    return _customer_page(customer_id, tab)


# ---------------------------------------------------------------------------------- view as customer

@bp.post("/customers/<int:customer_id>/impersonate")
@requires("customers.read", "customers.impersonate")
def customer_impersonate(customer_id: int):
    """Open the customer's selfcare read-only in this browser; the operator's session is kept
    aside and comes back with "End" (auth.end_view_as_customer)."""
    customer = scoped_customer_or_404(customer_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        login = rules.start_impersonation(db.session, operator_actor(), customer)
    except DomainError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("staff.customer_detail", customer_id=customer.id), 303)
    staff_row = current_auth_session()
    start_impersonation(login, staff_row)
    db.session.commit()
    if is_htmx():
        return "", 204, {"HX-Redirect": url_for("selfcare.dashboard")}
    return redirect(url_for("selfcare.dashboard"), 303)
