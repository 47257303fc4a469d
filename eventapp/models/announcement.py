"""Consent to announcements of future events (特定電子メール法: opt-in, recorded, withdrawable).

One row per person (the contact identity of one address), written only once the mailbox has been
proven: by the confirmation link mailed after a sign-up that ticked the box, or in マイページ. A
sign-up alone never writes here (typing an address proves nothing about owning it)."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import UTCDateTime, utcnow

CONSENT_STATUSES = ("active", "withdrawn")
CONSENT_SOURCES = ("signup", "mypage")
WITHDRAWAL_CHANNELS = ("", "link", "one_click", "mypage")


def new_unsubscribe_token() -> str:
    return secrets.token_urlsafe(24)  # 192 bits: the only key to /announcements/unsubscribe/<token>


class AnnouncementConsent(db.Model):
    __tablename__ = "announcement_consents"
    __table_args__ = (
        CheckConstraint(f"status IN {CONSENT_STATUSES}", name="status_valid"),
        CheckConstraint(f"source IN {CONSENT_SOURCES}", name="source_valid"),
        CheckConstraint(f"withdrawn_via IN {WITHDRAWAL_CHANNELS}", name="withdrawn_via_valid"),
        CheckConstraint("status != 'withdrawn' OR withdrawn_at IS NOT NULL", name="withdrawn_has_time"),
        CheckConstraint("consent_version != ''", name="version_given"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    # The wording agreed to (services.announcements.ANNOUNCEMENT_CONSENT_VERSION) and when.
    consent_version: Mapped[str] = mapped_column(String(32))
    consented_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(16))
    # The sign-up whose box was ticked (signup source), kept as evidence of where the wish came from.
    registration_id: Mapped[int | None] = mapped_column(ForeignKey("registrations.id", ondelete="SET NULL"),
                                                        default=None)
    unsubscribe_token: Mapped[str] = mapped_column(String(64), unique=True, default=new_unsubscribe_token)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    withdrawn_via: Mapped[str] = mapped_column(String(16), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    person = relationship("Person")

    @property
    def is_active(self) -> bool:
        return self.status == "active"
