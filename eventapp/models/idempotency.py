"""Stored answers to requests that carried an idempotency key (retry-safe sign-up)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import UTCDateTime, utcnow

KEY_MAX = 200  # the Idempotency-Key header / hidden form field (validated to this length)


class IdempotencyKey(db.Model):
    """The response a request with `key` got, written in the same transaction as what it created, so a
    worker that died after the commit still leaves the answer for the client's retry."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("scope", "key"),
        CheckConstraint("status_code BETWEEN 100 AND 599", name="status_code_valid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # What the key is for, and for whom: e.g. "api:registrations:12:anonymous" (see api/idempotency.py).
    scope: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(KEY_MAX))
    request_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 hex of method, path and body
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str] = mapped_column(Text, default="")
    response_headers: Mapped[dict] = mapped_column(JSON, default=dict)  # Content-Type, Location
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
