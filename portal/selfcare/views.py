from flask_login import current_user

from portal.domain.overview import customer_overview
from portal.extensions import db
from portal.selfcare import bp
from portal.web.access import customer_required
from portal.web.htmx import render


@bp.get("/")
@customer_required
def dashboard():
    overview = customer_overview(db.session, current_user.customer_id)
    return render("selfcare/dashboard.html", overview=overview, customer=current_user.customer)
