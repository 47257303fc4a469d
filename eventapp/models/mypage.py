"""Sign-in links of マイページ: one row per mailed link, holding only the link's SHA-256 hash."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import UTCDateTime, utcnow


class MyPageLink(db.Model):
    __tablename__ = "my_page_links"
    __table_args__ = (
        CheckConstraint("expires_at > created_at", name="expires_after_creation"),
        CheckConstraint("signed_out_at IS NULL OR used_at IS NOT NULL", name="signed_out_after_use"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # hex SHA-256 of the token in the mailed URL; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # NULL: asked for an address nobody registered with. Written all the same so that the answer
    # costs the same (no enumeration by timing); such a row never signs anyone in.
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    # When the link was used to sign in (single use), and when that session was ended by logout:
    # the session cookie names this row, so a cookie copied before logout no longer works.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    signed_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    person = relationship("Person")
