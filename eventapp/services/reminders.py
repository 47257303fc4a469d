"""Reminder mails before an event, and the "waiting list has closed" mail, each queued once.

What is sent
    Confirmed people of a published event get the event's reminders (Event.reminders, NULL: the
    kind's defaults in KIND_REMINDERS, []: none), counted back from the event's start (集合 for
    fieldwork, see `reminder_base`). A reminder is due while now is in [start - offset, start). When
    several are due at once (a sign-up two days before a fieldwork whose reminders are 3 days and
    1 day before, or a sender that was down), only the latest due one is sent — the one closest to
    the start — and the earlier ones are skipped for good: nobody gets "in 3 days" and "tomorrow" in
    the same minute. People still waiting when the roster freezes (roster_freeze_at, else the start)
    get one "waitlist_closed" mail, until the event ends. Cancelled people, waiting people
    (reminders), drafts and cancelled events get nothing.

Exactly once
    Each mail is one `reminder_sends` row (registration, code, armed_for), inserted with INSERT …
    ON CONFLICT DO NOTHING in the transaction that queues the mail; only a pass whose row went in
    queues it. Two passes at once (cron's `send-mail` beside `send-mail --watch`) or a retried pass
    thus queue every mail once. `armed_for` is the start (or roster freeze) the mail counted back
    from: moving the event arms its reminders again for the new time.

Groups: a companion (同行者) whose lead gets the same mail is listed in the lead's mail (the same
address) and gets a row of its own, so it is not mailed again should the lead cancel later.

The mail is rendered when queued, with the event as it is then; the pass runs when it is due.
No calendar invite is attached (the confirmation carried it; a REQUEST per reminder would only make
calendars update the entry again). The しおり is linked rather than attached: rendering a PDF per
mail inside the pass costs far more than the mail, and the outbox stores text attachments only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import exists, or_, select
from sqlalchemy.orm import selectinload

from ..database import column_values, insert_or_skip, write_intent
from ..extensions import db
from ..models import MAX_REMINDERS, REMINDERS, Event, Registration, ReminderSend
from . import mail

# What each Event.reminders code means: a time before the event's start.
REMINDER_OFFSETS: dict[str, timedelta] = {
    "1w": timedelta(weeks=1), "3d": timedelta(days=3), "2d": timedelta(days=2), "1d": timedelta(days=1),
    "3h": timedelta(hours=3), "1h": timedelta(hours=1),
}
REMINDER_LABELS = {"1w": "1週間前", "3d": "3日前", "2d": "2日前", "1d": "1日前", "3h": "3時間前", "1h": "1時間前"}
# Defaults per kind, used while an event's reminders is NULL.
KIND_REMINDERS: dict[str, tuple[str, ...]] = {
    "fieldwork": ("3d", "1d"), "online_seminar": ("1d", "1h"),
    "onsite_seminar": ("1d",), "matching_session": ("1d",),
}
DEFAULT_REMINDERS = ("1d",)
WAITLIST_CLOSED = "waitlist_closed"
# How far ahead a pass looks for events (the earliest reminder there is).
_HORIZON = max(REMINDER_OFFSETS.values())
# Mails one pass queues at most: its write transaction (SQLite's write lock) stays short while a
# big event's reminders fall due; the rest follow in the next pass.
BATCH = 500
_INSERT_SEND = insert_or_skip(ReminderSend.__table__, returning=["id"])


def default_reminders(kind: str) -> tuple[str, ...]:
    return KIND_REMINDERS.get(kind, DEFAULT_REMINDERS)


def event_reminders(event: Event) -> tuple[str, ...]:
    """The event's reminder codes, earliest first: its own choice, else its kind's defaults. Unknown
    stored codes are skipped (a pass never fails on stored data)."""
    chosen = event.reminders
    if not isinstance(chosen, list):
        return default_reminders(event.kind)
    return tuple(code for code in REMINDERS if code in chosen)


def validate_reminders(errors: dict[str, str], value) -> list[str] | None:
    """None (the kind's defaults) or a list of distinct REMINDERS codes, at most MAX_REMINDERS (services.events)."""
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not all(isinstance(code, str) and code in REMINDERS for code in value):
        errors["reminders"] = _("リマインダーの時刻は一覧から選んでください。")
        return None
    if len(set(value)) > MAX_REMINDERS:
        errors["reminders"] = _("リマインダーは%(max)s個までにしてください。", max=MAX_REMINDERS)
        return None
    return [code for code in REMINDERS if code in value]  # earliest first, no repeats


def reminder_base(event: Event) -> datetime:
    """What reminders count back from: 集合 (meeting_at) when set, as in the calendar, else the start."""
    if event.meeting_at is not None and event.meeting_at < event.ends_at:
        return event.meeting_at
    return event.starts_at


def roster_closes_at(event: Event) -> datetime:
    """When the waiting list stops moving: the roster freeze, else the event's start."""
    return event.roster_freeze_at or event.starts_at


def due_reminder(event: Event, now: datetime) -> str | None:
    """The reminder due now (the latest of those whose time has come), or None."""
    base = reminder_base(event)
    if not now < base:
        return None
    due = [code for code in event_reminders(event) if base - REMINDER_OFFSETS[code] <= now]
    return min(due, key=REMINDER_OFFSETS.__getitem__) if due else None


@dataclass
class _Due:
    event: Event
    code: str  # a REMINDERS code or WAITLIST_CLOSED
    armed_for: datetime
    status: str  # whom it is for: "confirmed" or "waitlisted"
    registrations: list[Registration] = field(default_factory=list)  # not yet sent, in id order


def _events(now: datetime) -> list[Event]:
    """Published events that may have a reminder or a waiting-list mail due (Python decides which)."""
    horizon = now + _HORIZON
    return list(db.session.execute(
        select(Event).where(
            Event.status == "published", Event.ends_at > now,
            or_(Event.starts_at <= horizon, Event.meeting_at <= horizon,
                Event.roster_freeze_at <= now))
        .order_by(Event.id)
    ).scalars())


def _due(now: datetime) -> list[_Due]:
    found = []
    for event in _events(now):
        if (code := due_reminder(event, now)) is not None:
            found.append(_Due(event, code, reminder_base(event), "confirmed"))
        if roster_closes_at(event) <= now:
            found.append(_Due(event, WAITLIST_CLOSED, roster_closes_at(event), "waitlisted"))
    for due in found:
        sent = exists().where(ReminderSend.registration_id == Registration.id, ReminderSend.code == due.code,
                              ReminderSend.armed_for == due.armed_for)
        due.registrations = list(db.session.execute(
            select(Registration).where(Registration.event_id == due.event.id, Registration.status == due.status,
                                       ~sent)
            .order_by(Registration.id).options(selectinload(Registration.person))
        ).scalars())
    return [due for due in found if due.registrations]


def _groups(registrations: Iterable[Registration]) -> list[tuple[Registration, list[Registration]]]:
    """(recipient, companions listed in its mail): a companion goes with its lead when both are due."""
    registrations = list(registrations)
    ids = {r.id for r in registrations}
    return [(r, [c for c in registrations if c.lead_registration_id == r.id])
            for r in registrations if r.lead_registration_id not in ids]


def _claim(registration: Registration, code: str, armed_for: datetime) -> bool:
    """Insert the registration's row; False when another pass (or an earlier one) has it."""
    values = column_values(ReminderSend.__table__, {"registration_id": registration.id, "code": code,
                                                     "armed_for": armed_for})
    return db.session.execute(_INSERT_SEND, values).first() is not None


def _queue(due: _Due, registration: Registration, companions: list[Registration], now: datetime) -> bool:
    if not _claim(registration, due.code, due.armed_for):
        return False
    for companion in companions:
        _claim(companion, due.code, due.armed_for)
    # `now` is the pass's clock (the join URL shows as revealed by then, templates/mail/_online.txt).
    if due.code == WAITLIST_CLOSED:
        message = mail.queue_registration_mail("waitlist_closed", registration, companions=companions, now=now)
    else:
        message = mail.queue_registration_mail(
            "reminder", registration, companions=companions, code=due.code, starts_at=due.armed_for, now=now,
            meeting_at=due.event.meeting_at if due.event.meeting_at == due.armed_for else None)
    return message is not None  # None: no address (anonymised); the row stays, nothing to send


def queue_due_reminders(now: datetime, limit: int = BATCH) -> int:
    """One pass (see the module docstring): queue the reminder and waiting-list mails due at `now`, at
    most about `limit` (whole groups; the rest go in the next pass, a minute later at most). Returns how
    many mails it queued; never commits (the runner does, see services/scheduled.py), and expects a
    session with nothing pending (it ends the read it starts with).

    Looks first in a plain read; only when something is due does it read again and write within one
    write transaction (SQLite: BEGIN IMMEDIATE, so two passes take turns instead of failing on the
    lock; PostgreSQL: the unique key decides)."""
    found = bool(_due(now))
    db.session.rollback()  # end the read so the write transaction below begins with the write lock
    if not found:
        return 0
    queued = 0
    with write_intent():
        for due in _due(now):
            for registration, companions in _groups(due.registrations):
                if queued >= limit:
                    return queued
                queued += _queue(due, registration, companions, now)
    return queued
