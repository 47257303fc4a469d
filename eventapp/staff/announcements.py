"""Staff: announce a published event to people who opted in (filter, preview with the count, send)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from .. import idempotency
from ..auth.decorators import role_required
from ..extensions import db
from ..models.base import utcnow
from ..services import announcements as service
from ..services.errors import DomainError, ValidationFailed
from ..services.fiscal import fiscal_year
from ..services.people import PREFECTURES
from . import bp
from .events import load_event


@bp.route("/events/<int:event_id>/announce", methods=["GET", "POST"])
@role_required("staff")
@idempotency.form_view  # the preview's hidden one-time key: a double-clicked send mails nobody twice
def event_announce(event_id: int):
    """GET: the filter form. POST action=preview: the count and the mail for the first recipient;
    POST action=send: queue the mails, refused unless the count is still the one previewed."""
    event = load_event(event_id)
    values = {"attended": request.form.getlist("attended"), "prefecture": request.form.get("prefecture", ""),
              "fiscal_year": request.form.get("fiscal_year", ""), "intro": request.form.get("intro", "")}
    errors: dict[str, str] = {}
    recipients = rendered = None
    error = None
    try:
        service.check_can_announce(event)
    except DomainError as exc:
        error = exc.message
    blocked = error is not None  # a draft, ended or cancelled event, or the sender is not configured
    if request.method == "POST" and not blocked:
        try:
            flt = service.parse_filter(values)
            intro = service.clean_intro(values["intro"])
            if request.form.get("action") == "send":
                expected = request.form.get("expected", "")
                sent = service.announce(event.id, flt, intro, expected=int(expected) if expected.isdigit() else None)
                location = url_for("staff.event_detail", event_id=event.id)
                idempotency.remember(location)  # stored with the mails, in their transaction
                db.session.commit()
                flash(f"{sent}名にお知らせを送信しました(送信待ちの列に入りました)。", "success")
                return redirect(location, code=303)
            recipients, rendered = service.preview(event, flt, intro)
        except ValidationFailed as exc:
            db.session.rollback()
            errors = exc.fields
        except DomainError as exc:
            db.session.rollback()
            error = exc.message
    this_year = fiscal_year(utcnow())
    status = 422 if (errors or (error and request.method == "POST")) else 200
    return render_template("staff/event_announce.html", event=event, values=values, errors=errors, error=error,
                           recipients=recipients, rendered=rendered, groups=service.ATTENDED_GROUPS, blocked=blocked,
                           prefectures=PREFECTURES, years=list(range(this_year, this_year - 6, -1))), status
