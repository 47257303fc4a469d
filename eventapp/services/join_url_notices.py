"""The join-URL mail of an online seminar, sent at the time staff chose to reveal the URL.

People confirmed before `online_url_reveal_at` were told the URL comes later; at the reveal time each
of them gets one mail with it (and the calendar invite, which then carries it). People confirmed
after it already had the URL in their confirmation mail. A scheduled pass (services/scheduled.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from ..database import write_intent
from ..extensions import db
from ..models import Event, Registration
from . import mail

BATCH = 500


def queue_join_url_mails(now: datetime, limit: int = BATCH) -> int:
    """Queue the join-URL mail for everyone who is due it; returns how many were queued.

    Each registration is claimed with a conditional UPDATE before its mail is queued, in the caller's
    transaction: a second pass running at once waits for the claim's row lock (PostgreSQL) or the
    write lock (SQLite) and then finds it taken, so nobody gets the mail twice.
    """
    due = db.session.execute(
        select(Registration.id)
        .join(Event, Event.id == Registration.event_id)
        .where(Event.kind == "online_seminar", Event.status == "published", Event.online_url != "",
               Event.online_url_reveal_at.is_not(None), Event.online_url_reveal_at <= now, Event.ends_at > now,
               Registration.status == "confirmed", Registration.lead_registration_id.is_(None),
               Registration.confirmed_at < Event.online_url_reveal_at,
               Registration.join_url_mailed_at.is_(None))
        .order_by(Registration.id).limit(limit)
    ).scalars().all()
    # A read only so far; most passes end here. The claims below start with SQLite's write lock, so a
    # second pass waits for this one instead of failing with "database is locked".
    db.session.rollback()
    if not due:
        return 0
    with write_intent():
        return _claim_and_queue(due, now)


def _claim_and_queue(due: list[int], now: datetime) -> int:
    queued = 0
    for registration_id in due:
        claimed = db.session.execute(
            update(Registration)
            .where(Registration.id == registration_id, Registration.join_url_mailed_at.is_(None),
                   Registration.status == "confirmed")
            .values(join_url_mailed_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not claimed:
            continue
        registration = db.session.execute(
            select(Registration).where(Registration.id == registration_id)
            .options(joinedload(Registration.event), joinedload(Registration.person))
        ).scalar_one()
        # `now` is the pass's clock: the body shows the URL as revealed at this time.
        if mail.queue_registration_mail("join_url_revealed", registration, now=now) is not None:
            queued += 1
    return queued
