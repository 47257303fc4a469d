"""The outbox page (queued / sent / failed mail, with the reason), resending a failed mail and
clearing an address's undeliverable mark."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from ..auth.decorators import role_required
from ..extensions import db
from ..params import query_int
from ..services import outbox as service
from ..services.errors import DomainError
from . import bp


def _back(default: str):
    target = request.form.get("back")
    if target and target.startswith("/staff/") and not target.startswith("//"):
        return redirect(target, code=303)
    return redirect(default, code=303)


@bp.get("/outbox")
@role_required("staff")
def outbox_list():
    status = request.args.get("status", "all")
    if status not in service.STATUS_FILTERS:
        status = "all"
    result = service.list_messages(status=status, page=query_int("page", 1))
    return render_template("staff/outbox.html", result=result, status=status,
                           status_labels=service.STATUS_LABELS, body_hidden=service.body_hidden)


@bp.get("/outbox/<int:message_id>")
@role_required("staff")
def outbox_detail(message_id: int):
    try:
        message = service.get_message(message_id)
    except DomainError:
        abort(404)
    address = service.current_address(message)
    marks = service.undeliverable_marks([message.to_addr, address])
    return render_template("staff/outbox_message.html", message=message, current_address=address, marks=marks,
                           status_labels=service.STATUS_LABELS, body_hidden=service.body_hidden(message))


@bp.post("/outbox/<int:message_id>/resend")
@role_required("staff")
def outbox_resend(message_id: int):
    try:
        message = service.resend(message_id, clear_mark=request.form.get("clear_mark") == "yes")
        db.session.commit()
        flash(f"{message.to_addr} 宛に再送します(送信待ちに戻しました)。", "success")
    except DomainError as exc:
        db.session.rollback()
        if exc.code == "message_not_found":
            abort(404)
        flash(exc.message, "error")
    return _back(url_for("staff.outbox_detail", message_id=message_id))


@bp.post("/undeliverable/clear")
@role_required("staff")
def undeliverable_clear():
    email = request.form.get("email", "")
    if service.clear_undeliverable(email):
        db.session.commit()
        flash(f"{email} の配信不可の記録を解除しました。次のメールから送信します。", "success")
    else:
        flash("このアドレスには配信不可の記録がありません。", "info")
    return _back(url_for("staff.outbox_list", status="failed"))
