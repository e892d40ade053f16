"""How pages write amounts: the locale's format, with the currency kept apart from the digits."""
from __future__ import annotations

from decimal import Decimal

import pytest
from flask_babel import force_locale

from portal.web import money


@pytest.mark.parametrize(("locale", "amount", "currency", "expected"), [
    # Babel leaves CLDR's currency spacing out: an ISO code would touch the digits.
    ("en", "99", "CZK", "CZK\u00a099.00"),
    ("en", "-1234.5", "CZK", "-CZK\u00a01,234.50"),
    ("en", "99", "EUR", "€99.00"),  # a symbol needs no space
    ("cs", "-1234.5", "CZK", "-1\u00a0234,50\u00a0Kč"),
    ("cs", "99", "USD", "99,00\u00a0US$"),
])
def test_amounts_in_each_locale(app, locale, amount, currency, expected):
    with app.test_request_context(), force_locale(locale):
        assert money(Decimal(amount), currency) == expected


def test_no_amount_is_blank(app):
    with app.test_request_context():
        assert money(None) == ""
