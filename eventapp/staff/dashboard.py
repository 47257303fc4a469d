"""The dashboard: upcoming events at a glance."""

from __future__ import annotations

from flask import current_app, render_template
from flask_login import current_user
from sqlalchemy import select

from ..auth.decorators import role_required
from ..extensions import db
from ..formatting import to_jst
from ..models import Event
from ..models.base import utcnow
from ..services.capacity import counts_for_events
from . import bp


def checkin_endpoint() -> str | None:
    """The check-in screen's endpoint (from the check-in package) if it is installed."""
    for rule in current_app.url_map.iter_rules():
        if rule.endpoint.startswith("checkin.") and "event_id" in rule.arguments and "GET" in rule.methods:
            return rule.endpoint
    return None


@bp.get("/")
@role_required("checkin")
def dashboard():
    now = utcnow()
    events = db.session.execute(
        select(Event).where(Event.ends_at >= now, Event.status != "cancelled").order_by(Event.starts_at)
    ).scalars().all()
    counts = counts_for_events([e.id for e in events])
    today = to_jst(now).date()
    days_to_go = {e.id: (to_jst(e.starts_at).date() - today).days for e in events}
    return render_template("staff/dashboard.html", events=events, counts=counts, days_to_go=days_to_go,
                           is_manager=current_user.has_role("staff"), checkin_endpoint=checkin_endpoint())
