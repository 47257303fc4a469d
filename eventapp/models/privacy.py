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
    published_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
