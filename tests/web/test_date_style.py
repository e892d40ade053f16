"""Pages write a date one way per locale: never "12/16/26" beside "Dec 16, 2026"."""
from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from flask import render_template_string
from flask_babel import force_locale

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@pytest.mark.parametrize(("locale", "expected_date"), [("en", "Dec 16, 2026"), ("cs", "16. 12. 2026")])
def test_dates_and_moments_share_the_page_style(app, locale, expected_date):
    with app.test_request_context(), force_locale(locale):
        out = render_template_string("{{ d|date }}|{{ m|datetime }}|{{ m|date }}",
                                     d=date(2026, 12, 16), m=datetime(2026, 12, 16, 9, 5, 30, tzinfo=UTC))
    d, m1, m2 = out.split("|")
    assert d == expected_date
    assert m1.startswith(expected_date) and m2 == m1
    assert not re.search(r"\d+/\d+/\d\d\b", out)
    assert ":30" not in m1  # to the minute, as pages show it


def test_no_page_template_asks_for_a_second_date_style():
    offenders = [str(p.relative_to(TEMPLATES)) for p in TEMPLATES.rglob("*.html")
                 if re.search(r"\|\s*(date|datetime)\(\s*['\"]short['\"]", p.read_text(encoding="utf-8"))]
    assert offenders == []

