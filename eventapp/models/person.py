"""A participant. One person per (normalised) email address."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import CheckConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import UTCDateTime, utcnow

IWATE_RELATIONS = ("origin", "connected", "none")


def new_calendar_token() -> str:
    return secrets.token_urlsafe(24)  # 192 bits: the only key to a person's calendar feed


class Person(db.Model):
    __tablename__ = "people"
    __table_args__ = (
        CheckConstraint(f"iwate_relation IN {IWATE_RELATIONS}", name="iwate_relation_valid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # NULL once anonymised; unique while present.
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    furigana: Mapped[str] = mapped_column(String(100), index=True)
    phone: Mapped[str] = mapped_column(String(40), default="")
    prefecture: Mapped[str] = mapped_column(String(16), default="")
    iwate_relation: Mapped[str] = mapped_column(String(16), default="none")
    occupation: Mapped[str] = mapped_column(Text, default="")
    skills: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    anonymised_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # Secret path of the personal calendar feed (/feeds/person/<token>.ics); set on sign-up, NULL once anonymised.
    calendar_token: Mapped[str | None] = mapped_column(String(64), unique=True, default=new_calendar_token)

    registrations = relationship("Registration", back_populates="person")

    def __repr__(self) -> str:
        return f"<Person {self.id}>"
