"""A page opened on its own (a new tab, a bookmark, without JavaScript) must not point htmx
at an element that only another page has: htmx would log `htmx:targetError` and send nothing."""
from __future__ import annotations

import re

_HX_TARGET = re.compile(r'hx-target="#([^"\s]+)"')
_ID = re.compile(r'\bid="([^"]+)"')


def missing_hx_targets(html: str) -> set[str]:
    """The `#id` selectors of hx-target attributes that name no element of `html`."""
    ids = set(_ID.findall(html))
    return {t for t in _HX_TARGET.findall(html) if t not in ids}


def assert_standalone(html: str, where: str = "") -> None:
    missing = missing_hx_targets(html)
    assert not missing, f"{where}: hx-target names elements not on the page: {sorted(missing)}"
