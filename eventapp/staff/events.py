"""Event management: list, create, edit (fields, programme, questions), duplicate, publish, cancel, export."""

from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for

from ..auth.decorators import role_required
from ..extensions import db
from ..formatting import KIND_LABELS
from ..models import QUESTION_KINDS, Event
from ..params import query_int
from ..services import exports, lottery, staff_events
from ..services.calendar import ALARM_LABELS
from ..services.capacity import counts_for, roster_frozen
from ..services.errors import DomainError, ValidationFailed
from ..services.events import SLUG_LIMIT, TEXT_LIMITS
from ..services.reminders import REMINDER_LABELS
from . import bp
from .forms import (
    EVENT_DATETIMES,
    day_rows,
    event_data,
    event_values,
    format_items,
    parse_datetime,
    question_rows,
)

QUESTION_KIND_LABELS = {"text": "自由記述", "choice": "選択肢", "yesno": "はい/いいえ"}


def load_event(event_id: int) -> Event:
    return db.session.get(Event, event_id) or abort(404)


@bp.get("/events")
@role_required("staff")
def event_list():
    show = request.args.get("show", "upcoming")
    listing = staff_events.event_page(show, query_int("page", 1))
    return render_template("staff/event_list.html", events=listing.events, show=show, counts=listing.counts,
                           listing=listing)


def _render_form(event: Event | None, values: dict, errors: dict, status: int = 200):
    # maxlength from the services' limits (the columns' lengths), so the browser stops where they do.
    limits = {**TEXT_LIMITS, "slug": SLUG_LIMIT}
    return render_template("staff/event_form.html", event=event, values=values, errors=errors,
                           kinds=KIND_LABELS, datetime_labels=EVENT_DATETIMES, limits=limits,
                           alarm_labels=ALARM_LABELS, reminder_labels=REMINDER_LABELS), status


@bp.route("/events/new", methods=["GET", "POST"])
@role_required("staff")
def event_new():
    if request.method == "GET":
        return _render_form(None, event_values(None), {})
    data, errors = event_data(request.form)
    if not errors:
        try:
            event = staff_events.create(data)
            db.session.commit()
            flash("イベントを作成しました(非公開)。日程・設問を確認してから公開してください。", "success")
            return redirect(url_for("staff.event_detail", event_id=event.id), code=303)
        except ValidationFailed as exc:
            db.session.rollback()
            errors = exc.fields
    return _render_form(None, event_values(None, request.form), errors, 422)


@bp.route("/events/<int:event_id>/edit", methods=["GET", "POST"])
@role_required("staff")
def event_edit(event_id: int):
    event = load_event(event_id)
    if request.method == "GET":
        return _render_form(event, event_values(event), {})
    data, errors = event_data(request.form)
    if not errors:
        try:
            _, promoted = staff_events.change_event(event.id, data)
            db.session.commit()
            flash("イベントを更新しました。" + (f"キャンセル待ちの{promoted}名が申込順に参加確定になり、メールでお知らせします。"
                                               if promoted else ""), "success")
            return redirect(url_for("staff.event_detail", event_id=event.id), code=303)
        except ValidationFailed as exc:
            db.session.rollback()
            errors = exc.fields
    return _render_form(event, event_values(event, request.form), errors, 422)


@bp.get("/events/<int:event_id>")
@role_required("staff")
def event_detail(event_id: int):
    event = load_event(event_id)
    return render_template("staff/event_detail.html", event=event, counts=counts_for(event.id),
                           frozen=roster_frozen(event), presets=exports.PRESETS,
                           question_kinds=QUESTION_KIND_LABELS)


@bp.route("/events/<int:event_id>/programme", methods=["GET", "POST"])
@role_required("staff")
def event_programme(event_id: int):
    event = load_event(event_id)
    errors: dict = {}
    status = 200
    if request.method == "POST":
        rows, errors = day_rows(request.form)
        if not errors:
            try:
                staff_events.update_days(event.id, rows)
                db.session.commit()
                flash("日程・プログラムを保存しました。", "success")
                return redirect(url_for("staff.event_detail", event_id=event.id), code=303)
            except ValidationFailed as exc:
                db.session.rollback()
                errors = exc.fields
        status = 422
    return render_template("staff/event_programme.html", event=event, errors=errors,
                           format_items=format_items, form=request.form if status == 422 else None), status


@bp.route("/events/<int:event_id>/questions", methods=["GET", "POST"])
@role_required("staff")
def event_questions(event_id: int):
    event = load_event(event_id)
    errors: dict = {}
    status = 200
    if request.method == "POST":
        try:
            staff_events.update_questions(event.id, question_rows(request.form))
            db.session.commit()
            flash("設問を保存しました。削除した設問への回答は保存されたままです。", "success")
            return redirect(url_for("staff.event_questions", event_id=event.id), code=303)
        except ValidationFailed as exc:
            db.session.rollback()
            errors, status = exc.fields, 422
    return render_template("staff/event_questions.html", event=event, errors=errors, kinds=QUESTION_KIND_LABELS,
                           all_kinds=QUESTION_KINDS), status


@bp.post("/events/<int:event_id>/status")
@role_required("staff")
def event_status(event_id: int):
    event = load_event(event_id)
    target = request.form.get("status", "")
    try:
        staff_events.set_status(event.id, target)
        db.session.commit()
        flash("公開しました。" if target == "published" else "非公開にしました(一覧・申込ページに表示されません)。",
              "success")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("staff.event_detail", event_id=event.id), code=303)


@bp.post("/events/<int:event_id>/draw")
@role_required("staff")
def event_draw(event_id: int):
    """「今すぐ抽選する」: the draw, once (a second press, or the scheduled pass before it, is refused)."""
    event = load_event(event_id)
    try:
        result = lottery.draw(event.id)
        db.session.commit()
        rest = (f"キャンセル待ち{result.waitlisted}名" if result.waitlisted or not result.not_selected
                else f"落選{result.not_selected}名")
        flash(f"抽選しました: 当選{result.won}名、{rest}。結果をメールでお知らせします。", "success")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("staff.event_detail", event_id=event.id), code=303)


@bp.route("/events/<int:event_id>/cancel", methods=["GET", "POST"])
@role_required("staff")
def event_cancel(event_id: int):
    event = load_event(event_id)
    if request.method == "POST":
        if request.form.get("confirm_title", "").strip() != event.title.strip():
            flash("確認のため、イベント名を正確に入力してください。", "error")
        else:
            try:
                cancelled = staff_events.cancel_event(event.id, reason=request.form.get("reason", ""))
                db.session.commit()
                flash(f"イベントを中止しました。{len(cancelled)}名に中止のお知らせを送信します。", "success")
                return redirect(url_for("staff.event_detail", event_id=event.id), code=303)
            except DomainError as exc:
                db.session.rollback()
                flash(exc.message, "error")
    return render_template("staff/event_cancel.html", event=event, counts=counts_for(event.id))


@bp.route("/events/<int:event_id>/duplicate", methods=["GET", "POST"])
@role_required("staff")
def event_duplicate(event_id: int):
    event = load_event(event_id)
    errors: dict = {}
    values = {"slug": f"{event.slug}-copy", "title": event.title, "mode": "days", "shift_days": "364",
              "new_start": ""}
    if request.method == "POST":
        values = dict(request.form.items())
        shift_days = new_start = None
        try:
            if values.get("mode") == "start":
                new_start = parse_datetime(values.get("new_start", ""))
                if new_start is None:
                    errors["new_start"] = "新しい開始日時を入力してください。"
            else:
                shift_days = int(values.get("shift_days", "").strip())
        except ValueError:
            errors["shift"] = "日数は整数、開始日時は日付と時刻で入力してください。"
        if not errors:
            try:
                copy = staff_events.duplicate_event(event.id, slug=values.get("slug", "").strip(),
                                                    title=values.get("title"), shift_days=shift_days,
                                                    new_start=new_start)
                db.session.commit()
                flash("イベントを複製しました(非公開)。内容を確認してから公開してください。", "success")
                return redirect(url_for("staff.event_detail", event_id=copy.id), code=303)
            except ValidationFailed as exc:
                db.session.rollback()
                errors = exc.fields
    return render_template("staff/event_duplicate.html", event=event, values=values, errors=errors), \
        422 if errors else 200


@bp.post("/events/<int:event_id>/export")
@role_required("staff")
def event_export(event_id: int):
    event = load_event(event_id)
    try:
        content, mimetype, filename = exports.export(event, request.form.get("preset", ""),
                                                     request.form.get("format", "csv"))
    except ValidationFailed as exc:
        db.session.rollback()
        flash(" ".join(exc.fields.values()) or exc.message, "error")
        return redirect(url_for("staff.event_detail", event_id=event.id), code=303)
    db.session.commit()
    response = Response(content, content_type=mimetype)  # mimetype= would add a second charset
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"  # personal data: never kept by a proxy or the browser
    return response
