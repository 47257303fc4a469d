"""The per-event participant list and what staff do with it (phone sign-ups, moves, notes, mail)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..formatting import kana_sort_key
from ..models import CheckIn, Event, Person, Registration
from ..models.base import utcnow
from . import audit, mail
from .capacity import Counts, counts_for, lock_event
from .errors import DomainError, NotFound, ValidationFailed
from .people import clean_text
from .registration import SignupResult, register, waitlist_position

SORTS = ("kana", "signup")
STATUS_FILTERS = ("active", "confirmed", "waitlisted", "cancelled", "all")
AUDIENCES = {"all": ("confirmed", "waitlisted"), "confirmed": ("confirmed",), "waitlisted": ("waitlisted",)}


@dataclass(frozen=True)
class ParticipantList:
    rows: list[Registration]
    counts: Counts
    cancelled: int
    waitlist_positions: dict[int, int]


def _fold(text: str) -> str:
    """Case/width/kana-insensitive text for searching (カタカナ ≡ ひらがな, ＡＢＣ ≡ abc)."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    return "".join(chr(ord(ch) - 0x60) if "\u30a1" <= ch <= "\u30f6" else ch for ch in text).replace(" ", "")


def registrations_for(event_id: int) -> list[Registration]:
    return list(db.session.execute(
        select(Registration).where(Registration.event_id == event_id)
        .options(selectinload(Registration.person), selectinload(Registration.answers))
        .order_by(Registration.created_at, Registration.id)
    ).scalars().all())


def participant_list(event: Event, *, q: str = "", status: str = "active", question_id: int | None = None,
                     answer: str = "", sort: str = "kana") -> ParticipantList:
    """Search name/furigana/email, filter by status and by one question's answer, sort 五十音順 or by time."""
    rows = registrations_for(event.id)
    cancelled = sum(r.status == "cancelled" for r in rows)
    if status == "active":
        rows = [r for r in rows if r.status != "cancelled"]
    elif status in ("confirmed", "waitlisted", "cancelled"):
        rows = [r for r in rows if r.status == status]
    needle = _fold(q)
    if needle:
        rows = [r for r in rows if needle in _fold(r.person.name) or needle in _fold(r.person.furigana)
                or needle in _fold(r.person.email or "")]
    if question_id:
        wanted = clean_text(answer)
        rows = [r for r in rows if any(a.question_id == question_id and (not wanted or a.value == wanted)
                                       for a in r.answers)]
    if sort == "signup":
        rows.sort(key=lambda r: (r.created_at, r.id))
    else:
        rows.sort(key=lambda r: (kana_sort_key(r.person.furigana), r.id))
    waiting = sorted((r for r in registrations_for(event.id) if r.status == "waitlisted"),
                     key=lambda r: (r.waitlisted_at, r.id))
    positions = {r.id: n for n, r in enumerate(waiting, start=1)}
    return ParticipantList(rows=rows, counts=counts_for(event.id), cancelled=cancelled,
                           waitlist_positions=positions)


def get_registration(registration_id: int, event_id: int | None = None) -> Registration:
    registration = db.session.get(Registration, registration_id)
    if registration is None or (event_id is not None and registration.event_id != event_id):
        raise NotFound("registration_not_found", "お申し込みが見つかりません。")
    return registration


def register_on_behalf(event_id: int, person_input: dict, answers: dict, *, notify: bool = True) -> SignupResult:
    """A phone sign-up: staff may add people to drafts and closed events; consent is given by phone."""
    result = register(event_id, person_input, answers, consent=True, source="staff", staff_override=True,
                      notify=notify and bool(person_input.get("email")))
    registration = result.registration
    audit.record("register", "registration", registration.id,
                 f"{registration.person.name} を「{registration.event.title}」に代理申込({registration.status})",
                 {"event_id": event_id, "person_id": registration.person_id})
    return result


def confirm_waitlisted(registration_id: int, *, now: datetime | None = None) -> bool:
    """Move a waitlisted person to confirmed, even past capacity. Returns True if now over capacity."""
    registration = get_registration(registration_id)
    event = lock_event(registration.event_id)
    db.session.refresh(registration)
    if registration.status != "waitlisted":
        raise DomainError("not_waitlisted", "キャンセル待ちの方だけを参加確定にできます。")
    registration.status = "confirmed"
    registration.confirmed_at = now or utcnow()
    mail.queue_registration_mail("registration_promoted", registration)
    db.session.flush()
    confirmed = counts_for(event.id).confirmed
    over = confirmed > event.capacity
    audit.record("confirm", "registration", registration.id,
                 f"{registration.person.name}: キャンセル待ち → 参加確定({confirmed}/{event.capacity}名)",
                 {"event_id": event.id, "over_capacity": over})
    return over


def cancel_on_behalf(registration_id: int) -> Registration:
    from .registration import cancel

    registration = cancel(registration_id, by="staff")
    audit.record("cancel", "registration", registration.id,
                 f"{registration.person.name} の「{registration.event.title}」申込を事務局がキャンセル",
                 {"event_id": registration.event_id})
    return registration


def set_note(registration_id: int, note: str) -> Registration:
    registration = get_registration(registration_id)
    note = clean_text(note, multiline=True)
    if len(note) > 2000:
        raise ValidationFailed({"staff_note": "メモは2000文字以内で入力してください。"})
    registration.staff_note = note
    audit.record("note", "registration", registration.id, f"{registration.person.name}: メモを更新")
    return registration


def resend_confirmation(registration_id: int) -> None:
    """Send the mail that matches the current status again (lost mail, changed address)."""
    registration = get_registration(registration_id)
    if not registration.person.email:
        raise DomainError("no_email", "この方にはメールアドレスの登録がありません(当日参加で未記入、または匿名化済み)。")
    kind = {"confirmed": "registration_confirmed", "waitlisted": "registration_waitlisted",
            "cancelled": "registration_cancelled"}[registration.status]
    mail.queue_registration_mail(kind, registration, waitlist_position=waitlist_position(registration))
    audit.record("resend", "registration", registration.id, f"{registration.person.name}: 確認メールを再送")


def message_participants(event_id: int, audience: str, subject: str, body: str) -> int:
    """Queue one mail per participant of the audience (all / confirmed / waitlisted). Returns the count."""
    event = db.session.get(Event, event_id)
    if event is None:
        raise NotFound("event_not_found", "イベントが見つかりません。")
    errors = {}
    subject, body = clean_text(subject), clean_text(body, multiline=True)
    if audience not in AUDIENCES:
        errors["audience"] = "送信先を選んでください。"
    if not subject or len(subject) > 200:
        errors["subject"] = "件名を200文字以内で入力してください。"
    if not body or len(body) > 10000:
        errors["body"] = "本文を入力してください(10000文字以内)。"
    if errors:
        raise ValidationFailed(errors)
    recipients = db.session.execute(
        select(Registration).join(Person).where(
            Registration.event_id == event_id, Registration.status.in_(AUDIENCES[audience]),
            Person.email.is_not(None))
        .order_by(Registration.id)
    ).scalars().all()
    for registration in recipients:
        mail.queue("staff_message", registration.person.email, "staff_message",
                   {"subject": subject, "body": body, "event": event, "person": registration.person,
                    "registration": registration}, registration=registration)
    audit.record("message", "event", event.id, f"{event.title}: 「{subject}」を{len(recipients)}名に送信",
                 {"audience": audience, "subject": subject, "recipients": len(recipients)})
    return len(recipients)


def person_history(person_id: int) -> tuple[Person, list[Registration], dict[int, int]]:
    """A person, their registrations (newest first) and days attended per registration (check-ins)."""
    person = db.session.get(Person, person_id)
    if person is None:
        raise NotFound("person_not_found", "参加者が見つかりません。")
    registrations = db.session.execute(
        select(Registration).where(Registration.person_id == person_id)
        .options(selectinload(Registration.event)).order_by(Registration.created_at.desc())
    ).scalars().all()
    attended: dict[int, int] = {}
    if registrations:
        attended = dict(db.session.execute(
            select(CheckIn.registration_id, func.count()).where(
                CheckIn.registration_id.in_([r.id for r in registrations]), CheckIn.undone_at.is_(None),
                CheckIn.duplicate_of_id.is_(None)).group_by(CheckIn.registration_id)
        ).all())
    return person, list(registrations), attended


def search_people(q: str, limit: int = 100) -> list[Person]:
    """People across all events whose name, furigana or email contains the search text."""
    needle = _fold(q)
    if not needle:
        return []
    people = db.session.execute(select(Person).order_by(Person.furigana)).scalars().all()
    found = [p for p in people if needle in _fold(p.name) or needle in _fold(p.furigana)
             or needle in _fold(p.email or "")]
    found.sort(key=lambda p: kana_sort_key(p.furigana))
    return found[:limit]
