"""Onsite attendance: one check-in per registration and event day.

A row is *active* while it is neither undone nor a duplicate. The partial unique index keeps at
most one active row per (registration, day) whatever the application does, so two devices that
scan the same ticket at the same moment cannot both admit it. Undone check-ins and duplicates
that arrive from offline devices are kept (not deleted) so staff can see what happened.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import UTCDateTime, utcnow

CHECKIN_SOURCES = ("scan", "manual", "walkin", "offline")
_ACTIVE = "undone_at IS NULL AND duplicate_of_id IS NULL"


class CheckIn(db.Model):
    __tablename__ = "checkins"
    __table_args__ = (
        CheckConstraint(f"source IN {CHECKIN_SOURCES}", name="source_valid"),
        CheckConstraint("undone_at IS NULL OR undone_by_id IS NOT NULL OR duplicate_of_id IS NOT NULL",
                        name="undo_has_actor"),
        Index("uq_checkins_active_registration_day", "registration_id", "event_day_id", unique=True,
              sqlite_where=text(_ACTIVE), postgresql_where=text(_ACTIVE)),
        Index("ix_checkins_day_active", "event_day_id", "undone_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"), index=True)
    event_day_id: Mapped[int] = mapped_column(ForeignKey("event_days.id", ondelete="CASCADE"))
    # When the ticket was scanned (on an offline device: the device's time), not when it reached us.
    checked_in_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    device_id: Mapped[str] = mapped_column(String(64), default="")
    # Client-chosen idempotency key: a retried request with the same nonce never adds a row.
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(16), default="scan")
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    undone_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    # Set when two offline devices admitted the same ticket: the later scan points at the winner.
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("checkins.id", ondelete="SET NULL"),
                                                        default=None)

    registration = relationship("Registration")
    day = relationship("EventDay")
    by_user = relationship("User", foreign_keys=[by_user_id])
    undone_by = relationship("User", foreign_keys=[undone_by_id])

    @property
    def is_active(self) -> bool:
        return self.undone_at is None and self.duplicate_of_id is None

    @property
    def by_name(self) -> str:
        user = self.by_user
        if user is None:
            return ""
        return user.name or user.email.split("@")[0]
