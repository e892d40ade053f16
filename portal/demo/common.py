"""What the demo's stories share: the demo logins, the length of the history, small date,
money and identifier helpers, and the plan drawn before anything is written (one
`ServicePlan` per service, one `CustomerPlan` per customer, one `PaymentIntent` per payment)."""
from __future__ import annotations

import calendar
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

from portal.models import Customer, CustomerKind, CustomerService, PaymentMethod, PaymentSource

Progress = Callable[[str], None]

DEMO_CUSTOMER_EMAIL = "customer@example.com"
DEMO_CUSTOMER_PASSWORD = "Customer-demo-1"
DEMO_OPERATOR_EMAIL = "operator@example.com"
DEMO_OPERATOR_PASSWORD = "Operator-demo-1"
DEMO_BILLING_EMAIL = "billing@example.com"
DEMO_BILLING_PASSWORD = "Billing-demo-1"

HISTORY_MONTHS = 24
DUNNING_DAYS = (1, 8, 15, 22)
ONE = Decimal(1)


# ------------------------------------------------------------------------------ small helpers


def add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def month_end(d: date) -> date:
    return date(d.year, d.month, calendar.monthrange(d.year, d.month)[1])


def name_key(text: str | None) -> str:
    """Lower-cased and accent-free ("Nováková" → "novakova"), as the search index wants it."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def ascii_slug(text: str, sep: str = ".") -> str:
    out, prev_sep = [], True
    for ch in name_key(text):
        if ch.isalnum() and ch.isascii():
            out.append(ch)
            prev_sep = False
        elif not prev_sep:
            out.append(sep)
            prev_sep = True
    return "".join(out).strip(sep)


def company_id_with_checksum(seven_digits: str) -> str:
    """A Czech (and Slovak) IČO: seven digits and the mod-11 check digit."""
    total = sum(int(d) * w for d, w in zip(seven_digits, range(8, 1, -1), strict=True))
    check = (11 - total % 11) % 10
    return seven_digits + str(check)


def iban(country: str, bank_code: str, number: str, prefix: str = "") -> str:
    """A Czech or Slovak IBAN (same layout: bank code, 6-digit prefix, 10-digit number)."""
    bban = bank_code + prefix.rjust(6, "0") + number.rjust(10, "0")
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


def at_hour(d: date, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(d.year, d.month, d.day, hour, minute, tzinfo=UTC)


def money(value) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)

# ------------------------------------------------------------------------------ the plan


@dataclass
class ServicePlan:
    """What happens to one service over the demo's time: drawn first, lived month by month."""

    customer_index: int
    code: str
    ordered_on: date
    activated_on: date | None = None
    cancel_request_on: date | None = None
    cancel_on: date | None = None
    cancel_reason: str = ""
    change_on: date | None = None
    change_to: str | None = None
    price_override: Decimal | None = None
    installation: tuple[str, str, str] | None = None
    loyalty_discount: bool = False
    service: CustomerService | None = None  # the live row (the successor after a plan change)
    first_service: CustomerService | None = None


@dataclass
class CustomerPlan:
    index: int
    location_code: str
    kind: CustomerKind
    profile: str = "on_time"  # on_time | late | very_late | stopper
    stop_from: date | None = None  # stoppers: no payments for invoices issued from this month on
    unmatched: str | None = None  # "missing_vs" | "wrong_vs" for last month's payment
    services: list[ServicePlan] = field(default_factory=list)
    customer: Customer | None = None
    exempt: bool = False  # "never block"
    name: str = ""  # kept here: the billing run commits, which expires the ORM rows
    payment_method: PaymentMethod | None = None


@dataclass
class PaymentIntent:
    on: date
    order: int
    invoice_id: int
    customer_index: int
    kind: str = "full"  # full | half | rest | over | missing_vs | wrong_vs
    source: PaymentSource = PaymentSource.BANK_IMPORT

