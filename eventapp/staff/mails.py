"""参加者にメール: compose → preview → test to oneself → confirm → send now or at a time; the list of an
event's mails, where a scheduled one can be cancelled. The verbs are in services/staff_mail.py."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..auth.decorators import role_required
from ..extensions import db
from ..formatting import format_datetime
from ..models import StaffMail
from ..params import parse_int
from ..services import staff_mail as service
from ..services.errors import DomainError, NotFound, ValidationFailed
from . import bp
from .events import load_event
from .forms import parse_datetime


def _load(event_id: int, mail_id: int) -> StaffMail:
    try:
        return service.get_mail(mail_id, event_id)
    except NotFound:
        abort(404)


def _form_values() -> dict:
    return {"subject": request.form.get("subject", ""), "body": request.form.get("body", ""),
            "audience": request.form.get("audience", ""), "attachments": request.form.getlist("attachments")}


def _compose(event, values: dict, errors: dict, staff_mail: StaffMail | None = None):
    counts = {key: len(service.recipients(event.id, key)) for key in service.AUDIENCE_LABELS}
    return render_template("staff/mail_compose.html", event=event, values=values, errors=errors, counts=counts,
                           staff_mail=staff_mail, audiences=service.AUDIENCE_LABELS,
                           attachment_labels=service.ATTACHMENT_LABELS,
                           placeholders=service.PLACEHOLDERS), 422 if errors else 200


def _save(event, staff_mail: StaffMail | None):
    values = _form_values()
    try:
        saved = service.save_draft(event, values, user=current_user._get_current_object(),
                                   mail_id=staff_mail.id if staff_mail else None)
        db.session.commit()
    except ValidationFailed as exc:
        db.session.rollback()
        return _compose(event, values, exc.fields, staff_mail)
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("staff.event_mails", event_id=event.id), code=303)
    return redirect(url_for("staff.mail_preview", event_id=event.id, mail_id=saved.id), code=303)


@bp.route("/events/<int:event_id>/message", methods=["GET", "POST"])
@role_required("staff")
def event_message(event_id: int):
    """Compose a new mail: saving it makes a draft and shows its preview (nothing is sent yet)."""
    event = load_event(event_id)
    if request.method == "POST":
        return _save(event, None)
    return _compose(event, {"audience": "confirmed", "attachments": []}, {})


@bp.route("/events/<int:event_id>/mails/<int:mail_id>/edit", methods=["GET", "POST"])
@role_required("staff")
def mail_edit(event_id: int, mail_id: int):
    event = load_event(event_id)
    staff_mail = _load(event_id, mail_id)
    if staff_mail.status != "draft":
        return redirect(url_for("staff.mail_preview", event_id=event_id, mail_id=mail_id), code=303)
    if request.method == "POST":
        return _save(event, staff_mail)
    values = {"subject": staff_mail.subject, "body": staff_mail.body, "audience": staff_mail.audience,
              "attachments": staff_mail.attachments}
    return _compose(event, values, {}, staff_mail)


@bp.get("/events/<int:event_id>/mails")
@role_required("staff")
def event_mails(event_id: int):
    event = load_event(event_id)
    return render_template("staff/mail_list.html", event=event, mails=service.mails_for_event(event.id),
                           audiences=service.AUDIENCE_LABELS, statuses=service.STATUS_LABELS)


@bp.get("/events/<int:event_id>/mails/<int:mail_id>")
@role_required("staff")
def mail_preview(event_id: int, mail_id: int):
    """The mail as one real recipient gets it (the first, or the one chosen with ?r=)."""
    event = load_event(event_id)
    staff_mail = _load(event_id, mail_id)
    people, chosen, rendered = service.preview(staff_mail, parse_int(request.args.get("r"), None, minimum=1))
    return render_template("staff/mail_preview.html", event=event, staff_mail=staff_mail, people=people,
                           chosen=chosen, rendered=rendered, audiences=service.AUDIENCE_LABELS,
                           statuses=service.STATUS_LABELS, attachment_labels=service.ATTACHMENT_LABELS)


@bp.post("/events/<int:event_id>/mails/<int:mail_id>/test")
@role_required("staff")
def mail_test(event_id: int, mail_id: int):
    _load(event_id, mail_id)
    chosen = parse_int(request.form.get("r"), None, minimum=1)
    try:
        message = service.send_test(mail_id, user=current_user._get_current_object(), registration_id=chosen)
        db.session.commit()
        flash(f"{message.to_addr} にテストメールを送信しました(件名に【テスト】が付きます)。", "success")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("staff.mail_preview", event_id=event_id, mail_id=mail_id, r=chosen), code=303)


def _confirm_page(event, staff_mail: StaffMail, errors: dict, values: dict):
    people = service.recipients(staff_mail.event_id, staff_mail.audience)
    return render_template("staff/mail_confirm.html", event=event, staff_mail=staff_mail, count=len(people),
                           errors=errors, values=values, audiences=service.AUDIENCE_LABELS,
                           attachment_labels=service.ATTACHMENT_LABELS), 422 if errors else 200


@bp.get("/events/<int:event_id>/mails/<int:mail_id>/confirm")
@role_required("staff")
def mail_confirm(event_id: int, mail_id: int):
    event = load_event(event_id)
    staff_mail = _load(event_id, mail_id)
    if staff_mail.status != "draft":
        return redirect(url_for("staff.mail_preview", event_id=event_id, mail_id=mail_id), code=303)
    return _confirm_page(event, staff_mail, {}, {"when": "now"})


@bp.post("/events/<int:event_id>/mails/<int:mail_id>/send")
@role_required("staff")
def mail_send(event_id: int, mail_id: int):
    event = load_event(event_id)
    staff_mail = _load(event_id, mail_id)
    values = dict(request.form.items())
    confirmed = values.get("confirm") == "yes"
    user = current_user._get_current_object()
    try:
        if values.get("when") == "later":
            try:
                at = parse_datetime(values.get("scheduled_at", ""))
            except ValueError:
                raise ValidationFailed({"scheduled_at": "送信日時を正しく入力してください。"}) from None
            scheduled = service.schedule(staff_mail.id, at, user=user, confirmed=confirmed)
            db.session.commit()
            flash(f"{format_datetime(scheduled.scheduled_at)}に送信を予約しました。"
                  "予約はこの一覧から取り消せます。", "success")
        else:
            count = service.send_now(staff_mail.id, user=user, confirmed=confirmed)
            db.session.commit()
            flash(f"{count}名にメールを送信しました(送信待ちの列に入りました)。", "success")
    except ValidationFailed as exc:
        db.session.rollback()
        return _confirm_page(event, _load(event_id, mail_id), exc.fields, values)
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("staff.event_mails", event_id=event_id), code=303)


@bp.post("/events/<int:event_id>/mails/<int:mail_id>/cancel")
@role_required("staff")
def mail_cancel(event_id: int, mail_id: int):
    _load(event_id, mail_id)
    try:
        service.cancel(mail_id, user=current_user._get_current_object(), event_id=event_id)
        db.session.commit()
        flash("取り消しました。このメールは送信されません。", "success")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("staff.event_mails", event_id=event_id), code=303)
