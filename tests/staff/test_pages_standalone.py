"""Every staff page reachable by a link works opened on its own: a GET answers 200 (opening a
page is not a validation error), and no htmx attribute aims at an element that only another
page has (the form would log `htmx:targetError` and send nothing). Walks the staff face over
the demo world as an administrator, one URL of each shape, including the URLs that htmx loads
into a page (opened directly they must be whole pages too)."""
from __future__ import annotations

import re
from collections import deque
from datetime import date
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from portal.demo import load_demo_data
from tests.web.standalone import missing_hx_targets

TODAY = date(2026, 11, 26)
LINK = re.compile(r'\b(?:href|hx-get)="(/staff[^"#]*)"')
FORM = re.compile(r"<form\b[^>]*>")
ACTION = re.compile(r'\baction="(/staff[^"#]*)"')
# Not pages: downloads, logging out, leaving the staff face.
SKIP = re.compile(r"format=csv|/pdf\b|/download|/logout|/impersonate|/view-as|/xml\b|/isdoc|/facturx|\.pdf|\.xml")
LIMIT = 400


def _shape(url: str) -> str:
    parts = urlsplit(url)
    keys = sorted({k for k, _ in parse_qsl(parts.query, keep_blank_values=True)} - {"page"})
    return re.sub(r"\d+", "N", parts.path) + "?" + "&".join(keys)


def _clean(url: str) -> str:
    parts = urlsplit(url.replace("&amp;", "&"))
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return parts.path + ("?" + urlencode(query) if query else "")


@pytest.fixture
def world(db):
    load_demo_data(db, customers=12, seed=7, today=TODAY, months=6)
    db.commit()


def _pages_without_arguments(app) -> list[str]:
    """Every staff GET route that takes no argument: reachable by typing or bookmarking it,
    and by the forms that GET it (filters, the bulk step) before anything is chosen."""
    return sorted(rule.rule for rule in app.url_map.iter_rules()
                  if rule.endpoint.startswith("staff.") and "GET" in rule.methods and not rule.arguments)


def test_every_staff_page_works_opened_alone(app, staff_client, world):
    seen: set[str] = set()
    queue = deque(["/staff/", *_pages_without_arguments(app)])
    problems: list[str] = []
    visited = 0
    while queue and visited < LIMIT:
        url = queue.popleft()
        shape = _shape(url)
        if shape in seen or SKIP.search(url):
            continue
        seen.add(shape)
        visited += 1
        resp = staff_client.get(url)
        if resp.status_code in (301, 302, 303):
            continue
        html = resp.get_data(as_text=True)
        if resp.status_code != 200:
            problems.append(f"{url}: GET answered {resp.status_code}")
            continue
        if not resp.mimetype.startswith("text/html"):
            continue
        missing = missing_hx_targets(html)
        if missing:
            problems.append(f"{url}: hx-target not on the page: {sorted(missing)}")
        queue.extend(_clean(link) for link in LINK.findall(html))
        # A form that GETs (filters, the bulk step's choice), opened before anything is filled in.
        for tag in FORM.findall(html):
            action = ACTION.search(tag)
            if action and 'method="post"' not in tag.lower():
                queue.append(_clean(action.group(1)).split("?")[0])
    assert visited > 50, visited
    assert problems == [], "\n".join(problems)
