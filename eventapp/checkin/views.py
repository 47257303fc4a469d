"""Check-in pages. The screen itself talks to /api/v1 (session + X-CSRFToken); these views render
the shell, the printable participant list and serve the service worker from /checkin/ so its
scope covers every check-in page."""

from __future__ import annotations

import uuid
from datetime import timedelta

from flask import current_app, flash, redirect, render_template, request, send_from_directory, url_for
from flask_login import current_user
from sqlalchemy import or_, select

from ..auth.decorators import role_required
from ..extensions import db
from ..models import Event
from ..models.base import utcnow
from ..services import checkin as service
from ..services.errors import DomainError
from . import bp


def _event_or_404(event_id: int) -> Event:
    """The event, if it is open for check-in: the same rule as the check-in API (a draft is 404,
    a cancelled event or one outside its check-in window a 409 page with the reason)."""
    service.require_checkin_open(event_id)
    return db.session.get(Event, event_id)


def _day_arg() -> int | None:
    value = request.args.get("day", "")
    return int(value) if value.isdigit() else None


@bp.get("/")
@role_required("checkin")
def index():
    """Events of the last week and the future (and older ones whose check-in staff reopened), soonest first."""
    now = utcnow()
    events = db.session.execute(
        select(Event).where(Event.status == "published",
                            or_(Event.ends_at >= now - timedelta(days=7), Event.checkin_closes_at >= now))
        .order_by(Event.starts_at)
    ).scalars().all()
    windows = {event.id: service.checkin_window(event) for event in events}
    return render_template("checkin/index.html", events=events, windows=windows, now=now)


@bp.get("/events/<int:event_id>")
@role_required("checkin")
def screen(event_id: int):
    event = _event_or_404(event_id)
    day = service.pick_day(event, _day_arg())
    return render_template("checkin/screen.html", event=event, day=day)


@bp.get("/events/<int:event_id>/list")
@role_required("checkin")
def roster_list(event_id: int):
    """Printable participant list (五十音順) with today's check-ins, undo buttons and duplicates."""
    event = _event_or_404(event_id)
    day, rows = service.day_checkins(event.id, _day_arg())
    snapshot = service.roster_snapshot(event.id)
    query = request.args.get("q", "")[:100]
    people = [p for p in snapshot["registrations"] if service.roster_entry_matches(p, query)]
    return render_template("checkin/list.html", event=event, day=day, rows=rows, people=people, query=query,
                           total=snapshot["registrations"])


@bp.post("/events/<int:event_id>/registrations/<int:registration_id>/checkin")
@role_required("checkin")
def manual_checkin(event_id: int, registration_id: int):
    """The roster's 受付 button (a phone at the door without the scanner screen)."""
    _event_or_404(event_id)
    day_id = request.form.get("day", "")
    try:
        res = service.check_in(event_id, None, uuid.uuid4().hex, registration_id=registration_id, source="manual",
                               day_id=int(day_id) if day_id.isdigit() else None,
                               user=current_user._get_current_object())
        name = res.registration.name
        db.session.commit()
        flash(f"{name} さんを受付しました。", "success")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("checkin.roster_list", event_id=event_id, day=day_id or None,
                            q=request.form.get("q") or None), code=303)


@bp.post("/events/<int:event_id>/checkins/<int:checkin_id>/undo")
@role_required("checkin")
def undo(event_id: int, checkin_id: int):
    _event_or_404(event_id)
    try:
        row = service.undo(event_id, checkin_id, user=current_user._get_current_object(),
                           cancel_walkin=request.form.get("cancel_walkin") == "1")
        db.session.commit()
        flash(f"{row.registration.name} さんの受付を取り消しました。", "success")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("checkin.roster_list", event_id=event_id, day=request.form.get("day") or None),
                    code=303)


@bp.get("/sw.js")
def service_worker():
    # Served from /checkin/ (not /static/) so the worker may control the check-in pages.
    response = send_from_directory(current_app.static_folder, "js/checkin-sw.js",
                                   mimetype="text/javascript", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/manifest.webmanifest")
def manifest():
    return current_app.response_class(
        render_template("checkin/manifest.webmanifest"), mimetype="application/manifest+json")


@bp.get("/token")
@role_required("checkin")
def token():
    """A fresh CSRF token: the screen stays open for a whole day, longer than a token lives."""
    from flask_wtf.csrf import generate_csrf
    response = current_app.response_class(
        current_app.json.dumps({"csrf": generate_csrf()}), mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response
