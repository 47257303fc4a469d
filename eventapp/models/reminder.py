"""Reminder mails already queued: one row per registration, reminder and the time it was armed for."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import UTCDateTime, utcnow


class ReminderSend(db.Model):
    """Written in the transaction that queues the mail, with INSERT … ON CONFLICT DO NOTHING: the
    unique key is what makes a reminder go out once, whichever of two racing passes gets there first.

    `armed_for` is the instant the reminder counted back from: the event's start (集合 for fieldwork)
    for reminders, the roster freeze for "waitlist_closed". Moving the event moves it, so a moved event
    gets its reminders again for the new time."""

    __tablename__ = "reminder_sends"
    __table_args__ = (UniqueConstraint("registration_id", "code", "armed_for", name="uq_reminder_sends_once"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32))  # a REMINDERS code, or "waitlist_closed"
    armed_for: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
