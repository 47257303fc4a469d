"""Staff accounts (事務局) and their API tokens."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import UTCDateTime, utcnow

ROLES = ("admin", "staff", "checkin")
# Each role includes the rights of the roles after it.
ROLE_RANK = {"checkin": 1, "staff": 2, "admin": 3}


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(f"role IN {ROLES}", name="role_valid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(300), default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Copied into the session at login and compared on every request: bumping it (logout, password or
    # role change, deactivation, "logout everywhere") ends every session of this user at once.
    session_version: Mapped[int] = mapped_column(default=1, server_default="1")
    # TOTP two-factor (admins): the base32 secret while enrolling or enabled; enabled once confirmed.
    totp_secret: Mapped[str] = mapped_column(String(64), default="", server_default="")
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # The last accepted TOTP time step: a code that was used once cannot be replayed.
    totp_last_step: Mapped[int] = mapped_column(default=0, server_default="0")

    tokens = relationship("ApiToken", back_populates="user", cascade="all, delete-orphan")
    recovery_codes = relationship("RecoveryCode", back_populates="user", cascade="all, delete-orphan")

    @property
    def is_active(self) -> bool:  # Flask-Login
        return self.active

    def has_role(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    @property
    def totp_enabled(self) -> bool:
        return self.totp_enabled_at is not None


class ApiToken(db.Model):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Only the SHA-256 of the token is stored; the token itself is shown once.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    user: Mapped[User] = relationship(back_populates="tokens")


class RecoveryCode(db.Model):
    """A single-use two-factor recovery code; only its SHA-256 is stored (the codes are random)."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    user: Mapped[User] = relationship(back_populates="recovery_codes")
