"""Staff accounts and API tokens."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from ..api.auth import hash_token
from ..auth import hash_password
from ..extensions import db
from ..models import ROLES, ApiToken, User
from .errors import DomainError, ValidationFailed
from .people import normalise_email

MIN_PASSWORD = 10


def create_user(email: str, role: str, password: str | None = None, name: str = "") -> tuple[User, str]:
    """Create a staff user; returns the user and the password (generated when not given)."""
    if role not in ROLES:
        raise ValidationFailed({"role": f"役割は {', '.join(ROLES)} のいずれかです。"})
    try:
        email = normalise_email(email)
    except Exception as exc:
        raise ValidationFailed({"email": "メールアドレスの形式が正しくありません。"}) from exc
    if db.session.execute(select(User).where(User.email == email)).scalar_one_or_none():
        raise DomainError("duplicate", f"{email} は既に登録されています。")
    password = password or secrets.token_urlsafe(12)
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed({"password": f"パスワードは{MIN_PASSWORD}文字以上にしてください。"})
    user = User(email=email, role=role, name=name, password_hash=hash_password(password))
    db.session.add(user)
    db.session.flush()
    return user, password


def create_token(email: str) -> str:
    """Issue a new API token for a user; only its hash is stored, the token is returned once."""
    user = db.session.execute(select(User).where(User.email == normalise_email(email))).scalar_one_or_none()
    if user is None:
        raise DomainError("not_found", f"{email} というユーザーはいません。", status=404)
    token = "ea_" + secrets.token_urlsafe(32)
    db.session.add(ApiToken(user=user, token_hash=hash_token(token)))
    db.session.flush()
    return token
