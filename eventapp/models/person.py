"""A participant. One person per (normalised) email address."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import CheckConstraint, Index, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..services.text import search_keys
from .base import UTCDateTime, utcnow

IWATE_RELATIONS = ("origin", "connected", "none")


def trigram_index(name: str, column: str) -> Index:
    """An index for `LIKE '%…%'` on a search key: GIN trigram on PostgreSQL (pg_trgm), a plain index
    elsewhere (SQLite scans it instead of the table). The migration falls back to btree on PostgreSQL
    when pg_trgm cannot be created (docs/performance.md)."""
    return Index(name, column, postgresql_using="gin", postgresql_ops={column: "gin_trgm_ops"})


def new_calendar_token() -> str:
    return secrets.token_urlsafe(24)  # 192 bits: the only key to a person's calendar feed


class Person(db.Model):
    __tablename__ = "people"
    __table_args__ = (
        CheckConstraint(f"iwate_relation IN {IWATE_RELATIONS}", name="iwate_relation_valid"),
        trigram_index("ix_people_search_name", "search_name"),
        trigram_index("ix_people_search_phone", "search_phone"),
        trigram_index("ix_people_email_trgm", "email"),
        # Covering: a one- or two-character search has no trigram; it scans this instead of the table.
        Index("ix_people_search_name_id", "search_name", "id"),
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
    # Search keys (services.text.search_keys), kept by keep_search_keys below for ORM writes and by
    # people.attendee_values for the bulk inserts; "" once anonymised. No Python default, so an insert
    # through database.column_values that forgets them fails (NULL) instead of writing an unsearchable
    # row; the server default is for rows written by app servers older than the columns.
    search_name: Mapped[str] = mapped_column(Text, server_default="")
    search_phone: Mapped[str] = mapped_column(String(40), server_default="")

    registrations = relationship("Registration", back_populates="person")

    def __repr__(self) -> str:
        return f"<Person {self.id}>"


def keep_search_keys(mapper, connection, target) -> None:
    """ORM writes of a person or registration: the search keys follow name, furigana and phone,
    unless the writer set them itself in this flush (anonymisation blanks them)."""
    from sqlalchemy import inspect

    state = inspect(target)
    if state.attrs.search_name.history.has_changes():
        return
    if state.persistent and not any(state.attrs[f].history.has_changes() for f in ("name", "furigana", "phone")):
        return
    for key, value in search_keys(target.name, target.furigana, target.phone).items():
        setattr(target, key, value)


event.listen(Person, "before_insert", keep_search_keys)
event.listen(Person, "before_update", keep_search_keys)
