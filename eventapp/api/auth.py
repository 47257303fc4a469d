"""Bearer-token authentication for staff API endpoints."""

from __future__ import annotations

import functools
import hashlib

from flask import g, request
from flask_login import current_user
from sqlalchemy import bindparam, select

from ..extensions import db
from ..models import ApiToken, User
from ..services.errors import DomainError


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# Built once: every check-in scan runs it. The user alone (joined to the token) is one entity to
# load instead of two; the token's id comes along as a column (the request log names the token by it).
_USER_BY_TOKEN = select(User, ApiToken.id).join(ApiToken, ApiToken.user_id == User.id).where(
    ApiToken.token_hash == bindparam("token_hash"))


def authenticated_user() -> User | None:
    """The user of a valid bearer token; `None` if the header is absent."""
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise DomainError("unauthorized", "Authorization ヘッダーは 'Bearer <token>' の形式で指定してください。",
                          status=401)
    row = db.session.execute(_USER_BY_TOKEN, {"token_hash": hash_token(token.strip())}).one_or_none()
    if row is None or not row[0].active:
        raise DomainError("unauthorized", "APIトークンが無効です。", status=401)
    g.api_token_id = row[1]
    return row[0]


def require_role(role: str, *, allow_session: bool = False):
    """Bearer token (or, where allowed, a logged-in staff session with CSRF) with at least `role`."""

    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            user = authenticated_user()
            if user is None and allow_session and current_user.is_authenticated:
                user = current_user
            if user is None:
                raise DomainError("unauthorized", "認証が必要です(Authorization: Bearer <token>)。", status=401)
            if not user.has_role(role):
                raise DomainError("forbidden", "この操作の権限がありません。", status=403)
            g.api_user = user
            return view(*args, **kwargs)

        return wrapped

    return decorator
