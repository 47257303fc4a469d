"""Staff accounts and API tokens."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from ..api.auth import hash_token
from ..auth import hash_password
from ..extensions import db
from ..models import ROLES, ApiToken, User
from . import text
from .errors import DomainError, ValidationFailed
from .people import normalise_email

MIN_PASSWORD = 10


def create_user(email: str, role: str, password: str | None = None, name: str = "") -> tuple[User, str]:
    """Create a staff user; returns the user and the password (generated when not given)."""
    if role not in ROLES:
        raise ValidationFailed({"role": f"役割は {', '.join(ROLES)} のいずれかです。"})
    errors: dict[str, str] = {}
    email = text.check_email(errors, "email", email, required=True)
    name = text.check(errors, "name", name, limit=text.column_limit(User.name))  # single line: audit, headers
    if errors:
        raise ValidationFailed(errors)
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


def _get_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise DomainError("not_found", "ユーザーが見つかりません。", status=404)
    return user


def _admins_left(excluding: User) -> int:
    return len(db.session.execute(
        select(User.id).where(User.role == "admin", User.active.is_(True), User.id != excluding.id)
    ).all())


def set_role(user_id: int, role: str, *, acting: User) -> User:
    """Change a staff member's role; the last active admin cannot lose admin rights."""
    from . import audit

    if role not in ROLES:
        raise ValidationFailed({"role": "役割を選んでください。"})
    user = _get_user(user_id)
    if user.role == "admin" and role != "admin" and _admins_left(user) == 0:
        raise DomainError("last_admin", "最後の管理者の役割は変更できません。先に別の管理者を作成してください。")
    before, user.role = user.role, role
    audit.record("role", "user", user.id, f"{user.email}: {before} → {role}", user=acting)
    return user


def set_active(user_id: int, active: bool, *, acting: User) -> User:
    """Deactivate (can no longer log in; history and audit entries stay) or reactivate an account."""
    from . import audit

    user = _get_user(user_id)
    if not active and user.id == acting.id:
        raise DomainError("self", "自分自身のアカウントは無効化できません。")
    if not active and user.role == "admin" and _admins_left(user) == 0:
        raise DomainError("last_admin", "最後の管理者は無効化できません。")
    user.active = active
    if not active:
        user.tokens.clear()  # API tokens of a deactivated account stop working at once
    audit.record("activate" if active else "deactivate", "user", user.id, user.email, user=acting)
    return user


def change_password(user: User, current: str, new: str, confirm: str) -> None:
    from ..auth import verify_password
    from . import audit

    errors = {}
    if not verify_password(user, current or ""):
        errors["current_password"] = "現在のパスワードが正しくありません。"
    if len(new or "") < MIN_PASSWORD:
        errors["new_password"] = f"新しいパスワードは{MIN_PASSWORD}文字以上にしてください。"
    elif new != confirm:
        errors["confirm_password"] = "確認用のパスワードが一致しません。"
    elif new == current:
        errors["new_password"] = "現在と異なるパスワードにしてください。"
    if errors:
        raise ValidationFailed(errors)
    user.password_hash = hash_password(new)
    audit.record("password", "user", user.id, f"{user.email}: パスワードを変更", user=user)


def create_staff_user(email: str, role: str, name: str, password: str | None, *, acting: User) -> tuple[User, str]:
    from . import audit

    user, password = create_user(email, role, password or None, name)
    audit.record("create", "user", user.id, f"{user.email}({role})を作成", user=acting)
    return user, password
