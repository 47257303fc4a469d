"""Staff authentication: the Flask-Login user loader and password helpers."""

from __future__ import annotations

from flask import Blueprint
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db, login_manager
from ..models import User

bp = Blueprint("auth", __name__, url_prefix="/staff")


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    if not user_id.isdigit():
        return None
    return db.session.get(User, int(user_id))


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def verify_password(user: User, password: str) -> bool:
    return bool(user.password_hash) and check_password_hash(user.password_hash, password)


from . import views  # noqa: E402,F401
