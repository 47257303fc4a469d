"""A mail staff write to an event's participants: composed, previewed, tested, then sent or scheduled.

One row per mail; sending queues one outbox message per recipient in the transaction that moves the
row to `sent` (a conditional UPDATE from `draft` or `scheduled`), so a mail goes out once even with two
senders or a double click."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import UTCDateTime, utcnow

# draft: being composed (preview, test send); scheduled: waits for scheduled_at; sent: handed to the
# outbox (one message per recipient); cancelled: a scheduled mail withdrawn before its time.
STAFF_MAIL_STATUSES = ("draft", "scheduled", "sent", "cancelled")
STAFF_MAIL_AUDIENCES = ("confirmed", "waitlisted", "all", "checked_in")
STAFF_MAIL_ATTACHMENTS = ("programme", "ticket")


class StaffMail(db.Model):
    __tablename__ = "staff_mails"
    __table_args__ = (
        CheckConstraint(f"status IN {STAFF_MAIL_STATUSES}", name="status_valid"),
        CheckConstraint(f"audience IN {STAFF_MAIL_AUDIENCES}", name="audience_valid"),
        CheckConstraint("status != 'scheduled' OR scheduled_at IS NOT NULL", name="scheduled_has_time"),
        CheckConstraint("status != 'sent' OR sent_at IS NOT NULL", name="sent_has_time"),
        CheckConstraint("recipient_count >= 0", name="recipient_count_valid"),
        # The scheduled pass looks for due mails by (status, scheduled_at).
        Index("ix_staff_mails_status_scheduled", "status", "scheduled_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    audience: Mapped[str] = mapped_column(String(16))
    # Documents attached to every recipient's mail (STAFF_MAIL_ATTACHMENTS codes).
    attachments: Mapped[list] = mapped_column(JSON, default=list)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When a scheduled mail is due (UTC); NULL for a mail sent at once.
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    recipient_count: Mapped[int] = mapped_column(Integer, default=0)

    event = relationship("Event")
    created_by = relationship("User")
