"""Participant side: personal invitation link, 出席コード entry, post-event survey."""

from __future__ import annotations

from flask import Response, flash, redirect, render_template, request, url_for

from ..extensions import db
from ..models.base import utcnow
from ..services import attendance, matching, surveys
from ..services import registration as registration_service
from ..services.errors import DomainError, ValidationFailed
from . import public_bp


@public_bp.get("/invite/<token>")
def invitation(token: str):
    invite = matching.invitation_by_token(token)
    # The sign-up page pre-fills name and email from the invitation.
    return redirect(url_for("public.signup", slug=invite.matching_event.slug, invite=token), code=303)


@public_bp.post("/r/<token>/attendance")
def attendance_code(token: str):
    registration = registration_service.get_by_manage_token(token)
    try:
        attendance.enter_code(registration, request.form.get("code", ""))
        db.session.commit()
        flash("出席を記録しました。ご参加ありがとうございます。", "success")
    except attendance.CodeRefused as exc:
        db.session.commit()  # the wrong try is counted (the lockout), nothing else was written
        flash(exc.message, "error")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("public.manage", token=token), code=303)


@public_bp.route("/r/<token>/survey", methods=["GET", "POST"])
def survey(token: str):
    registration = registration_service.get_by_manage_token(token)
    errors: dict[str, str] = {}
    values = request.form if request.method == "POST" else {}
    error = None
    if request.method == "POST":
        try:
            surveys.submit(registration, request.form)
            db.session.commit()
            return redirect(url_for("matching_public.survey", token=token, done=1), code=303)
        except ValidationFailed as exc:
            db.session.rollback()
            errors, error = exc.fields, exc.message
        except DomainError as exc:
            db.session.rollback()
            error = exc.message
    existing = surveys.response_for(registration.id)
    response = Response(render_template(
        "matching/survey.html", registration=registration, event=registration.event, errors=errors,
        values=values, error=error, existing=existing, done=request.args.get("done") == "1",
        open=surveys.can_answer(registration, utcnow())), status=422 if errors or error else 200)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def prefill_from_invitation(form, event, token: str) -> None:
    """Fill name, furigana and email from a valid invitation for this event; ignore anything else."""
    try:
        invite = matching.invitation_by_token(token)
    except DomainError:
        return
    if invite.matching_event_id != event.id or invite.person is None or not invite.person.email:
        return
    attendee = matching.invited_attendee(invite)
    form.email.data = invite.person.email
    for field, value in attendee.items():
        if value:
            form[field].data = value
