"""The demo's master data: what the provider sells and how it bills, before any customer."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from stdnum import iban as stdnum_iban
from stdnum.cz import dic as cz_dic

from portal.demo import names
from portal.demo.common import (
    DEMO_BILLING_EMAIL,
    DEMO_BILLING_PASSWORD,
    DEMO_OPERATOR_EMAIL,
    DEMO_OPERATOR_PASSWORD,
    ONE,
    add_months,
    company_id_with_checksum,
    iban,
)
from portal.models import (
    Aggregation,
    AgreementType,
    BillingPlan,
    Currency,
    CustomerGroup,
    Delivery,
    Location,
    Numbering,
    Partner,
    PaymentMethod,
    Period,
    PriceChange,
    ReminderLevel,
    Role,
    Rounding,
    ServiceDefinition,
    ServiceGroup,
    ServiceGroupKind,
    UsageItem,
    UsageTracker,
)


class CatalogueStory:
    """The provider's side, written directly: partner, locations, service groups and the
    catalogue (with one past price rise), billing plans and reminder ladders, agreement types,
    customer groups, and the demo operators."""

    # -------------------------------------------------------------- master data

    def _master_data(self) -> None:
        s = self.s
        partner_ico = company_id_with_checksum("2874651")
        assert cz_dic.is_valid(partner_ico)
        account = iban("CZ", "2010", "2801234567")
        assert stdnum_iban.is_valid(account)
        self.partner = Partner(
            name="Vltava Net s.r.o.",
            company_id=partner_ico,
            vat_id=f"CZ{partner_ico}",
            street="Na Poříčí 1047/26",
            city="Praha 1",
            postal_code="110 00",
            country="CZ",
            iban=account,
            bank_account="2801234567/2010",
            bic="FIOBCZPPXXX",
            email="fakturace@example.com",
            phone="+420 222 333 444",
            web="https://www.example.com",
        )
        s.add(self.partner)
        self.locations = {
            "PRG": Location(name="Praha", code="PRG", partner=self.partner, currency=Currency.CZK,
                            invoice_series_prefix="1"),
            "BRN": Location(name="Brno", code="BRN", partner=self.partner, currency=Currency.CZK,
                            invoice_series_prefix="2"),
            "BTS": Location(name="Bratislava", code="BTS", partner=self.partner, currency=Currency.EUR,
                            invoice_series_prefix="3"),
        }
        s.add_all(self.locations.values())

        self.groups = {
            "internet": ServiceGroup(name="Internet", kind=ServiceGroupKind.INTERNET, position=1),
            "tv": ServiceGroup(name="Television", kind=ServiceGroupKind.TV, position=2),
            "voice": ServiceGroup(name="Voice", kind=ServiceGroupKind.VOICE, position=3),
            "other": ServiceGroup(name="Add-ons", kind=ServiceGroupKind.OTHER, position=4),
        }
        s.add_all(self.groups.values())

        self.calls = UsageTracker(name="Calls", description="Outgoing calls and text messages of the phone line",
                                  vat_rate=Decimal("21.00"))
        self.calls_minutes = UsageItem(tracker=self.calls, metric="minutes", name="Calls", unit="min",
                                       aggregation=Aggregation.SUM, step=ONE, rounding=Rounding.UP,
                                       amount_per_step=Decimal("1.50"))
        self.calls_sms = UsageItem(tracker=self.calls, metric="sms", name="Text messages", unit="pcs",
                                   aggregation=Aggregation.SUM, step=ONE, rounding=Rounding.UP,
                                   amount_per_step=Decimal("1.20"))
        s.add_all([self.calls, self.calls_minutes, self.calls_sms])

        catalogue_from = date(self.window_start.year - 6, 1, 1)
        self.defs: dict[str, ServiceDefinition] = {}
        for code, group, name, customer_name, price, vat, period, commitment, notice, changeable in names.CATALOGUE:
            self.defs[code] = ServiceDefinition(
                group=self.groups[group], code=code, name=name, customer_name=customer_name,
                description=f"{customer_name}.", price=price, price_includes_vat=True, vat_rate=vat,
                period=Period(period), commitment_months=commitment, notice_days=notice,
                selfcare_changeable=changeable, valid_from=catalogue_from, active=True,
                usage_tracker=self.calls if code == "VOICEFLEX" else None,
            )
        s.add_all(self.defs.values())
        speeds = ["NET100", "NET300", "NET500", "NET1000"]
        for code in speeds:
            self.defs[code].allowed_targets = [self.defs[c] for c in speeds if c != code]
        tvs = ["TVBASIC", "TVPLUS", "TVNEWS"]
        for code in tvs:
            self.defs[code].allowed_targets = [self.defs[c] for c in tvs if c != code]
        # One price rise in the past: Internet 300 went from 449 to 499 a year ago. The row
        # keeps the old price until the history reaches that date (as the catalogue did).
        self.price_rise_on = add_months(self.current_month, -11)
        self.price_rise = PriceChange(definition=self.defs["NET300"], new_price=Decimal("499.00"),
                                      effective_from=self.price_rise_on, note="Yearly price review")
        s.add(self.price_rise)

        self.plans_by_name = {
            "email": BillingPlan(name="Monthly e-mail invoice, transfer, 14 days",
                                 customer_name="Monthly invoice by e-mail, bank transfer within 14 days",
                                 invoice_day=1, due_days=14, delivery=Delivery.EMAIL,
                                 payment_method=PaymentMethod.TRANSFER, block_enabled=True, series="FV1",
                                 constant_symbol="0308"),
            "post": BillingPlan(name="Monthly post, direct debit, 10 days",
                                customer_name="Monthly invoice by post, direct debit after 10 days",
                                invoice_day=1, due_days=10, delivery=Delivery.POST,
                                payment_method=PaymentMethod.DIRECT_DEBIT, block_enabled=True, series="FP2",
                                constant_symbol="0308"),
            # Reminder fees are plain amounts in the customer's currency, so the EUR location
            # needs its own plan and ladder (a 100 CZK fee is not a 100 EUR fee).
            "eur": BillingPlan(name="Monthly e-mail invoice, EUR, 14 days",
                               customer_name="Monthly invoice by e-mail, bank transfer within 14 days",
                               invoice_day=1, due_days=14, delivery=Delivery.EMAIL,
                               payment_method=PaymentMethod.TRANSFER, block_enabled=True, series="FE3",
                               constant_symbol="0308"),
        }
        s.add_all(self.plans_by_name.values())
        s.flush()
        for plan_id, fee in ((None, Decimal("100.00")), (self.plans_by_name["eur"].id, Decimal("4.00"))):
            s.add_all([
                ReminderLevel(billing_plan_id=plan_id, level=1, days_overdue=7, fee=Decimal("0.00"), blocks=False,
                              letter_template="reminder.html", pay_within_days=7),
                ReminderLevel(billing_plan_id=plan_id, level=2, days_overdue=14, fee=fee, blocks=False,
                              letter_template="reminder.html", pay_within_days=7),
                ReminderLevel(billing_plan_id=plan_id, level=3, days_overdue=30, fee=Decimal("0.00"), blocks=True,
                              letter_template="reminder.html", pay_within_days=5),
            ])

        self.agreement_type = AgreementType(
            name="Service agreement", code="SA", numbering=Numbering.PER_TYPE, number_format="{year}/{seq:05d}",
            template="standard.html", requires_confirmation=True, remind_days=14, block_days=None,
            valid_from=catalogue_from,
            terms="General terms of service of Vltava Net s.r.o., valid from 1 January "
                  f"{catalogue_from.year}; price list as published on the day of conclusion.",
        )
        self.annex_type = AgreementType(
            name="Annex", code="ANX", numbering=Numbering.PER_TYPE, number_format="D{year}/{seq:05d}",
            template="annex.html", is_annex=True, requires_confirmation=True, remind_days=14, block_days=None,
            valid_from=catalogue_from,
        )
        s.add_all([self.agreement_type, self.annex_type])

        self.customer_groups = {
            "vip": CustomerGroup(name="VIP", description="Personal care: call before any intervention."),
            "business": CustomerGroup(name="Business", description="Companies and sole traders."),
            "seniors": CustomerGroup(name="Seniors", description="Customers over 65 (senior discount campaign)."),
        }
        s.add_all(self.customer_groups.values())
        s.flush()
        self.say("  catalogue: 12 service definitions in 4 groups, 3 billing plans, reminder ladders")

    def _operators(self) -> None:
        from portal.domain.accounts import create_operator, ensure_admin_role, ensure_rights

        admin = ensure_admin_role(self.s)
        rights = ensure_rights(self.s)
        clerk = Role(name="Billing clerk",
                     rights=[rights[c] for c in ("billing.run", "payments.write", "customers.read")])
        self.s.add(clerk)
        self.s.flush()
        self.operator = create_operator(self.s, DEMO_OPERATOR_EMAIL, "Demo Operator", DEMO_OPERATOR_PASSWORD,
                                        [admin], self.actor)
        self.billing_clerk = create_operator(self.s, DEMO_BILLING_EMAIL, "Bára Účetní", DEMO_BILLING_PASSWORD,
                                             [clerk], self.actor)
        self.billing_clerk.locations = [self.locations["BRN"]]
        self.s.flush()
