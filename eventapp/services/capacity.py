"""Locking an event and reading its seat counts: the first step of every seat-changing workflow.

All workflows that change seats (sign-up, cancel, promote, capacity change) call `lock_event` first
and re-read the counts after it, so two of them never decide on the same free seat. PostgreSQL
takes a row lock (SELECT … FOR UPDATE); SQLite already holds its database write lock because
writing requests begin with BEGIN IMMEDIATE (see eventapp.database).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import bindparam, func, select

from ..database import holds_sqlite_write_lock
from ..extensions import db
from ..models import Event, Registration
from ..models.base import utcnow
from .errors import NotFound


@dataclass(frozen=True)
class Counts:
    confirmed: int
    waitlisted: int
    # 応募者: lottery applications not yet drawn (no seat, not waiting).
    applied: int = 0


@dataclass(frozen=True)
class Availability:
    # open | waitlist | not_yet_open | closed | cancelled | draft
    state: str
    seats_left: int
    counts: Counts

    @property
    def accepts_signups(self) -> bool:
        return self.state in ("open", "waitlist")


# Hot-path statements are built once: constructing a select() costs about as much Python as
# executing it (measured), and sign-ups and check-ins run these on every request.
_LOCK_EVENT = (select(Event).where(Event.id == bindparam("event_id")).with_for_update()
               .execution_options(populate_existing=True))
# The row lock alone, answering the row's updated_at (bumped by every change to the event): a caller
# that loaded the event just before keeps its copy when nothing changed since, instead of reloading
# every column while it holds the lock.
_LOCK_ROW = select(Event.updated_at).where(Event.id == bindparam("event_id")).with_for_update()
_COUNTS = (select(Registration.status, func.count()).where(Registration.event_id == bindparam("event_id"))
           .group_by(Registration.status))


def _event_not_found() -> NotFound:
    return NotFound("event_not_found", _("イベントが見つかりません。"))


def lock_event(event_id: int, *, loaded: Event | None = None) -> Event:
    """Lock the event's row and return it as it is now. `loaded`: the caller's copy, read earlier in
    this transaction, which is returned as it stands when the event has not changed since."""
    if holds_sqlite_write_lock():
        # The transaction has held the database's write lock since BEGIN: the event as loaded (or
        # loaded now) is current and stays so; no second SELECT needed.
        event = db.session.get(Event, event_id)
        if event is None:
            raise _event_not_found()
        return event
    if loaded is not None:
        updated_at = db.session.execute(_LOCK_ROW, {"event_id": event_id}).scalar_one_or_none()
        if updated_at is None:
            raise _event_not_found()
        if updated_at == loaded.updated_at:
            return loaded
    event = db.session.execute(_LOCK_EVENT, {"event_id": event_id}).scalar_one_or_none()
    if event is None:
        raise _event_not_found()
    return event


def counts_for(event_id: int) -> Counts:
    by_status = dict(db.session.execute(_COUNTS, {"event_id": event_id}).all())
    return Counts(confirmed=by_status.get("confirmed", 0), waitlisted=by_status.get("waitlisted", 0),
                  applied=by_status.get("applied", 0))


def count_columns(event=Event) -> tuple:
    """(confirmed, waitlisted) of each row of an event query, as correlated COUNT subqueries: one index
    range (ix_registrations_event_status) per listed event instead of an id list sent back as IN (…)."""
    def count(status: str):
        return (select(func.count()).where(Registration.event_id == event.id, Registration.status == status)
                .correlate(event).scalar_subquery())
    return count("confirmed").label("confirmed_n"), count("waitlisted").label("waitlisted_n")


def counts_for_events(event_ids: list[int]) -> dict[int, Counts]:
    """Counts for many events in one query (catalogue, dashboard, API lists)."""
    result = {event_id: Counts(0, 0) for event_id in event_ids}
    if not event_ids:
        return result
    rows = db.session.execute(
        select(Registration.event_id, Registration.status, func.count())
        .where(Registration.event_id.in_(event_ids), Registration.status != "cancelled")
        .group_by(Registration.event_id, Registration.status)
    ).all()
    raw: dict[int, dict[str, int]] = {}
    for event_id, status, n in rows:
        raw.setdefault(event_id, {})[status] = n
    for event_id, by_status in raw.items():
        result[event_id] = Counts(by_status.get("confirmed", 0), by_status.get("waitlisted", 0),
                                  by_status.get("applied", 0))
    return result


def registration_closes_at(event: Event) -> datetime:
    return event.registration_closes_at or event.starts_at


def availability(event: Event, counts: Counts, now: datetime | None = None) -> Availability:
    now = now or utcnow()
    seats_left = max(event.capacity - counts.confirmed, 0)
    if event.status == "cancelled":
        state = "cancelled"
    elif event.status != "published":
        state = "draft"
    elif event.registration_opens_at and now < event.registration_opens_at:
        state = "not_yet_open"
    elif now >= registration_closes_at(event):
        state = "closed"
    else:
        state = "open" if seats_left > 0 else "waitlist"
    return Availability(state=state, seats_left=seats_left, counts=counts)


def roster_frozen(event: Event, now: datetime | None = None) -> bool:
    return event.roster_freeze_at is not None and (now or utcnow()) >= event.roster_freeze_at
