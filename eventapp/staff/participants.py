"""Participant lists and the actions staff take on registrations and people."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..auth.decorators import role_required
from ..extensions import db
from ..models import ATTENDEE_FIELDS, Person, Registration
from ..params import parse_int, query_int
from ..public.forms import IWATE_RELATION_CHOICES
from ..services import lottery, privacy
from ..services import participants as service
from ..services.capacity import counts_for
from ..services.errors import DomainError, NotFound, ValidationFailed
from ..services.outbox import undeliverable_marks
from ..services.people import PREFECTURES
from . import bp
from .events import load_event


def load_registration(registration_id: int) -> Registration:
    return db.session.get(Registration, registration_id) or abort(404)


def _back(registration: Registration):
    target = request.form.get("back")
    if target and target.startswith("/staff/") and not target.startswith("//"):
        return redirect(target, code=303)
    return redirect(url_for("staff.registration_detail", registration_id=registration.id), code=303)


@bp.get("/events/<int:event_id>/participants")
@role_required("staff")
def participant_list(event_id: int):
    event = load_event(event_id)
    args = request.args
    question_id = query_int("question", None)
    status = args.get("status", "active")
    sort = args.get("sort", "kana")
    result = service.participant_list(event, q=args.get("q", ""), status=status, question_id=question_id,
                                      answer=args.get("answer", ""), sort=sort, page=query_int("page", 1))
    undeliverable = undeliverable_marks(r.person.email for r in result.rows if r.person is not None)
    return render_template("staff/participants.html", event=event, result=result, q=args.get("q", ""),
                           status=status, sort=sort, question_id=question_id, answer=args.get("answer", ""),
                           undeliverable=undeliverable)


@bp.route("/events/<int:event_id>/participants/new", methods=["GET", "POST"])
@role_required("staff")
def participant_new(event_id: int):
    event = load_event(event_id)
    errors: dict = {}
    values = dict(request.form.items()) if request.method == "POST" else {"iwate_relation": "none"}
    if request.method == "POST":
        person = {k: values.get(k, "") for k in ("name", "furigana", "email", "phone", "prefecture",
                                                   "iwate_relation", "occupation", "skills")}
        answers = {q.key: request.form.get(f"answers.{q.key}", "") for q in event.active_questions}
        # Companion slots left without name and furigana are not companions; errors come back per
        # companion given (companions.<n>.…) and are shown at the slot they came from.
        slots = [n for n in range(event.max_companions)
                 if values.get(f"companions.{n}.name", "").strip() or values.get(f"companions.{n}.furigana", "").strip()]
        companions = [{"name": values.get(f"companions.{n}.name", ""), "furigana": values.get(f"companions.{n}.furigana", ""),
                       "answers": {q.key: values.get(f"companions.{n}.answers.{q.key}", "") for q in event.active_questions}}
                      for n in slots]
        try:
            result = service.register_on_behalf(event.id, person, answers, companions=companions,
                                                notify=bool(values.get("notify")))
            db.session.commit()
            state = {"confirmed": "参加確定", "applied": "抽選に応募(抽選前)"}.get(
                result.registration.status, f"キャンセル待ち({result.waitlist_position}番目)")
            flash(f"{result.registration.name} 様を登録しました: {state}", "success")
            return redirect(url_for("staff.participant_list", event_id=event.id), code=303)
        except ValidationFailed as exc:
            db.session.rollback()
            errors = {_slot_field(name, slots): message for name, message in exc.fields.items()}
        except DomainError as exc:
            db.session.rollback()
            errors = {"_": exc.message}
    return render_template("staff/participant_new.html", event=event, values=values, errors=errors,
                           prefectures=PREFECTURES, relations=IWATE_RELATION_CHOICES,
                           counts=counts_for(event.id)), 422 if errors else 200


def _attendee_values(registration: Registration) -> dict:
    """The edit form's values: the registration's attendee and its answers, as the form names them."""
    values = dict(registration.attendee)
    by_question = {a.question_id: a.value for a in registration.answers}
    values.update({f"answers.{q.key}": by_question.get(q.id, "") for q in registration.event.active_questions})
    return values


def _render_registration(registration: Registration, values: dict | None = None, errors: dict | None = None):
    return render_template("staff/registration.html", registration=registration, event=registration.event,
                           person=registration.person, counts=counts_for(registration.event_id),
                           values=values or _attendee_values(registration), errors=errors or {},
                           prefectures=PREFECTURES, relations=IWATE_RELATION_CHOICES)


@bp.get("/registrations/<int:registration_id>")
@role_required("staff")
def registration_detail(registration_id: int):
    return _render_registration(load_registration(registration_id))


@bp.post("/registrations/<int:registration_id>/details")
@role_required("staff")
def registration_update(registration_id: int):
    """Correct the attendee details and answers of this registration (before/after in the audit log)."""
    registration = load_registration(registration_id)
    person = {name: request.form.get(name, "") for name in ATTENDEE_FIELDS}
    answers = {q.key: request.form.get(f"answers.{q.key}", "") for q in registration.event.active_questions}
    try:
        changes = service.update_registration_details(registration.id, person, answers,
                                                      staff_user=current_user._get_current_object())
        db.session.commit()
    except ValidationFailed as exc:
        db.session.rollback()
        registration = load_registration(registration_id)
        return _render_registration(registration, dict(request.form.items()), exc.fields), 422
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("staff.registration_detail", registration_id=registration_id), code=303)
    flash("参加者情報を修正しました(監査ログに記録しました)。" if changes else "変更はありませんでした。", "success")
    return redirect(url_for("staff.registration_detail", registration_id=registration_id), code=303)


@bp.post("/registrations/<int:registration_id>/confirm")
@role_required("staff")
def registration_confirm(registration_id: int):
    registration = load_registration(registration_id)
    try:
        over = service.confirm_waitlisted(registration.id)
        db.session.commit()
        if over:
            counts = counts_for(registration.event_id)
            flash(f"参加確定にしました。定員を超えています({counts.confirmed}/{registration.event.capacity}名)。"
                  "会場・バス・宿泊の手配をご確認ください。", "warning")
        else:
            flash("参加確定にしました。ご本人にメールでお知らせします。", "success")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return _back(registration)


@bp.post("/registrations/<int:registration_id>/cancel")
@role_required("staff")
def registration_cancel(registration_id: int):
    registration = load_registration(registration_id)
    try:
        service.cancel_on_behalf(registration.id)
        db.session.commit()
        flash("キャンセルしました。ご本人にメールでお知らせします。", "success")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return _back(registration)


@bp.post("/registrations/<int:registration_id>/note")
@role_required("staff")
def registration_note(registration_id: int):
    registration = load_registration(registration_id)
    try:
        service.set_note(registration.id, request.form.get("staff_note", ""))
        db.session.commit()
        flash("メモを保存しました。", "success")
    except DomainError as exc:
        db.session.rollback()
        flash(" ".join(exc.fields.values()) or exc.message, "error")
    return _back(registration)


@bp.post("/registrations/<int:registration_id>/lottery-priority")
@role_required("staff")
def registration_lottery_priority(registration_id: int):
    registration = load_registration(registration_id)
    try:
        lottery.set_priority(registration.id, request.form.get("priority") == "1")
        db.session.commit()
        flash("抽選の優先枠を保存しました。", "success")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return _back(registration)


@bp.post("/registrations/<int:registration_id>/resend")
@role_required("staff")
def registration_resend(registration_id: int):
    registration = load_registration(registration_id)
    try:
        service.resend_confirmation(registration.id)
        db.session.commit()
        flash(f"{registration.person.email} に確認メールを再送しました。", "success")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return _back(registration)


@bp.get("/people")
@role_required("staff")
def people_search():
    q = request.args.get("q", "")
    return render_template("staff/people_search.html", q=q, result=service.search_people(q))


@bp.get("/people/<int:person_id>")
@role_required("staff")
def person_detail(person_id: int):
    try:
        person, registrations, attended = service.person_history(person_id)
    except DomainError:
        abort(404)
    mark = undeliverable_marks([person.email]).get((person.email or "").lower())
    return render_template("staff/person.html", person=person, registrations=registrations, attended=attended,
                           undeliverable=mark)


@bp.get("/people/<int:person_id>/merge")
@role_required("staff")
def person_merge(person_id: int):
    """Merge another person (found by e-mail address) into this one: first a preview of what moves."""
    person = db.session.get(Person, person_id) or abort(404)
    email = request.args.get("email", "")
    plan, error = None, ""
    if email:
        try:
            plan = service.merge_preview(person.id, email)
        except DomainError as exc:
            error = exc.message
    return render_template("staff/person_merge.html", person=person, email=email, plan=plan,
                           error=error), 422 if error else 200


@bp.post("/people/<int:person_id>/merge")
@role_required("staff")
def person_merge_confirm(person_id: int):
    merge_id = parse_int(request.form.get("merge_id"), None, minimum=1)  # bounded: 2**64 is no person
    if merge_id is None or request.form.get("confirm") != "yes":
        flash("統合するには内容を確認してチェックを入れてください。", "error")
        return redirect(url_for("staff.person_merge", person_id=person_id, email=request.form.get("email", "")),
                        code=303)
    try:
        plan = service.merge_people(person_id, merge_id, staff_user=current_user._get_current_object())
        db.session.commit()
    except NotFound:
        db.session.rollback()
        abort(404)
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("staff.person_merge", person_id=person_id, email=request.form.get("email", "")),
                        code=303)
    flash(f"統合しました(申込{len(plan.registrations)}件を移動しました)。", "success")
    return redirect(url_for("staff.person_detail", person_id=person_id), code=303)


@bp.post("/people/<int:person_id>/anonymise")
@role_required("staff")
def person_anonymise(person_id: int):
    if request.form.get("confirm") != "yes":
        flash("匿名化するには確認のチェックを入れてください。", "error")
        return redirect(url_for("staff.person_detail", person_id=person_id), code=303)
    try:
        privacy.anonymise_person(person_id, reason="本人の削除依頼")
        db.session.commit()
        flash("匿名化しました。氏名・連絡先・回答は削除され、参加人数の集計だけが残ります。", "success")
    except DomainError:
        db.session.rollback()
        abort(404)
    return redirect(url_for("staff.person_detail", person_id=person_id), code=303)


def _slot_field(name: str, slots: list[int]) -> str:
    """`companions.<n>.<field>` of the n-th companion given → the form slot it was typed in."""
    parts = name.split(".", 2)
    if len(parts) == 3 and parts[0] == "companions" and parts[1].isdigit() and int(parts[1]) < len(slots):
        return f"companions.{slots[int(parts[1])]}.{parts[2]}"
    return name
