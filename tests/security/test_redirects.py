"""No open redirect: `next` may only name a local path of the same face."""
from __future__ import annotations

from urllib.parse import quote, urlsplit

import pyotp
import pytest

from portal.auth.views import safe_next
from portal.models import Face
from portal.models.base import utcnow
from portal.security.totp import encrypt_secret, new_secret
from tests.conftest import PASSWORD
from tests.factories import CustomerLoginFactory, OperatorFactory

FACES = {
    "customer": {"login": "/login", "home": "/", "verify": "/login/verify", "other": "/staff/"},
    "operator": {"login": "/staff/login", "home": "/staff/", "verify": "/staff/login/verify", "other": "/"},
}

HOSTILE = [
    "https://evil.example",
    "https://evil.example/staff/",
    "http://localhost.evil.example/",
    "//evil.example",
    "//evil.example/staff/",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    " //evil.example",
    "\t//evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.example",
    "https:evil.example",
    "https:/evil.example",
    "%2F%2Fevil.example",
    "http://localhost/",
]


@pytest.fixture(params=["customer", "operator"])
def face(request):
    return request.param


@pytest.fixture
def principal(face, db):
    p = CustomerLoginFactory() if face == "customer" else OperatorFactory(admin=True)
    db.commit()
    return p


def login_with_next(client, face, email, nxt, password=PASSWORD):
    return client.post(FACES[face]["login"], query_string={"next": nxt}, data={"email": email, "password": password})


def landing(resp) -> tuple[str, str]:
    location = resp.headers["Location"]
    assert "\r" not in location and "\n" not in location
    parts = urlsplit(location)
    return parts.netloc, parts.path


@pytest.mark.parametrize("nxt", HOSTILE)
def test_hostile_next_lands_on_the_face_home(client, face, principal, nxt):
    resp = login_with_next(client, face, principal.email, nxt)
    assert resp.status_code == 302
    netloc, path = landing(resp)
    assert netloc in ("", "localhost")
    assert path == FACES[face]["home"]


def test_next_of_the_other_face_lands_on_this_face_home(client, face, principal):
    resp = login_with_next(client, face, principal.email, FACES[face]["other"])
    assert landing(resp) == ("", FACES[face]["home"]) or landing(resp)[1] == FACES[face]["home"]


@pytest.mark.parametrize("nxt", ["/%5Cevil.example", "/%2F%2Fevil.example"])
def test_percent_encoded_slashes_stay_local_paths(client, db, nxt):
    """Browsers do not decode %5C or %2F in a path: these are paths on this host."""
    p = CustomerLoginFactory()
    db.commit()
    resp = login_with_next(client, "customer", p.email, nxt)
    netloc, path = landing(resp)
    assert netloc in ("", "localhost") and path.startswith("/%")


@pytest.mark.parametrize("nxt", ["/staff", "/staff/", "/staff/customers?q=1", "/staffing"])
def test_customer_face_never_goes_to_staff_paths(client, db, nxt):
    p = CustomerLoginFactory()
    db.commit()
    resp = login_with_next(client, "customer", p.email, nxt)
    expected = "/staffing" if nxt == "/staffing" else "/"  # a path merely starting with "staff" is selfcare
    assert landing(resp)[1] == expected


@pytest.mark.parametrize("nxt", ["/", "/invoices", "/login", "/staffing"])
def test_operator_face_never_goes_to_selfcare_paths(client, db, nxt):
    p = OperatorFactory(admin=True)
    db.commit()
    resp = login_with_next(client, "operator", p.email, nxt)
    assert landing(resp)[1] == "/staff/"


def test_a_local_next_of_the_same_face_is_kept(client, face, principal):
    target = "/staff/?page=2" if face == "operator" else "/?tab=invoices"
    resp = login_with_next(client, face, principal.email, target)
    location = resp.headers["Location"]
    assert urlsplit(location).path + "?" + urlsplit(location).query == target


def test_header_injection_in_next_is_neutralised(client, face, principal):
    resp = login_with_next(client, face, principal.email, FACES[face]["home"] + "\r\nSet-Cookie: pwned=1")
    assert resp.status_code == 302
    assert "pwned" not in " ".join(resp.headers.getlist("Set-Cookie"))
    landing(resp)


@pytest.mark.parametrize("nxt", HOSTILE)
def test_hostile_next_survives_the_second_factor(client, face, principal, db, nxt):
    secret = new_secret()
    principal.totp_secret = encrypt_secret(secret)
    principal.totp_enabled_at = utcnow()
    db.commit()
    resp = login_with_next(client, face, principal.email, nxt)
    assert urlsplit(resp.headers["Location"]).path == FACES[face]["verify"]
    # Even a hostile `next` put straight onto the verify URL goes nowhere else.
    verify_url = FACES[face]["verify"] + "?next=" + quote(nxt, safe="")
    ok = client.post(verify_url, data={"code": pyotp.TOTP(secret).now()})
    assert ok.status_code == 302
    netloc, path = landing(ok)
    assert netloc in ("", "localhost") and path == FACES[face]["home"]


@pytest.mark.parametrize("nxt", HOSTILE + [None, "", "/staff/", "/"])
def test_safe_next_returns_only_local_paths(app, nxt):
    with app.test_request_context("/login"):
        for f in (Face.CUSTOMER, Face.OPERATOR):
            result = safe_next(nxt, f)
            assert result.startswith("/") and not result.startswith("//") and "\\" not in result
            assert not urlsplit(result).netloc and not urlsplit(result).scheme
