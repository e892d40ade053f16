"""The staff landing page: what needs attention, within the operator's locations."""
from datetime import date

from flask_login import current_user

from portal.domain.overview import business_overview
from portal.extensions import db
from portal.staff import bp
from portal.web.access import operator_required
from portal.web.htmx import render


@bp.get("/")
@operator_required
def dashboard():
    """Open to every operator: the figures are counts and sums, each card links to its area
    for operators who hold that area's right."""
    overview = business_overview(db.session, current_user.location_ids, operator_id=current_user.id)
    return render("staff/dashboard.html", overview=overview, today=date.today())
