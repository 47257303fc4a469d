"""Rate-limit counters shared by all gunicorn workers (RATELIMIT_STORAGE_URI=database://)."""

from __future__ import annotations

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db


class RateLimitCounter(db.Model):
    """One fixed window of one limit for one client: `key` comes from Flask-Limiter."""

    __tablename__ = "rate_limit_counter"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    # Unix seconds: the window is compared with time.time() in every worker, no time zones involved.
    expires_at: Mapped[float] = mapped_column(Float, index=True)
