"""Who attended an event: an active check-in (onsite), or an attendance row (online 出席コード / staff).

This is the single place other modules ask; matching eligibility, invitations, surveys and the
yearly report all read attendance through `attended_registration_ids`.
"""

from __future__ import annotations

import logging
import secrets
import unicodedata
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, or_, select, text, update

from ..extensions import db
from ..models import (
    Attendance,
    AttendanceCodeAttempts,
    CheckIn,
    Event,
    EventAttendanceState,
    Registration,
    User,
)
from ..models.base import utcnow
from .errors import DomainError, NotFound

log = logging.getLogger(__name__)

# The code may be entered from when the seminar starts until a day after it ends (people who
# join late and type it in after the stream still count).
CODE_GRACE = timedelta(days=1)
# A 6-digit code is a million guesses: after this many wrong ones a registration's code entry rests
# for CODE_LOCK (per registration, counted in the database so every worker sees the same count).
MAX_WRONG_CODES = 10
CODE_LOCK = timedelta(minutes=15)


class CodeRefused(DomainError):
    """A wrong or locked 出席コード entry. Unlike other errors the caller commits: the wrong try is
    counted (and a lock set) even though the entry is refused."""


def attended_clause(registration=Registration) -> ColumnElement[bool]:
    """The same rule as attended_registration_ids, as a SQL condition on a registration row (or an alias):
    confirmed, with an active check-in or an attendance row. For queries over many events (the yearly
    report) that must not fetch ids into Python and send them back as a parameter list."""
    checked_in = select(CheckIn.id).where(CheckIn.registration_id == registration.id,
                                          CheckIn.undone_at.is_(None), CheckIn.duplicate_of_id.is_(None))
    marked = select(Attendance.id).where(Attendance.registration_id == registration.id)
    return and_(registration.status == "confirmed", or_(checked_in.exists(), marked.exists()))


def attended_registration_ids(event_ids: list[int] | int) -> set[int]:
    """Confirmed registrations of these events with an active check-in or an attendance row."""
    ids = [event_ids] if isinstance(event_ids, int) else list(event_ids)
    if not ids:
        return set()
    base = (Registration.event_id.in_(ids), Registration.status == "confirmed")
    checked_in = select(CheckIn.registration_id).join(Registration, Registration.id == CheckIn.registration_id).where(
        *base, CheckIn.undone_at.is_(None), CheckIn.duplicate_of_id.is_(None))
    marked = select(Attendance.registration_id).join(Registration, Registration.id == Attendance.registration_id
                                                     ).where(*base)
    return set(db.session.execute(checked_in.union(marked)).scalars().all())


def attended_person_ids(event_ids: list[int]) -> set[int]:
    if not event_ids:
        return set()
    return set(db.session.execute(select(Registration.person_id).distinct().where(
        Registration.event_id.in_(event_ids), attended_clause())).scalars().all())


def state_for(event_id: int, *, create: bool = False) -> EventAttendanceState | None:
    state = db.session.get(EventAttendanceState, event_id)
    if state is None and create:
        state = EventAttendanceState(event_id=event_id, code="")
        db.session.add(state)
    return state


def is_final(event_id: int) -> bool:
    state = state_for(event_id)
    return state is not None and state.finalised_at is not None


def new_attendance_code(event_id: int) -> str:
    """A fresh 6-digit 出席コード for an online seminar (replaces the previous one)."""
    event = db.session.get(Event, event_id)
    if event is None:
        raise NotFound("event_not_found", "イベントが見つかりません。")
    if not event.is_online:
        raise DomainError("not_online", "出席コードはオンラインセミナーでのみ使えます。会場のイベントは受付(チェックイン)で出席を記録します。")
    state = state_for(event_id, create=True)
    state.code = f"{secrets.randbelow(10**6):06d}"
    db.session.flush()
    return state.code


def _normalise_code(value: str) -> str:
    text = unicodedata.normalize("NFKC", value or "")
    return "".join(ch for ch in text if ch.isdigit())


def enter_code(registration: Registration, code: str, *, now: datetime | None = None) -> Attendance:
    """A participant types the code shown during the seminar on their manage page."""
    now = now or utcnow()
    event = registration.event
    if not event.is_online:
        raise DomainError("not_online", "このイベントでは出席コードは使いません。")
    if registration.status != "confirmed":
        raise DomainError("not_confirmed", "参加が確定したお申し込みのみ出席を記録できます。")
    if now < event.starts_at:
        raise DomainError("too_early", "出席コードはセミナー開始後に入力してください。")
    if now > event.ends_at + CODE_GRACE:
        raise DomainError("too_late", "出席コードの入力期限を過ぎています。出席の記録については事務局へご連絡ください。")
    attempts = db.session.get(AttendanceCodeAttempts, registration.id, populate_existing=True)
    if attempts is not None and attempts.locked_until is not None and now < attempts.locked_until:
        raise _locked(attempts.locked_until, now)
    state = state_for(event.id)
    if state is None or not state.code or _normalise_code(code) != state.code:
        locked_until = _count_wrong_code(registration, now)
        if locked_until is not None:
            raise _locked(locked_until, now)
        raise CodeRefused("wrong_code", "出席コードが正しくありません。セミナー中に表示された6桁の数字を入力してください。",
                          fields={"code": "出席コードが正しくありません。"}, status=422)
    if attempts is not None:  # the right code: earlier wrong tries no longer count
        db.session.execute(delete(AttendanceCodeAttempts).where(
            AttendanceCodeAttempts.registration_id == registration.id))
    existing = _attendance(registration.id)
    if existing is not None:
        db.session.flush()
        return existing
    row = Attendance(registration_id=registration.id, source="code", recorded_at=now)
    db.session.add(row)
    db.session.flush()
    return row


# One statement on both databases: concurrent wrong tries (several workers) each count, none is lost
# to a read-modify-write, and two first tries do not collide on the insert.
_COUNT_WRONG = text(
    "INSERT INTO attendance_code_attempts (registration_id, failures) VALUES (:registration_id, 1) "
    "ON CONFLICT (registration_id) DO UPDATE SET failures = attendance_code_attempts.failures + 1 "
    "RETURNING failures").columns(AttendanceCodeAttempts.__table__.c.failures)


def _count_wrong_code(registration: Registration, now: datetime) -> datetime | None:
    """Count one wrong try; returns the end of the lock when this try set one."""
    from . import audit

    failures = db.session.execute(_COUNT_WRONG, {"registration_id": registration.id}).scalar_one()
    if failures < MAX_WRONG_CODES:
        return None
    locked_until = now + CODE_LOCK
    # After the lock a fresh series of tries.
    db.session.execute(update(AttendanceCodeAttempts).where(
        AttendanceCodeAttempts.registration_id == registration.id).values(failures=0, locked_until=locked_until))
    log.warning("attendance code entry locked for registration %s until %s after %s wrong codes",
                registration.id, locked_until.isoformat(), MAX_WRONG_CODES)
    audit.record("attendance_lock", "registration", registration.id,
                 f"出席コードの誤入力{MAX_WRONG_CODES}回: {int(CODE_LOCK.total_seconds() // 60)}分間入力を停止",
                 actor="participant")
    return locked_until


def _locked(until: datetime, now: datetime) -> CodeRefused:
    minutes = max(1, -(-int((until - now).total_seconds()) // 60))
    return CodeRefused("code_locked", f"出席コードを続けて間違えたため、入力を一時的に停止しています。約{minutes}分後にもう一度お試しください。"
                       "お急ぎの場合は事務局へご連絡ください。", status=429)


def has_attended(registration: Registration) -> bool:
    return registration.id in attended_registration_ids(registration.event_id)


def mark(registration_id: int, attended: bool, *, user: User | None = None,
         now: datetime | None = None) -> Registration:
    """Staff marking (e.g. an online participant whose code entry failed, or a paper list)."""
    registration = db.session.get(Registration, registration_id)
    if registration is None:
        raise NotFound("registration_not_found", "お申し込みが見つかりません。")
    existing = _attendance(registration_id)
    if attended:
        if registration.status != "confirmed":
            raise DomainError("not_confirmed", "参加確定のお申し込みのみ出席にできます。")
        if existing is None:
            db.session.add(Attendance(registration_id=registration_id, source="staff", recorded_at=now or utcnow(),
                                      by_user_id=user.id if user else None))
    elif existing is not None:
        db.session.delete(existing)
    db.session.flush()
    return registration


def _attendance(registration_id: int) -> Attendance | None:
    return db.session.execute(
        select(Attendance).where(Attendance.registration_id == registration_id)).scalar_one_or_none()
