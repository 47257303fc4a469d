"""Admin pages (staff accounts, audit log, privacy notice) and each user's own password."""

from __future__ import annotations

from flask import current_app, flash, make_response, redirect, render_template, request, session, url_for
from flask_login import current_user, logout_user
from sqlalchemy import select

from ..auth import keep_staff_session
from ..auth.decorators import role_required
from ..extensions import db
from ..models import ROLES, User
from ..params import query_int
from ..services import accounts, audit, privacy, two_factor
from ..services.errors import DomainError, ValidationFailed
from ..services.tickets import qr_svg
from . import bp

ROLE_LABELS = {"admin": "管理者(すべて)", "staff": "事務局(イベント・参加者・出力)", "checkin": "受付(チェックインのみ)"}


@bp.get("/audit")
@role_required("admin")
def audit_log():
    page = query_int("page", 1)
    action = request.args.get("action") or None
    object_type = request.args.get("object_type") or None
    rows, has_next = audit.entries(action=action, object_type=object_type, page=page)
    return render_template("staff/audit.html", rows=rows, page=page, has_next=has_next, action=action,
                           object_type=object_type, action_labels=audit.ACTION_LABELS)


@bp.route("/users", methods=["GET", "POST"])
@role_required("admin")
def users():
    errors: dict = {}
    values = dict(request.form.items()) if request.method == "POST" else {"role": "staff"}
    if request.method == "POST":
        try:
            user, password = accounts.create_staff_user(values.get("email", ""), values.get("role", ""),
                                                        values.get("name", ""), values.get("password"),
                                                        acting=current_user)
            db.session.commit()
            if values.get("password"):
                flash(f"{user.email} を作成しました。", "success")
            else:
                flash(f"{user.email} を作成しました。初期パスワード: {password} (この画面でしか表示されません。"
                      "本人に安全な方法で伝え、ログイン後に変更してもらってください)", "success")
            return redirect(url_for("staff.users"), code=303)
        except ValidationFailed as exc:
            db.session.rollback()
            errors = exc.fields
        except DomainError as exc:
            db.session.rollback()
            errors = {"email": exc.message}
    all_users = db.session.execute(select(User).order_by(User.active.desc(), User.email)).scalars().all()
    return render_template("staff/users.html", users=all_users, values=values, errors=errors, roles=ROLES,
                           role_labels=ROLE_LABELS), 422 if errors else 200


@bp.post("/users/<int:user_id>/role")
@role_required("admin")
def user_role(user_id: int):
    try:
        user = accounts.set_role(user_id, request.form.get("role", ""), acting=current_user)
        db.session.commit()
        if user.id == current_user.id:
            keep_staff_session(user)  # an admin changing their own role stays in, with the new rights
        flash(f"{user.email} の役割を変更しました。", "success")
    except DomainError as exc:
        db.session.rollback()
        flash(" ".join(exc.fields.values()) or exc.message, "error")
    return redirect(url_for("staff.users"), code=303)


@bp.post("/users/<int:user_id>/active")
@role_required("admin")
def user_active(user_id: int):
    active = request.form.get("active") == "1"
    try:
        user = accounts.set_active(user_id, active, acting=current_user)
        db.session.commit()
        flash(f"{user.email} を{'有効' if active else '無効'}にしました。", "success")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("staff.users"), code=303)


@bp.route("/account/password", methods=["GET", "POST"])
@role_required("checkin")
def password():
    errors: dict = {}
    if request.method == "POST":
        try:
            accounts.change_password(current_user, request.form.get("current_password", ""),
                                     request.form.get("new_password", ""), request.form.get("confirm_password", ""))
            db.session.commit()
            keep_staff_session(current_user)  # this session stays in; every other one is out
            flash("パスワードを変更しました。ほかの端末のログインは終了しました。", "success")
            return redirect(url_for("staff.dashboard"), code=303)
        except ValidationFailed as exc:
            db.session.rollback()
            errors = exc.fields
    return render_template("staff/password.html", errors=errors), 422 if errors else 200


@bp.post("/account/logout-everywhere")
@role_required("checkin")
def logout_everywhere():
    accounts.end_sessions(current_user, everywhere=True)
    db.session.commit()
    logout_user()
    session.clear()
    flash("すべての端末からログアウトしました。", "success")
    return redirect(url_for("auth.login"), code=303)


@bp.route("/account/two-factor", methods=["GET", "POST"])
@role_required("admin")
def two_factor_settings():
    """Admins: switch TOTP two-factor on (QR code, confirm with a code, recovery codes once) or off."""
    errors: dict = {}
    action = request.form.get("action") if request.method == "POST" else None
    try:
        if action == "begin":
            two_factor.begin(current_user)
            db.session.commit()
            return redirect(url_for("staff.two_factor_settings"), code=303)
        if action == "confirm":
            codes = two_factor.confirm(current_user, request.form.get("code", ""))
            db.session.commit()
            # Shown once: never cached, never in a later page.
            response = make_response(render_template("staff/two_factor.html", recovery_codes=codes, errors={}))
            response.headers["Cache-Control"] = "no-store"
            return response
        if action == "disable":
            two_factor.disable(current_user, request.form.get("password", ""), request.form.get("code", ""))
            db.session.commit()
            flash("二要素認証を無効にしました。", "success")
            return redirect(url_for("staff.two_factor_settings"), code=303)
    except ValidationFailed as exc:
        db.session.rollback()
        errors = exc.fields
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("staff.two_factor_settings"), code=303)
    user = current_user
    enrolling = not user.totp_enabled and bool(user.totp_secret)
    uri = two_factor.provisioning_uri(user) if enrolling else None
    response = make_response(render_template(
        "staff/two_factor.html", errors=errors, enrolling=enrolling, secret=user.totp_secret if enrolling else None,
        qr=qr_svg(uri, scale=4) if uri else None, remaining=two_factor.remaining_recovery_codes(user)),
        422 if errors else 200)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/privacy", methods=["GET", "POST"])
@role_required("admin")
def privacy_notice():
    notice = privacy.current_notice()
    errors: dict = {}
    values = dict(request.form.items()) if request.method == "POST" else {
        "purpose": notice.purpose, "body": notice.body, "contact": notice.contact, "version": "",
        "purpose_en": notice.purpose_en or "", "body_en": notice.body_en or "", "contact_en": notice.contact_en or ""}
    if request.method == "POST":
        try:
            new = privacy.publish_notice(values.get("purpose", ""), values.get("body", ""),
                                         values.get("contact", ""), values.get("version"),
                                         english={k: values.get(f"{k}_en", "") for k in ("purpose", "body", "contact")})
            db.session.commit()
            flash(f"個人情報の取扱いを改定しました(版 {new.version})。これ以降の申込はこの版への同意として記録されます。",
                  "success")
            return redirect(url_for("staff.privacy_notice"), code=303)
        except ValidationFailed as exc:
            db.session.rollback()
            errors = exc.fields
    return render_template("staff/privacy.html", notice=notice, values=values, errors=errors,
                           retention_days=current_app.config["RETENTION_DAYS"]), 422 if errors else 200
