"""Staff accounts and API tokens."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from ..api.auth import hash_token
from ..auth import hash_password, verify_password
from ..extensions import db
from ..models import ROLES, ApiToken, User
from . import text
from .errors import DomainError, ValidationFailed
from .passwords import MIN_PASSWORD, password_problem
from .people import normalise_email

__all__ = ["MIN_PASSWORD", "authenticate", "change_password", "create_staff_user", "create_token", "create_user",
           "end_sessions", "set_active", "set_role"]


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
    if problem := password_problem(password, email=email):
        raise ValidationFailed({"password": problem})
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


def authenticate(email: str, password: str) -> User | None:
    """The active user with this e-mail and password, else None. The password is always hashed (against
    a dummy hash for an unknown address), so the answer takes as long for an unknown address."""
    try:
        email = normalise_email(email)
    except ValueError:  # not an address: no such user, but the hash below still runs
        email = ""
    user = db.session.execute(select(User).where(User.email == email)).scalar_one_or_none() if email else None
    if not verify_password(user, password or ""):
        return None
    return user if user is not None and user.active else None


def _bump_session_version(user: User) -> None:
    # In SQL, not read-modify-write: two bumps at once both count.
    user.session_version = User.session_version + 1
    db.session.flush()
    db.session.refresh(user, ["session_version"])


def end_sessions(user: User, *, everywhere: bool = False) -> None:
    """Logout: every session of this user ends, including cookies copied from this one. `everywhere`
    (the button on the account page) is also written to the audit log."""
    from . import audit

    _bump_session_version(user)
    if everywhere:
        audit.record("logout_all", "user", user.id, f"{user.email}: すべての端末からログアウト", user=user)


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
    if before != role:
        _bump_session_version(user)  # the new rights apply from a fresh login
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
        _bump_session_version(user)  # and so do its sessions
    audit.record("activate" if active else "deactivate", "user", user.id, user.email, user=acting)
    return user


def change_password(user: User, current: str, new: str, confirm: str) -> None:
    """Set a new password; every other session of the user ends (the caller keeps its own)."""
    from . import audit

    errors = {}
    if not verify_password(user, current or ""):
        errors["current_password"] = "現在のパスワードが正しくありません。"
    if problem := password_problem(new or "", email=user.email):
        errors["new_password"] = problem.replace("パスワードは", "新しいパスワードは", 1)
    elif new != confirm:
        errors["confirm_password"] = "確認用のパスワードが一致しません。"
    elif new == current:
        errors["new_password"] = "現在と異なるパスワードにしてください。"
    if errors:
        raise ValidationFailed(errors)
    user.password_hash = hash_password(new)
    _bump_session_version(user)
    audit.record("password", "user", user.id, f"{user.email}: パスワードを変更", user=user)


def create_staff_user(email: str, role: str, name: str, password: str | None, *, acting: User) -> tuple[User, str]:
    from . import audit

    user, password = create_user(email, role, password or None, name)
    audit.record("create", "user", user.id, f"{user.email}({role})を作成", user=acting)
    return user, password
