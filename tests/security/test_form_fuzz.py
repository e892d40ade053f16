"""Form fuzz: every form on every page a logged-in customer or an administrator can open
(pages found by walking app.url_map; forms read from the HTML) gets random values — unicode,
NUL, huge lengths, numbers, dates, empty, markup — posted to its action (GET forms: in the
query string). Whatever comes in, the answer is never a 500. Bounded: a few examples per
form (hypothesis, derandomized so a failure reproduces), well under a minute in all."""
from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import login_operator
from tests.factories import OperatorFactory
from tests.security.test_escaping import get_urls

EXAMPLES_PER_FORM = {"selfcare": 10, "staff": 6}
# Forms that end the session: posting them would only log the fuzzer out.
SKIP_ACTIONS = ("logout",)

NASTY = st.sampled_from([
    "", " ", "\x00", "a\x00b", "0", "-1", "1e309", "NaN", "inf", "99999999999999999999999", "-0.001", "1.5", "1,5",
    "2026-02-30", "9999-12-31", "0001-01-01", "31.12.2026", "2026-13-01", "<script>alert(1)</script>",
    "' OR 1=1 --", "../../etc/passwd", "%s%n%x", "\u202e\u200b", "😀" * 50, "ą" * 300, "x" * 20_000,
    "\r\n\r\nSet-Cookie: a=b", "{{ 7*7 }}", "${7*7}", "[]", "{}", "true", "null",
])


def value_strategy(options: list[str]):
    parts = [NASTY, st.text(max_size=60), st.integers(min_value=-(10**12), max_value=10**12).map(str),
             st.dates().map(lambda d: d.isoformat()), st.decimals(allow_nan=False, allow_infinity=False,
                                                                    places=3).map(str)]
    if options:
        parts.insert(0, st.sampled_from(options))
    return st.one_of(*parts)


class Forms(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self._form: dict | None = None
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = {"action": a.get("action") or "", "method": (a.get("method") or "get").lower(),
                          "fields": {}}
            return
        if self._form is None:
            return
        name = a.get("name")
        if tag in ("input", "textarea", "select") and name and name != "csrf_token":
            if (a.get("type") or "").lower() in ("submit", "button", "image", "reset", "file"):
                return
            field = self._form["fields"].setdefault(name, [])
            if a.get("value") is not None:
                field.append(a["value"])
            self._select = name if tag == "select" else None
        elif tag == "option" and self._select:
            self._form["fields"][self._select].append(a.get("value") or "")

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "form" and self._form is not None:
            self.forms.append(self._form)
            self._form = None


def discover(client, urls: list[str], seen: set | None = None) -> list[tuple[str, dict]]:
    """(page, form) for every distinct form on the pages not in `seen` (which is updated)."""
    seen = set() if seen is None else seen
    found = []
    for url in urls:
        resp = client.get(url)
        assert resp.status_code < 500, url
        if resp.status_code != 200 or resp.mimetype != "text/html":
            continue
        parser = Forms()
        parser.feed(resp.get_data(as_text=True))
        for form in parser.forms:
            action = urljoin(url, form["action"] or url)
            key = (form["method"], action.split("?")[0], tuple(sorted(form["fields"])))
            if key in seen or any(s in action for s in SKIP_ACTIONS):
                continue
            seen.add(key)
            found.append((url, {**form, "action": action}))
    return found


def fuzz(client, page: str, form: dict, examples: int) -> None:
    strategy = st.fixed_dictionaries({name: st.one_of(st.none(), value_strategy(options))
                                      for name, options in form["fields"].items()})

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(values=strategy)
    def post(values):
        data = {k: v for k, v in values.items() if v is not None}
        if form["method"] == "post":
            resp = client.post(form["action"], data=data)
        else:
            resp = client.get(form["action"], query_string=data)
        assert resp.status_code < 500, f"{form['method'].upper()} {form['action']} (form on {page}) with {data!r}"

    post()


def fuzz_all(client, urls: list[str], examples: int) -> set[str]:
    """Fuzz every form; then look again, for forms the fuzzing brought up (a started
    two-factor enrolment shows its confirmation form), and fuzz those too."""
    seen: set = set()
    actions: set[str] = set()
    for _round in range(2):
        for page, form in discover(client, urls, seen):
            actions.add(f"{form['method'].upper()} {form['action'].split('?')[0]}")
            fuzz(client, page, form, examples)
    return actions


def test_every_selfcare_form_survives_random_input(app, customer_client, mine):
    plan = f"/services/{mine.service.id}/plan"
    urls = get_urls(app, "selfcare.", mine) + [f"{plan}?target_id={mine.target.id}&on=2099-01-01"]
    actions = fuzz_all(customer_client, urls, EXAMPLES_PER_FORM["selfcare"])
    # The walk reached the forms that matter.
    assert {"POST /requests", f"POST /requests/{mine.request.id}/comments", "POST /profile/address",
            "POST /profile/contacts", "POST /profile/password", f"POST {plan}", "POST /security/totp",
            "POST /security/totp/confirm", "GET /invoices", "GET /statement"} <= actions, actions


def test_every_staff_form_survives_random_input(app, client, make_client, mine, db):
    op = OperatorFactory(admin=True)
    db.commit()
    staff = make_client()
    assert login_operator(staff, op.email).status_code == 302
    urls = get_urls(app, "staff.", mine)
    assert "/staff/" in urls
    fuzz_all(staff, urls, EXAMPLES_PER_FORM["staff"])


def test_found_by_the_fuzz_a_blank_service_to_cancel_is_a_form_message(customer_client, mine):
    for blank in (" ", "", "x"):
        resp = customer_client.post("/cancel/services", data={"service_id": blank, "end_date": ""})
        assert resp.status_code == 422, blank
        assert 'id="service_id-error"' in resp.get_data(as_text=True), blank  # the message is by the field
