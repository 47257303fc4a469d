"""Staff login and logout."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import EmailField, PasswordField

from ..extensions import db, limiter
from ..models import User
from . import bp, verify_password


class LoginForm(FlaskForm):
    email = EmailField("メールアドレス", render_kw={"autocomplete": "username"})
    password = PasswordField("パスワード", render_kw={"autocomplete": "current-password"})


def _safe_next(target: str | None) -> str:
    # Only same-site paths: never redirect to another host after login.
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("staff.dashboard") if "staff.dashboard" in _endpoints() else "/"


def _endpoints() -> set[str]:
    return set(current_app.view_functions)


def _login_rate_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.route("/login", methods=["GET", "POST"])
# Only submitted passwords count: guessing is slowed, reading the form is not.
@limiter.limit(_login_rate_limit, methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        email = (form.email.data or "").strip().lower()
        user = db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
        if user is not None and user.active and verify_password(user, form.password.data or ""):
            session.clear()  # a fresh session at login (no fixation)
            login_user(user)
            return redirect(_safe_next(request.args.get("next")), code=303)
        error = "メールアドレスまたはパスワードが正しくありません。"
    status = 401 if error else 200
    return render_template("auth/login.html", form=form, error=error), status


@bp.post("/logout")
def logout():
    logout_user()
    session.clear()
    flash("ログアウトしました。", "success")
    return redirect(url_for("auth.login"), code=303)
