"""Sign-up, cancellation and waiting-list promotion.

Each workflow follows lock → re-check → write inside the caller's transaction; the caller commits
once. Mails are queued in the outbox in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flask_babel import gettext as _
from flask_babel import lazy_gettext
from sqlalchemy import and_, bindparam, func, insert, or_, select
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from .. import metrics
from ..extensions import db
from ..models import ATTENDEE_FIELDS, MAX_COMPANIONS_LIMIT, Answer, Event, Registration
from ..models.base import utcnow
from ..models.registration import MAIL_LOCALES
from . import mail
from .capacity import availability, counts_for, lock_event, roster_frozen
from .errors import DomainError, NotFound, ValidationFailed
from .people import (
    PersonData,
    attendee_values,
    clean_text,
    create_people_without_email,
    find_or_create_person,
    validate_person,
)
from .privacy import DEFAULT_NOTICE, NOTICE_HAS_ENGLISH, NOTICE_VERSION, consent_language
from .tickets import make_manage_token, make_ticket_code

MAX_ANSWER = 2000
YES_VALUES = {"yes", "true", "1", "はい"}
NO_VALUES = {"no", "false", "0", "いいえ"}

CLOSED_MESSAGES = {
    "cancelled": ("event_cancelled", lazy_gettext("このイベントは中止になりました。")),
    "draft": ("registration_closed", lazy_gettext("このイベントは現在申し込みを受け付けていません。")),
    "not_yet_open": ("registration_not_open", lazy_gettext("申し込み受付はまだ始まっていません。")),
    "closed": ("registration_closed", lazy_gettext("申し込み受付は終了しました。")),
}


DUPLICATE_MESSAGE = lazy_gettext("このメールアドレスでのお申し込みを確認するためのリンクをメールでお送りしました。")


@dataclass(frozen=True)
class SignupResult:
    registration: Registration
    waitlist_position: int | None
    # The companions' registrations (同行者), in the order given; each waits one place after the other.
    companions: list[Registration] = field(default_factory=list)


@dataclass(frozen=True)
class SignupRequest:
    """One sign-up as every channel gives it (form, API, staff phone sign-up, walk-in), already
    translated from the channel's own format; `sign_up` validates all of it in one pass."""

    person: dict
    answers: dict | None = None
    consent: bool = False
    # 「次回以降のイベントのお知らせを受け取る」 ticked: only asks the mailbox to confirm (announcements.request_opt_in).
    announcements_opt_in: bool = False
    # Companions (同行者): [{"name", "furigana", "answers": {question key: value}}, …]
    companions: list[dict] = field(default_factory=list)
    # A matching session's ranked organisation ids (form fields pref_1…, or the API's list); given,
    # they are validated and stored; None: not asked (staff sign-ups, walk-ins).
    preferences: list | None = None
    source: str = "web"
    # The language the person signed up in ('ja' or 'en'; anything else is 'ja'): their mails use it.
    # "en" also takes an optional name reading in kana or Latin letters and records the notice's
    # English text as the one consented to, when the version has one (docs/i18n.md).
    locale: str = "ja"
    # The notice the form rendered, "<version>/<ja|en>" (its hidden field); given, it must be the one
    # the server would show now (else the notice changed meanwhile and is shown again). None: the
    # current version in the sign-up's language is recorded (API, staff sign-ups).
    notice_shown: str | None = None
    staff_override: bool = False
    notify: bool = True
    # False only for staff-entered walk-ins: an empty address is allowed and the person gets no mail.
    email_required: bool = True
    # False only for walk-ins: door staff may leave required questions empty (stored as no answer).
    require_answers: bool = True
    now: datetime | None = None


def validate_answers(event: Event, raw: dict, *, require: bool = True) -> tuple[dict[int, str], dict[str, str]]:
    """Answers keyed by question id, and errors keyed by `answers.<question key>`.

    `require=False` (staff corrections): a required question may be left empty."""
    values: dict[int, str] = {}
    errors: dict[str, str] = {}
    raw = raw or {}
    for question in event.active_questions:
        field = f"answers.{question.key}"
        given = raw.get(question.key)
        if isinstance(given, bool):
            given = "yes" if given else "no"
        text = clean_text(given if given is not None else "", multiline=question.kind == "text")
        if not text:
            if question.required and require:
                errors[field] = _("「%(label)s」に回答してください。", label=question.label)
            continue
        if question.kind == "yesno":
            if text.lower() in YES_VALUES:
                text = "yes"
            elif text.lower() in NO_VALUES:
                text = "no"
            else:
                errors[field] = _("「%(label)s」は「はい」か「いいえ」で回答してください。", label=question.label)
                continue
        elif question.kind == "choice" and text not in question.choices:
            errors[field] = _("「%(label)s」は選択肢から選んでください。", label=question.label)
            continue
        elif len(text) > MAX_ANSWER:
            errors[field] = _("「%(label)s」は%(max)s文字以内で回答してください。", label=question.label, max=MAX_ANSWER)
            continue
        values[question.id] = text
    return values, errors


# Built once, as it runs on every sign-up: the event with its questions (the answers are validated
# against them) and, as columns, the current privacy-notice version the sign-up records and whether
# it has an English text.
_EVENT_WITH_QUESTIONS = (select(Event, NOTICE_VERSION.scalar_subquery(), NOTICE_HAS_ENGLISH.scalar_subquery())
                         .where(Event.id == bindparam("event_id")).options(joinedload(Event.questions)))
# The sign-up's rows are written with INSERT … RETURNING, which gives back persistent objects: a
# fraction of the Python work of adding them and flushing the unit of work (measured), and all of
# it happens while the event is locked.
_INSERT_REGISTRATION = insert(Registration).returning(Registration)
_INSERT_REGISTRATIONS = insert(Registration).returning(Registration, sort_by_parameter_order=True)
_INSERT_ANSWERS = insert(Answer).returning(Answer, sort_by_parameter_order=True)


def register(event_id: int, person_input: dict, answers_input: dict | None, *, consent: bool,
             source: str = "web", staff_override: bool = False, notify: bool = True,
             email_required: bool = True, now: datetime | None = None) -> SignupResult:
    """A single person's sign-up: a thin wrapper over `sign_up` kept for the demo loader and tests."""
    return sign_up(event_id, SignupRequest(
        person=person_input, answers=answers_input, consent=consent, source=source,
        staff_override=staff_override, notify=notify, email_required=email_required, now=now))


def _validate_companions(event: Event, raw: list[dict], *,
                         latin_reading: bool = False) -> tuple[list[tuple[PersonData, dict[int, str]]], dict]:
    """Each companion's name, furigana and answers; errors keyed `companions.<n>.<field>`."""
    companions: list[tuple[PersonData, dict[int, str]]] = []
    errors: dict[str, str] = {}
    if len(raw) > event.max_companions:
        if event.max_companions == 0:
            errors["companions"] = _("このイベントは同行者と一緒に申し込むことはできません。")
        else:
            errors["companions"] = _("同行者は%(max)s名までです。", max=event.max_companions)
        return companions, errors
    for n, given in enumerate(raw):
        given = given if isinstance(given, dict) else {}
        prefix = f"companions.{n}."
        try:
            # Name and furigana only: the address, phone and profile are the lead's to give.
            data = validate_person({"name": given.get("name"), "furigana": given.get("furigana")},
                                   email_required=False, latin_reading=latin_reading)
        except ValidationFailed as exc:
            errors.update({prefix + key: message for key, message in exc.fields.items()})
            data = None
        answers, answer_errors = validate_answers(event, given.get("answers") or {})
        errors.update({prefix + key: message for key, message in answer_errors.items()})
        if data is not None:
            companions.append((data, answers))
    return companions, errors


def _preferences(event: Event, request: SignupRequest) -> tuple[list[int] | None, dict[str, str]]:
    """Ranked organisation ids to store (None: nothing to store), and errors under `preferences`."""
    if event.kind != "matching_session":
        if request.preferences:
            return None, {"preferences": _("このイベントでは希望する団体を選べません。")}
        return None, {}
    if request.preferences is None:
        # Not asked (staff sign-ups, walk-ins, an API client that sends none): nothing to store. The
        # form always sends its list, so there at least one organisation must be chosen.
        return None, {}
    from .matching import parse_preferences  # matching imports this module
    try:
        return parse_preferences(event, list(request.preferences or [])), {}
    except ValidationFailed as exc:
        return None, exc.fields


def sign_up(event_id: int, request: SignupRequest) -> SignupResult:
    """THE sign-up: the person, their answers and companions, confirmed together while seats are
    left for the whole group, otherwise waitlisted together (FIFO, no overtaking); during a
    lottery's application period they apply together (status 'applied').

    Every channel calls this (public form, API, staff phone sign-ups, walk-ins); views only
    translate their input into a SignupRequest and the result (or the errors) back."""
    row = db.session.execute(_EVENT_WITH_QUESTIONS, {"event_id": event_id}).unique().one_or_none()
    event, notice_version, notice_english = row if row is not None else (None, None, None)
    if event is None or (event.status == "draft" and not request.staff_override):
        raise NotFound("event_not_found", _("イベントが見つかりません。"))

    errors: dict[str, str] = {}
    # The English sign-up form's optional reading in kana or Latin letters; the API keeps the ふりがな
    # its schema documents (required, kana) whatever the locale.
    latin = request.locale == "en" and request.source == "web"
    try:
        person_data = validate_person(request.person, email_required=request.email_required,
                                      latin_reading=latin)
    except ValidationFailed as exc:
        errors.update(exc.fields)
    answers, answer_errors = validate_answers(event, request.answers or {}, require=request.require_answers)
    errors.update(answer_errors)
    companions: list[tuple[PersonData, dict[int, str]]] = []
    if request.companions:
        companions, companion_errors = _validate_companions(event, request.companions,
                                                            latin_reading=latin)
        errors.update(companion_errors)
    ranked, preference_errors = _preferences(event, request)
    errors.update(preference_errors)
    # Labels now: should lock_event below find the event changed, it reloads it (and its questions).
    labels = {q.id: q.label for q in event.active_questions}
    if not request.consent:
        errors["consent_privacy"] = _("個人情報の取扱いに同意してください。")
    if notice_version is None:  # nothing published yet: the built-in notice
        notice_version, notice_english = DEFAULT_NOTICE.version, DEFAULT_NOTICE.has_english
    language = consent_language(request.locale, bool(notice_english))
    if request.notice_shown and request.notice_shown != f"{notice_version}/{language}":
        errors["consent_privacy"] = _("個人情報の取扱いが更新されました。内容をご確認のうえ、もう一度同意してください。")
    if errors:
        raise ValidationFailed(errors)

    # Everything that does not depend on seats happens before the lock, which sign-ups for the same
    # event take one after another: the shorter it is held, the more sign-ups per second.
    person, new_person = find_or_create_person(person_data)
    companion_people = create_people_without_email([data for data, _answers in companions])
    event = lock_event(event_id, loaded=event)
    # The clock is read after the lock: waitlisted_at then follows the order in which sign-ups
    # took the lock, so the place a person is told never changes because a slower request
    # (that read the clock earlier but waited for the lock) lands ahead of them.
    now = request.now or utcnow()
    counts = counts_for(event.id)
    state = availability(event, counts, now).state
    if state == "cancelled" or (state in CLOSED_MESSAGES and not request.staff_override):
        code, message = CLOSED_MESSAGES[state]
        raise DomainError(code, message)
    if event.kind == "matching_session" and not request.staff_override:
        # Access rule of the session (open / attendees first / attendees only); clear message if refused.
        from .matching import check_eligibility
        check_eligibility(event, person_data.email, now)

    # A person created just now has no registration to duplicate.
    if not new_person and _active_registration(event.id, person.id) is not None:
        # Tells an anonymous caller no more than "look in that mailbox"; the caller mails the manage
        # link to the address after rolling this sign-up back (mypage.resend_manage_link).
        raise DomainError("duplicate", DUPLICATE_MESSAGE)

    # The whole group gets seats, or the whole group waits. Nobody overtakes a waiting group: while
    # anyone waits, a newcomer waits too, even if a seat is free (the head group may need more).
    group_size = 1 + len(companions)
    # 抽選: until the draw a sign-up is an application (no seat, no place in a queue); the draw
    # (services/lottery.py) decides, the group together. After the draw, sign-ups are first come.
    applied = event.lottery_open(now)
    confirmed = not applied and counts.waitlisted == 0 and counts.confirmed + group_size <= event.capacity
    status = "applied" if applied else "confirmed" if confirmed else "waitlisted"
    common = {
        "event_id": event.id, "consent_version": notice_version, "consent_language": language,
        "consent_at": now, "source": request.source,
        "locale": request.locale if request.locale in MAIL_LOCALES else "ja",
        "created_at": now, "status": status,
        "confirmed_at": now if confirmed else None, "waitlisted_at": now if status == "waitlisted" else None,
    }
    registration = db.session.scalars(_INSERT_REGISTRATION, [{
        **common, "person_id": person.id, "manage_token": make_manage_token(),
        "ticket_code": make_ticket_code(event.id), **attendee_values(person_data),
    }]).one()
    members = [(registration, answers)]
    companion_registrations: list[Registration] = []
    if companions:
        # One multi-row insert, right after the lead's under the same lock: the group's ids are
        # consecutive within the event and share waitlisted_at, so its places follow one another.
        companion_registrations = list(db.session.scalars(_INSERT_REGISTRATIONS, [{
            **common, "person_id": companion_person.id, "lead_registration_id": registration.id,
            "manage_token": make_manage_token(), "ticket_code": make_ticket_code(event.id),
            **attendee_values(data),
        } for companion_person, (data, _answers) in zip(companion_people, companions, strict=True)]))
        members += [(r, a) for r, (_data, a) in zip(companion_registrations, companions, strict=True)]
    rows = [{"registration_id": member.id, "question_id": qid, "question_label": labels[qid], "value": value}
            for member, member_answers in members for qid, value in member_answers.items()]
    inserted = list(db.session.scalars(_INSERT_ANSWERS, rows)) if rows else []
    # The new rows as the registrations' loaded answers (no query when the mail or the answer reads them).
    for member, _answers in members:
        set_committed_value(member, "answers", [a for a in inserted if a.registration_id == member.id])
    # The group as loaded relationships: the API answer and the mail read them without a query.
    set_committed_value(registration, "companions", companion_registrations)
    set_committed_value(registration, "lead", None)
    for member in companion_registrations:
        set_committed_value(member, "lead", registration)
        set_committed_value(member, "companions", [])
    if ranked:
        from .matching import set_preferences
        set_preferences(registration, ranked)

    # Under the lock, and with waitlisted_at read after it, the new group is last in the queue.
    position = counts.waitlisted + 1 if status == "waitlisted" else None
    metrics.count_after_commit(metrics.SIGNUPS, result=status)
    if request.notify:
        # One mail to the lead's address for the whole group (companions have no address).
        kind = {"applied": "registration_applied", "confirmed": "registration_confirmed",
                "waitlisted": "registration_waitlisted"}[status]
        mail.queue_registration_mail(kind, registration, waitlist_position=position,
                                     companions=companion_registrations)
        if request.announcements_opt_in:
            from .announcements import request_opt_in
            request_opt_in(registration)
    return SignupResult(registration, position, companion_registrations)


def cancel(registration_id: int, *, by: str = "self", group: bool = False,
           now: datetime | None = None) -> Registration:
    """Cancel a registration; freed seats go to the waiting list (FIFO by group) unless frozen.

    `group=True` on a lead's registration also cancels its companions that are still active (one
    mail to the lead listing them); otherwise only this one seat is freed."""
    now = now or utcnow()
    registration = db.session.get(Registration, registration_id)
    if registration is None:
        raise NotFound("registration_not_found", _("お申し込みが見つかりません。"))
    event = lock_event(registration.event_id)
    db.session.refresh(registration)
    if registration.status == "cancelled":
        raise DomainError("already_cancelled", _("このお申し込みは既にキャンセルされています。"))
    if by == "self":
        deadline = event.cancellation_deadline or event.starts_at
        if now >= deadline:
            raise DomainError("cancellation_closed", _("キャンセルの受付期限を過ぎています。"
                                                         "事務局へ直接ご連絡ください。"))
    members = [registration]
    if group and registration.lead_registration_id is None:
        members += [c for c in registration.companions if c.status != "cancelled"]
    freed = False
    for member in members:
        freed = freed or member.status == "confirmed"
        member.status = "cancelled"
        member.cancelled_at = now
        member.cancelled_by = by
    mail.queue_registration_mail("registration_cancelled", registration, companions=members[1:])
    db.session.flush()
    if freed:
        fill_free_seats(event, now=now)
    return registration


def _group_key(registration: Registration) -> int:
    return registration.lead_registration_id or registration.id


def fill_free_seats(event: Event, *, now: datetime | None = None) -> list[Registration]:
    """Promote waitlisted groups into free seats, strictly FIFO. The event must be locked by the caller.

    A group (a lead and its companions still waiting) is promoted only when seats are free for all
    of them; while the head group does not fit, nobody behind it moves up, not even a single person
    for whom a seat would be free: the order people were told never changes."""
    now = now or utcnow()
    if roster_frozen(event, now) or event.status != "published":
        return []
    free = event.capacity - counts_for(event.id).confirmed
    if free <= 0:
        return []
    # A group that starts within the first `free` places is complete in this many rows (groups are
    # at most 1 + MAX_COMPANIONS_LIMIT); one that starts later cannot fit anyway.
    queue = db.session.execute(
        select(Registration).where(Registration.event_id == event.id, Registration.status == "waitlisted")
        .order_by(Registration.waitlisted_at, Registration.id).limit(free + MAX_COMPANIONS_LIMIT + 1)
    ).scalars().all()
    promoted: list[Registration] = []
    while queue:
        key = _group_key(queue[0])
        group = [r for r in queue if _group_key(r) == key]
        if len(group) > free:
            break  # strict FIFO: the head group waits for enough seats, and so does everyone behind it
        for registration in group:
            registration.status = "confirmed"
            registration.confirmed_at = now
        _queue_promoted_mails(group)
        promoted += group
        free -= len(group)
        queue = [r for r in queue if _group_key(r) != key]
    if promoted:
        metrics.count_after_commit(metrics.PROMOTIONS, len(promoted))
    return promoted


def _queue_promoted_mails(group: list[Registration]) -> None:
    """One mail to the lead listing the companions promoted with them; a companion promoted without
    its lead (who cancelled, or was confirmed by staff) gets its own, sent to the lead's address."""
    lead = next((r for r in group if r.lead_registration_id is None), None)
    if lead is not None:
        mail.queue_registration_mail("registration_promoted", lead, companions=[r for r in group if r is not lead])
    else:
        for registration in group:
            mail.queue_registration_mail("registration_promoted", registration)


def waitlist_position(registration: Registration) -> int | None:
    """1-based place in the queue, derived from the order (waitlisted_at, id)."""
    if registration.status != "waitlisted":
        return None
    ahead = db.session.execute(
        select(func.count()).select_from(Registration).where(
            Registration.event_id == registration.event_id,
            Registration.status == "waitlisted",
            or_(Registration.waitlisted_at < registration.waitlisted_at,
                and_(Registration.waitlisted_at == registration.waitlisted_at,
                     Registration.id < registration.id)),
        )
    ).scalar_one()
    return ahead + 1


def get_by_manage_token(token: str) -> Registration:
    registration = None
    if token and len(token) <= 64:
        registration = db.session.execute(
            select(Registration).where(Registration.manage_token == token)
        ).scalar_one_or_none()
    if registration is None:
        raise NotFound("registration_not_found", _("お申し込みが見つかりません。リンクをご確認ください。"))
    return registration


def _active_registration(event_id: int, person_id: int) -> Registration | None:
    return db.session.execute(
        select(Registration).where(Registration.event_id == event_id, Registration.person_id == person_id,
                                   Registration.status != "cancelled")
    ).scalar_one_or_none()


def answers_by_key(registration: Registration) -> dict[str, str]:
    return {a.question.key: a.value for a in registration.answers if a.question is not None}



def apply_attendee_changes(registration: Registration, data: PersonData, answers: dict[int, str]) -> dict:
    """Set a registration's attendee details and answers to validated values (from
    `validate_person` and `validate_answers` against its event); only this registration changes.

    `answers` holds every answer to keep, by question id: an active question of the event that is
    missing is now unanswered (its row goes), answers to removed questions are left as they are.
    Returns what changed, `{field: {"before": …, "after": …}}` with answers as `answers.<key>`,
    for the audit log and notifications; empty if nothing changed. Shared by staff corrections and
    マイページ; the callers check permissions, lock, validate and write the audit entry."""
    changes: dict[str, dict[str, str]] = {}
    for name in ATTENDEE_FIELDS:
        before, after = getattr(registration, name), getattr(data, name)
        if before != after:
            changes[name] = {"before": before, "after": after}
            setattr(registration, name, after)
    existing = {a.question_id: a for a in registration.answers if a.question_id is not None}
    for question in registration.event.active_questions:
        row, after = existing.get(question.id), answers.get(question.id, "")
        before = row.value if row is not None else ""
        if before == after:
            continue
        changes[f"answers.{question.key}"] = {"before": before, "after": after}
        if not after:
            registration.answers.remove(row)  # delete-orphan: unanswered is no row, as at sign-up
        elif row is None:
            registration.answers.append(Answer(question_id=question.id, question_label=question.label, value=after))
        else:
            row.value, row.question_label = after, question.label
    return changes
