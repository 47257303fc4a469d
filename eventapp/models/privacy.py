"""Versioned privacy notice (個人情報の取扱い); registrations record the version they accepted."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import UTCDateTime, utcnow


class PrivacyNotice(db.Model):
    __tablename__ = "privacy_notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(32), unique=True)
    purpose: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    contact: Mapped[str] = mapped_column(Text)
    # The English text of the same version ('' = none published: English mode shows the Japanese one).
    purpose_en: Mapped[str] = mapped_column(Text, default="", server_default="")
    body_en: Mapped[str] = mapped_column(Text, default="", server_default="")
    contact_en: Mapped[str] = mapped_column(Text, default="", server_default="")
    published_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def has_english(self) -> bool:
        """An English text was published with this version (purpose and body both given)."""
        return bool(self.purpose_en and self.body_en)

    def text(self, language: str) -> dict[str, str]:
        """purpose/body/contact in `language` ('en' only when has_english; contact falls back)."""
        if language == "en" and self.has_english:
            return {"purpose": self.purpose_en, "body": self.body_en, "contact": self.contact_en or self.contact}
        return {"purpose": self.purpose, "body": self.body, "contact": self.contact}
