from flask_login import current_user

from portal.domain.overview import business_overview
from portal.extensions import db
from portal.staff import bp
from portal.web.access import operator_required
from portal.web.htmx import render


@bp.get("/")
@operator_required
def dashboard():
    overview = business_overview(db.session, current_user.location_ids)
    return render("staff/dashboard.html", overview=overview)
