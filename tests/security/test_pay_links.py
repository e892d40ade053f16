"""The pay link's token (portal/security/pay_links.py): signed for its purpose, deterministic,
expiring on the date it carries, and refused when altered or signed for something else."""
from __future__ import annotations

from datetime import date

from itsdangerous import URLSafeSerializer, URLSafeTimedSerializer

from portal.domain.cancellation import LINK_SALT as CANCELLATION_SALT
from portal.security.pay_links import (
    SALT,
    Claim,
    LinkKind,
    Refusal,
    expiry,
    make_token,
    read_token,
    secret_keys,
    token_for,
)

KEY = "k" * 40
TODAY = date(2026, 3, 1)


def test_a_token_reads_back_as_its_claim():
    token = make_token(KEY, LinkKind.INVOICE, 42, date(2026, 5, 1))
    assert read_token(KEY, token, TODAY) == Claim(LinkKind.INVOICE, 42, date(2026, 5, 1))
    reminder = make_token(KEY, LinkKind.REMINDER, 7, date(2026, 5, 1))
    assert read_token(KEY, reminder, TODAY) == Claim(LinkKind.REMINDER, 7, date(2026, 5, 1))


def test_the_same_row_always_gets_the_same_token():
    """What the stored PDF printed is what a later e-mail and selfcare show."""
    first = make_token(KEY, LinkKind.INVOICE, 42, date(2026, 5, 1))
    assert make_token(KEY, LinkKind.INVOICE, 42, date(2026, 5, 1)) == first
    assert make_token(KEY, LinkKind.INVOICE, 43, date(2026, 5, 1)) != first
    assert make_token(KEY, LinkKind.REMINDER, 42, date(2026, 5, 1)) != first


def test_the_token_carries_no_personal_data():
    token = make_token(KEY, LinkKind.INVOICE, 42, date(2026, 5, 1))
    assert token.isascii() and len(token) < 80
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def test_it_works_through_its_last_day_and_not_after():
    token = make_token(KEY, LinkKind.INVOICE, 42, date(2026, 5, 1))
    assert isinstance(read_token(KEY, token, date(2026, 5, 1)), Claim)
    assert read_token(KEY, token, date(2026, 5, 2)) == Refusal.EXPIRED


def test_expiry_counts_the_configured_days_from_the_date_given():
    assert expiry(date(2026, 2, 15), 90) == date(2026, 5, 16)
    config = {"SECRET_KEY": KEY, "PAY_LINK_DAYS": 10}
    token = token_for(config, LinkKind.INVOICE, 5, date(2026, 2, 15))
    assert read_token(KEY, token, date(2026, 2, 20)).expires_on == date(2026, 2, 25)


def test_an_altered_token_is_tampered():
    token = make_token(KEY, LinkKind.INVOICE, 42, date(2026, 5, 1))
    payload, _, signature = token.rpartition(".")
    other = make_token(KEY, LinkKind.INVOICE, 43, date(2026, 5, 1)).rpartition(".")[0]
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for bad in (payload + "." + flipped, other + "." + signature, token[:-3], "", "nonsense", token + "x"):
        assert read_token(KEY, bad, TODAY) == Refusal.TAMPERED, bad


def test_another_key_or_another_purpose_is_tampered():
    token = make_token(KEY, LinkKind.INVOICE, 42, date(2026, 5, 1))
    assert read_token("x" * 40, token, TODAY) == Refusal.TAMPERED
    # A cancellation link (its own salt) never opens a pay page, even for the same data.
    cancellation = URLSafeTimedSerializer(KEY, salt=CANCELLATION_SALT).dumps(["i", 42, "2026-05-01"])
    assert read_token(KEY, cancellation, TODAY) == Refusal.TAMPERED
    unsalted = URLSafeSerializer(KEY).dumps(["i", 42, "2026-05-01"])
    assert read_token(KEY, unsalted, TODAY) == Refusal.TAMPERED


def test_a_genuine_signature_over_a_wrong_payload_is_tampered():
    ours = URLSafeSerializer(KEY, salt=SALT)
    for payload in ({"c": 1}, ["x", 42, "2026-05-01"], ["i", "42", "2026-05-01"], ["i", True, "2026-05-01"],
                    ["i", 0, "2026-05-01"], ["i", 42, "not a date"], ["i", 42], None, 42):
        assert read_token(KEY, ours.dumps(payload), TODAY) == Refusal.TAMPERED, payload


def test_a_rotated_secret_keeps_old_links_working():
    old = make_token(KEY, LinkKind.INVOICE, 42, date(2026, 5, 1))
    config = {"SECRET_KEY": "n" * 40, "SECRET_KEY_FALLBACKS": [KEY]}
    assert isinstance(read_token(secret_keys(config), old, TODAY), Claim)
    new = make_token(secret_keys(config), LinkKind.INVOICE, 42, date(2026, 5, 1))
    assert read_token("n" * 40, new, TODAY) == Claim(LinkKind.INVOICE, 42, date(2026, 5, 1))
