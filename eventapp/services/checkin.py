"""Onsite check-in: scan, undo, walk-in, offline sync and the roster snapshot for offline devices.

Correctness rests on the database: the partial unique index on (registration, day) for active
check-ins and the unique nonce. A scan's insert is `ON CONFLICT DO NOTHING`, so when another device
wins the race the transaction goes on and reports "already checked in" (or the retried nonce's
result) instead of failing.
Services never commit; the request does.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from .. import metrics
from ..database import column_values, insert_or_skip
from ..extensions import db
from ..formatting import JST, answer_text, format_time, is_important, kana_sort_key
from ..models import Answer, CheckIn, Event, EventDay, Registration, User
from ..models.base import utcnow
from . import audit, mail, payments
from . import registration as registration_service
from .capacity import counts_for, lock_event
from .errors import DomainError, NotFound, ValidationFailed
from .tickets import NotATicket, event_ticket_key, manage_token_in, normalize_ticket_input, verify_ticket_code

RESULT_CHECKED_IN = "checked_in"
RESULT_ALREADY = "already_checked_in"
RESULT_DUPLICATE = "duplicate"
NONCE_RE = re.compile(r"^[A-Za-z0-9_.:-]{8,64}$")
MAX_BATCH = 500
# Offline devices may have a slightly wrong clock, but not one from another day or the future.
MAX_CLOCK_SKEW = timedelta(minutes=10)
MAX_OFFLINE_AGE = timedelta(days=7)


@dataclass
class CheckInResult:
    result: str
    registration: Registration
    checkin: CheckIn
    day: EventDay
    over_capacity: bool = False
    extra: dict = field(default_factory=dict)


def checkin_window(event: Event) -> tuple[datetime, datetime]:
    """When door staff may check people in: what staff set on the event, else from 00:00 JST of
    the day before the first day to 23:59 JST of the day after the last (devices are prepared the
    evening before; offline queues are uploaded the next day)."""
    opens = event.checkin_opens_at or datetime.combine(
        event.starts_at.astimezone(JST).date() - timedelta(days=1), time(0), JST)
    closes = event.checkin_closes_at or datetime.combine(
        event.ends_at.astimezone(JST).date() + timedelta(days=1), time(23, 59, 59), JST)
    return opens, closes


# Built once: every scan runs it. The event's state and window only (not the whole row).
_GATE = select(Event.status, Event.starts_at, Event.ends_at, Event.checkin_opens_at,
               Event.checkin_closes_at).where(Event.id == bindparam("event_id"))


def require_checkin_open(event_id: int, *, now: datetime | None = None) -> None:
    """What every check-in screen and API route allows, for every role: the event exists and is
    published (a draft is "not found", so its roster never leaves the office), is not cancelled,
    and now is inside its check-in window."""
    row = db.session.execute(_GATE, {"event_id": event_id}).one_or_none()
    if row is None or row.status == "draft":
        raise NotFound("event_not_found", "イベントが見つかりません。")
    if row.status == "cancelled":
        raise DomainError("event_cancelled", "このイベントは中止になったため、受付できません。")
    opens, closes = checkin_window(row)
    now = now or utcnow()
    if not opens <= now <= closes:
        raise DomainError("checkin_closed",
                          f"受付期間外です(受付期間: {_format_jst(opens)} 〜 {_format_jst(closes)})。"
                          "期間は事務局がイベントの編集画面で変更できます。")


def _format_jst(value: datetime) -> str:
    return value.astimezone(JST).strftime("%Y/%m/%d %H:%M")


def code_hash(code: str) -> str:
    """What an offline device stores instead of the ticket code itself."""
    return hashlib.sha256(code.strip().upper().encode("ascii", "ignore")).hexdigest()


def _event(event_id: int) -> Event:
    event = db.session.get(Event, event_id)
    if event is None:
        raise NotFound("event_not_found", "イベントが見つかりません。")
    return event


def pick_day(event: Event, day_id: int | None = None, at: datetime | None = None) -> EventDay:
    """The given day of this event, or the day whose JST date is `at`'s (else the nearest one)."""
    return _choose_day(list(event.days), day_id, at)


def _choose_day(days: list[EventDay], day_id: int | None, at: datetime | None) -> EventDay:
    if not days:
        raise DomainError("no_days", "このイベントには日程がありません。")
    if day_id is not None:
        for day in days:
            if day.id == day_id:
                return day
        raise NotFound("day_not_found", "指定された日程はこのイベントにありません。")
    at = at or utcnow()
    today = at.astimezone(JST).date()
    for day in days:
        if day.starts_at.astimezone(JST).date() <= today <= day.ends_at.astimezone(JST).date():
            return day
    return days[0] if at < days[0].starts_at else days[-1]


def _check_scan_time(scanned_at: datetime | None, now: datetime) -> datetime:
    if scanned_at is None:
        return now
    if scanned_at.tzinfo is None:
        scanned_at = scanned_at.replace(tzinfo=JST)
    if scanned_at > now + MAX_CLOCK_SKEW or scanned_at < now - MAX_OFFLINE_AGE:
        raise ValidationFailed({"scanned_at": "スキャン時刻が正しくありません(端末の時計を確認してください)。"})
    return scanned_at


def _check_nonce(nonce: str) -> str:
    nonce = (nonce or "").strip()
    if not NONCE_RE.match(nonce):
        raise ValidationFailed({"nonce": "nonce は 8〜64 文字の英数字で指定してください。"})
    return nonce


# The scan's statements are built once (constructing a select() costs about as much Python as
# running it, and the door runs these on every scan).
# The answers (the notes shown at the door) in the same query; the name shown is the registration's
# attendee, so the person (the contact address) is not read at all.
_BY_TICKET = (select(Registration).where(Registration.ticket_code == bindparam("code"))
              .options(joinedload(Registration.answers).joinedload(Answer.question)))
_DAYS = select(EventDay).where(EventDay.event_id == bindparam("event_id")).order_by(EventDay.starts_at)
_INSERT_CHECKIN = insert_or_skip(CheckIn.__table__, returning=["id"])
_NONCE_OR_ACTIVE = select(CheckIn).where(or_(
    CheckIn.nonce == bindparam("nonce"),
    and_(CheckIn.registration_id == bindparam("registration_id"), CheckIn.event_day_id == bindparam("day_id"),
         CheckIn.undone_at.is_(None), CheckIn.duplicate_of_id.is_(None))))


def find_registration(event_id: int, code: str | None = None, registration_id: int | None = None) -> Registration:
    """The registration a scanned code (or a roster entry) names; signature first, then the lookup."""
    if registration_id is not None:
        registration = db.session.get(Registration, registration_id)
        if registration is None:
            raise NotFound("unknown_code", "この参加者は見つかりません。")
    elif (token := manage_token_in(code)) is not None and not _has_code(code):
        # The participant showed their manage page: its URL names the registration.
        registration = db.session.execute(
            select(Registration).where(Registration.manage_token == token)).scalar_one_or_none()
        if registration is None:
            raise NotFound("unknown_code", "この受付コードは登録されていません。")
    else:
        code = normalize_ticket_input(code)  # not shaped like a code → not_a_ticket
        signed_event = verify_ticket_code(code)  # forged or altered → invalid_signature
        registration = db.session.execute(_BY_TICKET, {"code": code}).unique().scalar_one_or_none()
        if registration is None:
            if signed_event != event_id:
                raise DomainError("wrong_event", "別のイベントの受付コードです。")
            raise NotFound("unknown_code", "この受付コードは登録されていません。")
    if registration.event_id != event_id:
        raise DomainError("wrong_event", "別のイベントの受付コードです。")
    if registration.status == "cancelled":
        raise DomainError("cancelled", "このお申し込みはキャンセル済みです。")
    if registration.status == "waitlisted":
        raise DomainError("waitlisted", "この方はキャンセル待ちのため、参加が確定していません。")
    if registration.status == "applied":
        raise DomainError("applied", "この方は抽選の応募中(抽選前)のため、参加が確定していません。")
    if registration.status == "not_selected":
        raise DomainError("not_selected", "この方は抽選で落選したため、参加が確定していません。")
    return registration


def _has_code(text: str | None) -> bool:
    try:
        normalize_ticket_input(text)
    except NotATicket:
        return False
    return True


def active_checkin(registration_id: int, day_id: int) -> CheckIn | None:
    return db.session.execute(
        select(CheckIn).where(CheckIn.registration_id == registration_id, CheckIn.event_day_id == day_id,
                              CheckIn.undone_at.is_(None), CheckIn.duplicate_of_id.is_(None))
    ).scalar_one_or_none()


def _by_nonce(nonce: str) -> CheckIn | None:
    return db.session.execute(select(CheckIn).where(CheckIn.nonce == nonce)).scalar_one_or_none()


def _replay(existing: CheckIn, registration: Registration | None) -> CheckInResult:
    """The answer for a retried request whose nonce already made a row."""
    if registration is not None and existing.registration_id != registration.id:
        raise DomainError("nonce_reused", "この nonce は別の受付に使われています。")
    if existing.duplicate_of_id is not None:
        winner = db.session.get(CheckIn, existing.duplicate_of_id)
        return CheckInResult(RESULT_DUPLICATE, existing.registration, winner or existing, existing.day)
    return CheckInResult(RESULT_CHECKED_IN, existing.registration, existing, existing.day)


@dataclass(frozen=True)
class ScanPlan:
    """What the read phase of a check-in decided, as plain values (see `prepare_check_in`)."""

    registration_id: int
    day_id: int
    scanned_at: datetime
    nonce: str
    label: str


def prepare_check_in(event_id: int, code: str | None, nonce: str, *, day_id: int | None = None,
                     scanned_at: datetime | None = None, registration_id: int | None = None,
                     now: datetime | None = None) -> tuple[ScanPlan, Registration, EventDay]:
    """The read-only half of a check-in: validate the code (signature first), find the
    registration and the day. Raises the same errors as `check_in`; writes nothing."""
    now = now or utcnow()
    nonce = _check_nonce(nonce)
    scanned_at = _check_scan_time(scanned_at, now)
    registration = find_registration(event_id, code, registration_id)
    # The registration's event exists, so the days are the only other read (no event query).
    days = db.session.execute(_DAYS, {"event_id": event_id}).scalars().all()
    day = _choose_day(list(days), day_id, scanned_at)
    plan = ScanPlan(registration.id, day.id, scanned_at, nonce, f"{registration.name}({registration.furigana})")
    return plan, registration, day


def record_check_in(plan: ScanPlan, registration: Registration, day: EventDay, *, user: User | None = None,
                    device_id: str = "", source: str = "scan", now: datetime | None = None) -> CheckInResult:
    """The writing half, in the same transaction as `prepare_check_in` (on SQLite under the write
    lock since BEGIN IMMEDIATE, so what was read is current). A replayed nonce gives the earlier
    result, an active check-in `already_checked_in`, otherwise a new row; on PostgreSQL the unique
    indexes settle a race with another device."""
    now = now or utcnow()
    found = db.session.execute(_NONCE_OR_ACTIVE, {"nonce": plan.nonce, "registration_id": plan.registration_id,
                                                  "day_id": plan.day_id}).scalars().all()
    for row in found:
        if row.nonce == plan.nonce:
            return _replay(row, registration)
    if found:
        return CheckInResult(RESULT_ALREADY, registration, found[0], day)

    # One INSERT, no ORM flush (a unit of work costs several times the statement). A unique index
    # that refuses the row (a concurrent device, a crossing retry) leaves no id, not an error.
    values = column_values(CheckIn.__table__, {
        "registration_id": plan.registration_id, "event_day_id": plan.day_id, "checked_in_at": plan.scanned_at,
        "recorded_at": now, "by_user_id": user.id if user else None, "device_id": (device_id or "")[:64],
        "nonce": plan.nonce, "source": source})
    new_id = db.session.execute(_INSERT_CHECKIN, values).scalar_one_or_none()
    if new_id is None:
        return _settle_race(plan, registration, day)
    # The answer's row: read only in this request (the id, times and who), so it stays out of the
    # session; the user is set as loaded state (no query for the "who").
    row = CheckIn(id=new_id, **values)
    set_committed_value(row, "by_user", user)
    _audit("checkin", row, user, label=plan.label, now=True)
    metrics.count_after_commit(metrics.CHECKINS)
    return CheckInResult(RESULT_CHECKED_IN, registration, row, day)


def _settle_race(plan: ScanPlan, registration: Registration, day: EventDay) -> CheckInResult:
    """The insert lost to a concurrent request, either a retry with the same nonce or another
    device: answer from the row that won."""
    replay = _by_nonce(plan.nonce)
    if replay is not None:
        return _replay(replay, registration)
    existing = active_checkin(plan.registration_id, plan.day_id)
    if existing is None:  # the winner was undone meanwhile: let the device scan again
        raise DomainError("checkin_conflict", "他の端末と同時に受付されました。もう一度読み取ってください。")
    return CheckInResult(RESULT_ALREADY, registration, existing, day)


def check_in(event_id: int, code: str | None, nonce: str, *, day_id: int | None = None,
             scanned_at: datetime | None = None, user: User | None = None, device_id: str = "",
             source: str = "scan", registration_id: int | None = None,
             now: datetime | None = None) -> CheckInResult:
    """Admit a ticket holder for one event day, exactly once, in the caller's transaction.

    Returns `checked_in` (a new row, or the row an earlier request with the same nonce made) or
    `already_checked_in` with the existing check-in (its time and who scanned).
    """
    now = now or utcnow()
    plan, registration, day = prepare_check_in(event_id, code, nonce, day_id=day_id, scanned_at=scanned_at,
                                               registration_id=registration_id, now=now)
    return record_check_in(plan, registration, day, user=user, device_id=device_id, source=source, now=now)


def undo(event_id: int, checkin_id: int, *, user: User | None = None, now: datetime | None = None,
         cancel_walkin: bool = False) -> CheckIn:
    """Take back a check-in (a wrong person scanned); the row stays, marked as undone.

    `cancel_walkin`: the check-in was a walk-in registered by mistake, so its registration is
    cancelled too (otherwise it would stay 参加確定 and hold a seat)."""
    row = db.session.get(CheckIn, checkin_id)
    if row is None or row.registration.event_id != event_id:
        raise NotFound("checkin_not_found", "この受付記録は見つかりません。")
    if row.undone_at is not None:
        raise DomainError("already_undone", "この受付は既に取り消されています。")
    if row.duplicate_of_id is not None:
        raise DomainError("duplicate", "重複として記録された受付は取り消せません。")
    if user is None:
        raise DomainError("forbidden", "取り消しにはログインが必要です。", status=403)
    if cancel_walkin and row.registration.source != "walkin":
        raise DomainError("not_walkin", "当日参加の登録ではないため、申込は取り消せません。", status=422)
    user_id = user.id  # read before the change: loading an expired user would autoflush half of it
    row.undone_by_id, row.undone_at = user_id, now or utcnow()
    db.session.flush()
    _audit("checkin_undo", row, user)
    if cancel_walkin and row.registration.status != "cancelled":
        registration_service.cancel(row.registration_id, by="staff", now=now)
    return row


def walk_in(event_id: int, person_input: dict, answers_input: dict | None, *, nonce: str,
            day_id: int | None = None, user: User | None = None, device_id: str = "",
            send_mail: bool = False, now: datetime | None = None) -> CheckInResult:
    """当日参加: register a person on the spot and check them in, even past capacity.

    The identity rules of a sign-up hold: a known address's person is never changed (the details
    go onto the registration). No mail unless door staff ask for it (`send_mail`), so the door
    cannot make the app mail any address it is given."""
    now = now or utcnow()
    nonce = _check_nonce(nonce)
    replay = _by_nonce(nonce)
    if replay is not None:
        return _replay(replay, None)
    result = registration_service.sign_up(event_id, registration_service.SignupRequest(
        person=person_input, answers=answers_input, consent=True, source="walkin", staff_override=True,
        notify=False, email_required=False, require_answers=False, now=now))
    registration = result.registration
    event = lock_event(event_id)  # already held by sign_up(); re-read for the capacity check
    # Waiting, or an application to a lottery not drawn yet: the person is at the desk all the same.
    over_capacity = registration.status in ("waitlisted", "applied")
    if over_capacity:
        # The person is standing at the desk: staff admit them beyond the capacity on purpose.
        registration.status = "confirmed"
        registration.confirmed_at = now
    db.session.flush()
    if send_mail and registration.person.email:
        mail.queue_registration_mail("registration_confirmed", registration)
    checked = check_in(event.id, None, nonce, day_id=day_id, user=user, device_id=device_id,
                       source="walkin", registration_id=registration.id, now=now)
    checked.over_capacity = over_capacity or counts_for(event.id).confirmed > event.capacity
    return checked


def sync_batch(event_id: int, scans: list[dict], *, user: User | None = None, device_id: str = "",
               now: datetime | None = None) -> list[dict]:
    """Upload an offline device's queue. Scans are applied in scan-time order and the earliest scan
    of a ticket wins, even against a check-in another device already uploaded; the later one is
    kept as a duplicate so staff can see it. Each scan gets its own result (errors do not stop the batch).
    """
    now = now or utcnow()
    if len(scans) > MAX_BATCH:
        raise ValidationFailed({"scans": f"一度に送れるのは{MAX_BATCH}件までです。"})
    ordered = sorted(enumerate(scans), key=lambda pair: (pair[1].get("scanned_at") or now, pair[0]))
    results: list[dict | None] = [None] * len(scans)
    for index, scan in ordered:
        entry = {"nonce": scan.get("nonce")}
        try:
            entry.update(_sync_one_settled(event_id, scan, user=user, device_id=device_id, now=now))
        except DomainError as exc:
            entry.update(result="error", error={"code": exc.code, "message": exc.message, "fields": exc.fields})
        results[index] = entry
    return [r for r in results if r is not None]


def _sync_one_settled(event_id: int, scan: dict, *, user: User | None, device_id: str, now: datetime) -> dict:
    """One scan in its own savepoint. If a concurrent upload of the same queue (a retry that crossed
    the first request) inserted the same nonce first, the unique index refuses ours; the scan is then
    applied again, and the nonce lookup answers with what the other request recorded."""
    for attempt in range(2):
        try:
            with db.session.begin_nested():
                return _sync_one(event_id, scan, user=user, device_id=device_id, now=now)
        except IntegrityError:
            if attempt:
                raise
    raise AssertionError("unreachable")


def _sync_one(event_id: int, scan: dict, *, user: User | None, device_id: str, now: datetime) -> dict:
    res = check_in(event_id, scan.get("code"), scan.get("nonce", ""), day_id=scan.get("day"),
                   scanned_at=scan.get("scanned_at"), user=user, device_id=device_id, source="offline",
                   registration_id=scan.get("registration_id"), now=now)
    if res.result != RESULT_ALREADY:
        return _outcome(res)
    scanned_at = _check_scan_time(scan.get("scanned_at"), now)
    winner = res.checkin
    mine = CheckIn(registration_id=res.registration.id, event_day_id=res.day.id, checked_in_at=scanned_at,
                   recorded_at=now, by_user_id=user.id if user else None, device_id=(device_id or "")[:64],
                   nonce=_check_nonce(scan.get("nonce", "")), source="offline")
    if scanned_at < winner.checked_in_at:
        # This offline scan happened first: it becomes the check-in, the other one the duplicate.
        winner.duplicate_of_id = winner.id  # leaves the unique index before the new row enters it
        db.session.flush()
        db.session.add(mine)
        db.session.flush()
        winner.duplicate_of_id = mine.id
        db.session.flush()
        _audit("checkin", mine, user)
        return _outcome(CheckInResult(RESULT_CHECKED_IN, res.registration, mine, res.day),
                        duplicate_checkin_id=winner.id)
    mine.duplicate_of_id = winner.id
    db.session.add(mine)
    db.session.flush()
    return _outcome(CheckInResult(RESULT_DUPLICATE, res.registration, winner, res.day), duplicate_checkin_id=mine.id)


def _outcome(res: CheckInResult, **extra) -> dict:
    return {"result": res.result, "checkin_id": res.checkin.id, "registration_id": res.registration.id,
            "day": res.day.id, "checked_in_at": res.checkin.checked_in_at, "by": res.checkin.by_name, **extra}


def registration_summary(registration: Registration, payment: tuple[int, str] | None = None) -> dict:
    """What the check-in screen shows: the registration's attendee (name, furigana) and the answers
    staff should notice, as people read them (はい/いいえ, not yes/no). 重要 answers (allergies…)
    are flagged and also listed on their own, so the door cannot miss them. `fee_yen` and
    `payment_status` let the door collect an unpaid fee (「参加費 15,000円 未払い」)."""
    notes = [{"label": a.question_label, "value": answer_text(a), "important": is_important(a.question)}
             for a in registration.answers if a.value]
    fee, payment_status = payment or payments.fee_and_status(registration.event_id, registration.id)
    return {"id": registration.id, "name": registration.name, "furigana": registration.furigana,
            "status": registration.status, "source": registration.source, "notes": notes,
            "important_answers": [n for n in notes if n["important"]],
            "fee_yen": fee, "payment_status": payment_status}


def result_message(res: CheckInResult) -> str:
    if res.result == RESULT_ALREADY:
        who = f"({res.checkin.by_name})" if res.checkin.by_name else ""
        return f"受付済み {format_time(res.checkin.checked_in_at)} {who}".strip()
    return "受付完了"


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value or "")


def roster_entry_matches(entry: dict, query: str) -> bool:
    """The door roster's search: part of the name or furigana (full-width/half-width alike), or phone digits."""
    query = unicodedata.normalize("NFKC", query or "").strip().lower().replace(" ", "")
    if not query:
        return True
    text = unicodedata.normalize("NFKC", f"{entry['name']}{entry['furigana']}").lower().replace(" ", "")
    digits = _digits(query)
    return query in text or (len(digits) >= 3 and digits in entry.get("phone_digits", ""))


def roster_snapshot(event_id: int) -> dict:
    """Everything an offline device needs: ticket code hashes (never the codes), names, furigana,
    phone digits for search, status, notes and the current check-ins, plus the event's ticket key
    so the device can verify signatures itself."""
    event = _event(event_id)
    # One statement for the whole roster (answers and their questions joined in): it stays complete,
    # as devices work offline from it, but never costs a query per batch or per person.
    registrations = db.session.execute(
        select(Registration).where(Registration.event_id == event_id)
        .options(joinedload(Registration.answers).joinedload(Answer.question))
    ).unique().scalars().all()
    checkins = db.session.execute(
        select(CheckIn).join(Registration).where(Registration.event_id == event_id, CheckIn.undone_at.is_(None),
                                                 CheckIn.duplicate_of_id.is_(None))
        .options(joinedload(CheckIn.by_user))
    ).scalars().all()
    by_registration: dict[int, list[dict]] = {}
    for row in checkins:
        by_registration.setdefault(row.registration_id, []).append(_checkin_dict(row))
    statuses = payments.statuses_for_event(event)  # one query for the roster
    people = []
    for r in registrations:
        entry = registration_summary(r, (event.fee_yen, statuses[r.id]))
        entry.update(code_hash=code_hash(r.ticket_code), phone_digits=_digits(r.phone),
                     checkins=by_registration.get(r.id, []))
        people.append(entry)
    people.sort(key=lambda p: (kana_sort_key(p["furigana"]), p["id"]))
    return {
        "event": {"id": event.id, "title": event.title, "capacity": event.capacity},
        "days": [{"id": d.id, "starts_at": d.starts_at, "ends_at": d.ends_at, "title": d.title}
                 for d in event.days],
        "ticket_key": event_ticket_key(event.id).hex(),
        "generated_at": utcnow(),
        "registrations": people,
    }


def _checkin_dict(row: CheckIn) -> dict:
    return {"id": row.id, "registration_id": row.registration_id, "day": row.event_day_id,
            "checked_in_at": row.checked_in_at, "by": row.by_name, "source": row.source}


def stats(event_id: int, day_id: int | None = None, *, after_id: int = 0) -> dict:
    """Live counters for one day, and check-ins newer than `after_id` so devices see each other's."""
    event = _event(event_id)
    day = pick_day(event, day_id)
    checked = db.session.execute(
        select(func.count()).select_from(CheckIn).where(
            CheckIn.event_day_id == day.id, CheckIn.undone_at.is_(None), CheckIn.duplicate_of_id.is_(None))
    ).scalar_one()
    recent = db.session.execute(
        select(CheckIn).join(EventDay).where(EventDay.event_id == event_id, CheckIn.id > after_id)
        .order_by(CheckIn.id).limit(200).options(joinedload(CheckIn.by_user))
    ).scalars().all()
    duplicates = db.session.execute(
        select(func.count()).select_from(CheckIn).where(CheckIn.event_day_id == day.id,
                                                         CheckIn.duplicate_of_id.is_not(None))
    ).scalar_one()
    return {"day": day.id, "checked_in": checked, "confirmed": counts_for(event_id).confirmed,
            "capacity": event.capacity, "duplicates": duplicates,
            "recent": [dict(_checkin_dict(r), active=r.is_active) for r in recent]}


def day_checkins(event_id: int, day_id: int | None = None) -> tuple[EventDay, list[CheckIn]]:
    """All check-in rows of a day, newest first (for the list with undo and the duplicates)."""
    day = pick_day(_event(event_id), day_id)
    rows = db.session.execute(
        select(CheckIn).where(CheckIn.event_day_id == day.id).order_by(CheckIn.checked_in_at.desc(), CheckIn.id.desc())
        .options(joinedload(CheckIn.registration), joinedload(CheckIn.by_user))
    ).scalars().all()
    return day, list(rows)


def _audit(action: str, row: CheckIn, user: User | None, *, label: str | None = None, now: bool = False) -> None:
    """Check-ins and undos go to the staff audit log, in the same transaction (`now`: written at
    once, for a scan whose check-in row was inserted without the unit of work)."""
    if label is None:
        label = f"{row.registration.name}({row.registration.furigana})"
    write = audit.write_now if now else audit.record
    write(action, "checkin", row.id, f"{label} {format_time(row.checked_in_at)}",
          {"registration_id": row.registration_id, "day": row.event_day_id, "device": row.device_id,
           "source": row.source, "nonce": row.nonce}, user=user)
