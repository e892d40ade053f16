"""Every table of the portal's pages sits in a scrolling wrapper (`.table-wrap`) that keyboard
users can reach and screen readers can name: a wide table scrolls inside it, never the page
(WCAG 1.4.10 Reflow; axe `scrollable-region-focusable`). Documents and e-mails are not pages."""
from __future__ import annotations

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
WRAP = re.compile(r'<div class="table-wrap[^"]*"([^>]*)>\s*$')


def _page_templates():
    for path in sorted(TEMPLATES.rglob("*.html")):
        if path.relative_to(TEMPLATES).parts[0] not in ("documents", "emails"):
            yield path


def test_every_table_is_in_a_focusable_named_wrapper():
    problems = []
    for path in _page_templates():
        source = path.read_text()
        for m in re.finditer(r"<table\b", source):
            line = source.count("\n", 0, m.start()) + 1
            where = f"{path.relative_to(TEMPLATES)}:{line}"
            wrap = WRAP.search(source[: m.start()])
            if not wrap:
                problems.append(f"{where}: no <div class=\"table-wrap\"> right before the table")
                continue
            attrs = wrap.group(1)
            if 'tabindex="0"' not in attrs or 'role="region"' not in attrs:
                problems.append(f"{where}: the wrapper needs role=\"region\" and tabindex=\"0\"")
            if "aria-label" not in attrs:
                problems.append(f"{where}: the wrapper needs aria-label or aria-labelledby")
    assert not problems, "\n".join(problems)
