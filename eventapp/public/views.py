"""Participant pages: catalogue, event page, sign-up, my registration."""

from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from .. import idempotency
from ..extensions import db
from ..formatting import KIND_LABELS, english_mode
from ..matching.public_views import prefill_from_invitation
from ..models import EVENT_KINDS, Event
from ..models.base import utcnow
from ..services import events as events_service
from ..services import matching as matching_service
from ..services import mypage as mypage_service
from ..services import payments
from ..services import registration as registration_service
from ..services.capacity import availability, counts_for
from ..services.errors import DomainError, ValidationFailed
from ..services.privacy import consent_language, current_notice
from ..services.tickets import qr_png, qr_svg
from . import bp, metadata
from .forms import signup_form_for


def _visible_event(slug: str) -> Event:
    event = db.session.execute(select(Event).where(Event.slug == slug)).scalar_one_or_none()
    if event is None or event.status == "draft":
        abort(404)
    return event


@bp.get("/")
def event_list():
    kind = request.args.get("kind")
    if kind not in EVENT_KINDS:
        kind = None
    now = utcnow()
    listing = events_service.catalogue(kind, now)
    availabilities = {e.id: availability(e, listing.counts[e.id], now) for e in listing.upcoming}
    return render_template("public/event_list.html", upcoming=listing.upcoming, past=listing.past,
                           availabilities=availabilities, kind=kind, kinds=KIND_LABELS)


@bp.get("/events/<slug>")
def event_detail(slug: str):
    event = _visible_event(slug)
    avail = availability(event, counts_for(event.id))
    return render_template("public/event_detail.html", event=event, availability=avail,
                           card=metadata.event_card(event), json_ld=metadata.event_json_ld(event, avail))


@bp.route("/events/<slug>/register", methods=["GET", "POST"])
@idempotency.form_view  # the form's hidden one-time key: a resubmitted sign-up gets its first answer
def signup(slug: str):
    event = _visible_event(slug)
    avail = availability(event, counts_for(event.id))
    form = signup_form_for(event, request.form if request.method == "POST" else None)
    error = preference_error = error_code = None
    form_language = "en" if english_mode() else "ja"
    if request.method == "GET" and request.args.get("invite"):
        prefill_from_invitation(form, event, request.args["invite"])  # personal link from an invitation mail
    if request.method == "POST" and avail.accepts_signups and form.validate():
        preferences = None
        if event.kind == "matching_session":  # the ranked organisations, fields pref_1…
            preferences = [request.form.get(f"pref_{n}") for n in range(1, matching_service.MAX_PREFERENCES + 1)]
        try:
            result = registration_service.sign_up(event.id, registration_service.SignupRequest(
                person=form.person_data(), answers=form.answers(event), consent=bool(form.consent_privacy.data),
                announcements_opt_in=bool(form.announcements_opt_in.data),
                companions=form.companions(event), preferences=preferences, source="web",
                locale=form_language, notice_shown=request.form.get("notice_shown") or None))
            location = url_for("public.manage", token=result.registration.manage_token, new=1)
            idempotency.remember(location)  # stored with the registration, in its transaction
            db.session.commit()
            return redirect(location, code=303)
        except ValidationFailed as exc:
            db.session.rollback()
            form.show_errors(exc.fields)
            error = exc.message
            preference_error = exc.fields.get("preferences")
        except DomainError as exc:
            db.session.rollback()
            error, error_code = exc.message, exc.code
            if exc.code == "duplicate":
                # In its own transaction, after the refused sign-up's rollback: the address's owner
                # gets the existing registration's manage link by mail; this page shows none of it.
                mypage_service.resend_manage_link(event.id, form.email.data or "")
                db.session.commit()
            avail = availability(event, counts_for(event.id))
    status = 422 if request.method == "POST" else 200
    notice = current_notice()
    notice_language = consent_language(form_language, notice.has_english)
    return render_template("public/signup.html", event=event, form=form, availability=avail, error=error,
                           error_code=error_code, notice=notice, notice_language=notice_language,
                           notice_text=notice.text(notice_language), english=form_language == "en",
                           preference_error=preference_error), status


@bp.get("/r/<token>")
def manage(token: str):
    registration = registration_service.get_by_manage_token(token)
    position = registration_service.waitlist_position(registration)
    event = registration.event
    qr = qr_svg(registration.ticket_code) if registration.status == "confirmed" and event.has_qr_ticket else None
    response = Response(render_template(
        # This registration only (its attendee, the address it was made with): nothing of the
        # address's other registrations, since a manage link proves no ownership of the mailbox.
        "public/manage.html", registration=registration, event=registration.event, email=registration.person.email,
        position=position, qr=qr, is_new=request.args.get("new") == "1", now=utcnow(),
        receipt=payments.receipt_payment(registration) if event.fee_yen > 0 else None,
    ))
    response.headers["Referrer-Policy"] = "no-referrer"  # the URL is the key to this page
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/r/<token>/receipt-name")
def receipt_name(token: str):
    """The participant sets the 宛名 of their 領収書 (e.g. their company)."""
    registration = registration_service.get_by_manage_token(token)
    payment = payments.receipt_payment(registration)
    if payment is None:
        abort(404)
    try:
        payments.set_receipt_name(payment, request.form.get("receipt_name", ""))
        db.session.commit()
        flash(_("領収書の宛名を変更しました。"), "success")
    except DomainError as exc:
        db.session.rollback()
        flash(" ".join(exc.fields.values()) or exc.message, "error")
    return redirect(url_for("public.manage", token=token) + "#fee", code=303)


@bp.route("/r/<token>/cancel", methods=["GET", "POST"])
def cancel(token: str):
    registration = registration_service.get_by_manage_token(token)
    if request.method == "GET" or registration.status == "cancelled":
        return render_template("public/cancel_confirm.html", registration=registration,
                               event=registration.event)
    try:
        registration_service.cancel(registration.id, by="self", group=request.form.get("scope") == "group")
        db.session.commit()
        flash(_("キャンセルしました。確認のメールをお送りしました。"), "success")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("public.manage", token=token), code=303)


@bp.get("/r/<token>/ticket.png")
def ticket_png(token: str):
    registration = registration_service.get_by_manage_token(token)
    # Online seminars have no ticket: attendance is recorded with the 出席コード.
    if registration.status != "confirmed" or not registration.event.has_qr_ticket:
        abort(404)
    return Response(qr_png(registration.ticket_code), mimetype="image/png",
                    headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@bp.get("/privacy")
def privacy():
    notice = current_notice()
    language = consent_language("en" if english_mode() else "ja", notice.has_english)
    return render_template("public/privacy.html", notice=notice, notice_language=language,
                           notice_text=notice.text(language))
