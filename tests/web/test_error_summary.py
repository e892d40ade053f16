"""After a failed submit every form starts with an error summary (the shared form macro): it
links to each field with an error and takes the focus (`autofocus`, tabindex -1)."""
from __future__ import annotations

import re


def _summary(html: str) -> str:
    m = re.search(r'<div class="form-errors"[^>]*data-error-summary[^>]*>(.*?)</div>', html, re.S)
    assert m, "no error summary"
    assert re.search(r'<div class="form-errors"[^>]*\bautofocus\b', html)
    assert re.search(r'<div class="form-errors"[^>]*tabindex="-1"', html)
    return m.group(1)


def test_staff_form_summary_links_to_each_field_in_error(staff_client):
    resp = staff_client.post("/staff/customers/new", data={})
    assert resp.status_code in (400, 422)
    html = resp.get_data(as_text=True)
    summary = _summary(html)
    targets = re.findall(r'<a href="#([^"]+)"', summary)
    errors = re.findall(r'<p class="field-error" id="([^"]+)-error">', html)
    assert targets and set(targets) == set(errors)
    for target in targets:
        assert f'id="{target}"' in html



def test_profile_language_select_is_the_only_element_with_its_id(customer_client):
    html = customer_client.get("/profile").get_data(as_text=True)
    # The label's for= must reach the select, not the section around it.
    assert html.count('id="language"') == 1
    assert re.search(r'<select[^>]*id="language"', html)
