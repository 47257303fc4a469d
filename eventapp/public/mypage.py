"""マイページ (/my): sign in by a mailed link, then every registration of the address.

The participant's session lives in Flask's signed cookie under keys prefixed `my_` (Flask-Login is
for staff only): the id of the sign-in link used (checked against the database on every request,
so logout ends a copied cookie too), the person, the sign-in time and the last request's time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField

from ..extensions import db
from ..formatting import english_mode
from ..models import Person
from ..services import announcements as announcement_service
from ..services import mypage as mypage_service
from ..services import registration as registration_service
from ..services.calendar import personal_feed_links
from ..services.errors import DomainError, ValidationFailed
from ..services.exports import neutralise, to_csv
from ..services.tickets import qr_svg
from .forms import AttendeeForm, signup_form_for

bp = Blueprint("mypage", __name__, url_prefix="/my")

SESSION_KEYS = ("my_link_id", "my_person_id", "my_signed_in_at", "my_seen_at")


class LinkRequestForm(FlaskForm):
    email = EmailField(_l("メールアドレス"), render_kw={"autocomplete": "email", "inputmode": "email",
                                                    "maxlength": 254})


@bp.after_request
def _private(response: Response) -> Response:
    # Personal pages and a secret URL: never cached, never sent on as a Referer.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _end_session() -> None:
    for key in SESSION_KEYS:
        session.pop(key, None)


def _signed_in_person() -> Person | None:
    """The signed-in participant, or None (also once the session is idle or too old)."""
    started, seen = session.get("my_signed_in_at"), session.get("my_seen_at")
    if not isinstance(started, int | float) or not isinstance(seen, int | float):
        return None
    now = mypage_service.clock().timestamp()
    config = current_app.config
    if now - seen > config["MY_SESSION_IDLE_MINUTES"] * 60 or now - started > config["MY_SESSION_MAX_HOURS"] * 3600:
        _end_session()
        g.my_expired = True
        return None
    person = mypage_service.session_person(session.get("my_link_id"))
    if person is None or person.id != session.get("my_person_id"):
        _end_session()
        return None
    session["my_seen_at"] = int(now)
    return person


def participant_required(view: Callable) -> Callable:
    @wraps(view)
    def wrapper(*args, **kwargs):
        person = _signed_in_person()
        if person is None:
            if g.get("my_expired"):
                flash(_("一定時間操作がなかったため、ログアウトしました。もう一度リンクをお申し込みください。"), "info")
            else:
                flash(_("マイページを開くには、メールでお送りするリンクが必要です。"), "info")
            return redirect(url_for("mypage.request_link"), code=303)
        return view(person, *args, **kwargs)
    return wrapper


@bp.route("", methods=["GET", "POST"])
def request_link():
    form = LinkRequestForm(formdata=request.form if request.method == "POST" else None,
                           data={"email": request.args.get("email", "")[:254]})
    error = None
    if request.method == "POST" and form.validate():
        try:
            email = mypage_service.request_link(form.email.data or "")
            db.session.commit()
            # The same page for every valid address: whether anyone registered with it stays unsaid.
            return render_template("mypage/link_sent.html", email=email)
        except ValidationFailed as exc:
            db.session.rollback()
            form.email.errors = [exc.fields.get("email", exc.message)]
            error = exc.message
    return render_template("mypage/request.html", form=form, error=error), 422 if error else 200


@bp.route("/<token>", methods=["GET", "POST"])
def open_link(token: str):
    """GET asks for one click (mail scanners fetch links, and must not use them up); POST signs in."""
    try:
        if request.method == "GET":
            mypage_service.check_link(token)
            return render_template("mypage/confirm.html")
        link = mypage_service.consume_link(token)
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        return render_template("mypage/link_invalid.html", message=exc.message, code=exc.code), exc.status
    _end_session()
    now = int(mypage_service.clock().timestamp())
    session.update({"my_link_id": link.id, "my_person_id": link.person_id, "my_signed_in_at": now, "my_seen_at": now})
    return redirect(url_for("mypage.home"), code=303)


@bp.get("/")
@participant_required
def home(person: Person):
    upcoming, past = mypage_service.overview(person)
    tickets = {e.registration.id: qr_svg(e.registration.ticket_code) for e in upcoming
               if e.registration.status == "confirmed" and e.event.has_qr_ticket}
    consent = announcement_service.consent_for(person)
    announcement = {"subscribed": consent is not None and consent.is_active, "consent": consent,
                    "label": announcement_service.ANNOUNCEMENT_CONSENT_LABEL,
                    "text": announcement_service.ANNOUNCEMENT_CONSENT_TEXT,
                    "version": announcement_service.ANNOUNCEMENT_CONSENT_VERSION}
    return render_template("mypage/home.html", person=person, upcoming=upcoming, past=past, tickets=tickets,
                           feed=personal_feed_links(person), announcement=announcement)


@bp.post("/announcements")
@participant_required
def announcements(person: Person):
    """The mailbox is proven here (sign-in link), so the choice applies at once."""
    wanted = request.form.get("opt_in") == "1"
    announcement_service.set_from_mypage(person, wanted)
    db.session.commit()
    flash(_("イベントのお知らせを受け取る設定にしました。") if wanted else _("イベントのお知らせの配信を停止しました。"), "success")
    return redirect(url_for("mypage.home", _anchor="announcements"), code=303)


@bp.post("/logout")
def logout():
    mypage_service.sign_out(session.get("my_link_id"))
    db.session.commit()
    _end_session()
    flash(_("ログアウトしました。"), "success")
    return redirect(url_for("mypage.request_link"), code=303)


@bp.route("/registrations/<int:registration_id>/cancel", methods=["GET", "POST"])
@participant_required
def cancel(person: Person, registration_id: int):
    registration = _own(person, registration_id)
    if request.method == "GET":
        return render_template("mypage/cancel.html", registration=registration, event=registration.event)
    try:
        registration_service.cancel(registration.id, by="self")
        db.session.commit()
        flash(_("キャンセルしました。確認のメールをお送りしました。"), "success")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("mypage.home"), code=303)


@bp.route("/registrations/<int:registration_id>/edit", methods=["GET", "POST"])
@participant_required
def edit(person: Person, registration_id: int):
    registration = _own(person, registration_id)
    event = registration.event
    if request.method == "POST":
        form = signup_form_for(event, request.form, base=AttendeeForm)
    else:
        values = {**registration.attendee, **{f"q_{k}": v for k, v in
                                              registration_service.answers_by_key(registration).items()}}
        form = signup_form_for(event, None, base=AttendeeForm, data=values)
    error = None
    if request.method == "POST" and form.validate():
        try:
            changed = mypage_service.update_attendee(registration, form.person_data(), form.answers(event),
                                                     by=f"participant:{person.id}",
                                                     form_language="en" if english_mode() else "ja")
            db.session.commit()
            flash(_("登録内容を変更しました。") if changed else _("変更はありませんでした。"), "success")
            return redirect(url_for("mypage.home"), code=303)
        except ValidationFailed as exc:
            db.session.rollback()
            form.show_errors(exc.fields)
            error = exc.message
        except DomainError as exc:
            db.session.rollback()
            error = exc.message
    status = 422 if error else 200
    return render_template("mypage/edit.html", form=form, registration=registration, event=event,
                           error=error), status


@bp.post("/registrations/<int:registration_id>/resend")
@participant_required
def resend(person: Person, registration_id: int):
    registration = _own(person, registration_id)
    try:
        mypage_service.resend_ticket(registration)
        db.session.commit()
        flash(_("%(email)s にメールを再送しました。", email=person.email), "success")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("mypage.home"), code=303)


@bp.post("/feed/rotate")
@participant_required
def rotate_feed(person: Person):
    mypage_service.rotate_feed(person)
    db.session.commit()
    flash(_("カレンダーの購読URLを新しくしました。以前のURLは使えなくなりました。"), "success")
    return redirect(url_for("mypage.home", _anchor="calendar"), code=303)


@bp.post("/feed/revoke")
@participant_required
def revoke_feed(person: Person):
    mypage_service.revoke_feed(person)
    db.session.commit()
    flash(_("カレンダーの購読URLを無効にしました。"), "success")
    return redirect(url_for("mypage.home", _anchor="calendar"), code=303)


@bp.get("/export.<fmt>")
@participant_required
def export(person: Person, fmt: str):
    if fmt not in ("json", "csv"):
        return render_template("errors/error.html", status=404, title=_("ページが見つかりません"),
                               message=_("出力形式は JSON か CSV です。")), 404
    data = mypage_service.export_data(person)
    if fmt == "json":
        body = json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")
        mimetype = "application/json"
    else:
        header, rows = mypage_service.export_rows(data)
        body = to_csv(header, [[neutralise(cell) for cell in row] for row in rows])
        mimetype = "text/csv; charset=utf-8"
    return Response(body, mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="my-data.{fmt}"'})


def _own(person: Person, registration_id: int):
    from flask import abort
    try:
        return mypage_service.own_registration(person, registration_id)
    except DomainError:
        abort(404)
