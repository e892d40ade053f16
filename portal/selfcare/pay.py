"""The pay page at /pay/<token>: open to anyone holding the link, no login (issue 16, item 3).

It shows what is owed on one invoice or one reminder and how to pay it; nothing else about
the customer. Expired links answer 410 and every other bad token 404, with the same words,
so the page never tells whether an invoice exists. Responses are never cached, never indexed
and send no Referer (the token is in the address).
"""
from __future__ import annotations

from flask import current_app, render_template

from portal.domain.pay_links import open_pay_link
from portal.extensions import db, limiter
from portal.security.pay_links import Refusal
from portal.selfcare import bp

PRIVATE_HEADERS = {
    "Cache-Control": "private, no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "Referrer-Policy": "no-referrer",
}


@bp.get("/pay/<token>")
@limiter.limit(lambda: current_app.config["PAY_LINK_LIMIT_PER_IP"])
def pay(token: str):
    page = open_pay_link(db.session, current_app.config, token)
    if isinstance(page, Refusal):
        status = 410 if page == Refusal.EXPIRED else 404
        return render_template("selfcare/pay_invalid.html"), status, PRIVATE_HEADERS
    return render_template("selfcare/pay.html", page=page), 200, PRIVATE_HEADERS
