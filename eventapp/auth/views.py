"""Staff login (password, then the two-factor code where it is on) and logout."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField

from .. import auth  # auth.clock at call time: the tests move it
from ..extensions import db, limiter
from ..models import User
from ..services import accounts, two_factor
from . import PENDING_KEY, bp, end_staff_session, start_staff_session

# The password step is remembered this long while the two-factor code is typed.
PENDING_TTL_S = 300


class LoginForm(FlaskForm):
    email = EmailField("メールアドレス", render_kw={"autocomplete": "username"})
    password = PasswordField("パスワード", render_kw={"autocomplete": "current-password"})


class CodeForm(FlaskForm):
    code = StringField("確認コード(6桁)または回復コード",
                       render_kw={"autocomplete": "one-time-code", "inputmode": "text", "maxlength": "20"})


def _safe_next(target: str | None) -> str:
    # Only same-site paths: never redirect to another host after login.
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("staff.dashboard") if "staff.dashboard" in _endpoints() else "/"


def _endpoints() -> set[str]:
    return set(current_app.view_functions)


def _login_rate_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _log_in(user: User) -> None:
    session.clear()  # a fresh session at login (no fixation)
    login_user(user)
    start_staff_session(user)


@bp.route("/login", methods=["GET", "POST"])
# Only submitted passwords count: guessing is slowed, reading the form is not.
@limiter.limit(_login_rate_limit, methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        user = accounts.authenticate(form.email.data or "", form.password.data or "")
        if user is not None and user.totp_enabled:
            end_staff_session()
            session[PENDING_KEY] = {"uid": user.id, "sv": user.session_version, "at": int(auth.clock())}
            return redirect(url_for("auth.login_code", next=request.args.get("next")), code=303)
        if user is not None:
            _log_in(user)
            return redirect(_safe_next(request.args.get("next")), code=303)
        error = "メールアドレスまたはパスワードが正しくありません。"
    status = 401 if error else 200
    return render_template("auth/login.html", form=form, error=error), status


def _pending_user() -> User | None:
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict) or auth.clock() - pending.get("at", 0) > PENDING_TTL_S:
        return None
    user = db.session.get(User, pending.get("uid", 0))
    if user is None or not user.active or user.session_version != pending.get("sv"):
        return None
    return user


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit(_login_rate_limit, methods=["POST"])
def login_code():
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    user = _pending_user()
    if user is None:
        session.pop(PENDING_KEY, None)
        flash("もう一度メールアドレスとパスワードを入力してください。", "error")
        return redirect(url_for("auth.login", next=request.args.get("next")), code=303)
    form = CodeForm()
    error = None
    if form.validate_on_submit():
        if two_factor.check(user, form.code.data or ""):
            db.session.commit()  # the used step or recovery code cannot be used again
            _log_in(user)
            return redirect(_safe_next(request.args.get("next")), code=303)
        db.session.rollback()
        error = "確認コードが正しくありません。認証アプリの6桁の数字、または回復コードを入力してください。"
    return render_template("auth/login_code.html", form=form, error=error), 401 if error else 200


@bp.post("/logout")
def logout():
    if current_user.is_authenticated:
        # Server-side: the version this cookie carries is gone, so a copy of it no longer works
        # (the user's other sessions end too).
        accounts.end_sessions(current_user)
        db.session.commit()
    logout_user()
    session.clear()
    flash("ログアウトしました。", "success")
    return redirect(url_for("auth.login"), code=303)
