"""Fees (参加費) in the back-office: record, waive and refund on the registration page, the 宛名 and
reissue of a receipt, the event's payment list with totals and its CSV/XLSX export."""

from __future__ import annotations

import secrets

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..auth.decorators import role_required
from ..extensions import db
from ..models import Event, Payment, Registration
from ..params import parse_int
from ..public.document_views import pdf_response
from ..services import documents
from ..services import payments as service
from ..services.errors import DomainError, ValidationFailed
from . import bp
from .events import load_event


def _registration(registration_id: int) -> Registration:
    return db.session.get(Registration, registration_id) or abort(404)


def _payment(registration: Registration, payment_id: int) -> Payment:
    payment = db.session.get(Payment, payment_id)
    if payment is None or payment.registration_id != registration.id:
        abort(404)
    return payment


def _to_registration(registration_id: int):
    return redirect(url_for("staff.registration_detail", registration_id=registration_id) + "#fees", code=303)


@bp.app_template_global()
def fee_panel(registration: Registration) -> dict:
    """What the registration page's 参加費 card shows (a template global: the page's view stays as it is)."""
    rows = list(db.session.execute(db.select(Payment).where(Payment.registration_id == registration.id)
                                   .order_by(Payment.id)).scalars())
    return {"status": service.status_of(registration), "rows": rows, "nonce": secrets.token_urlsafe(16),
            "receipt": service.receipt_payment(registration), "methods": service.METHOD_LABELS,
            "labels": service.STATUS_LABELS, "kinds": service.KIND_LABELS}


@bp.app_template_global()
def payment_statuses(event: Event) -> dict[int, str]:
    return service.statuses_for_event(event) if event.fee_yen > 0 else {}


@bp.app_template_global()
def fee_counts(event: Event) -> dict[str, int]:
    return service.status_counts(event)


@bp.post("/registrations/<int:registration_id>/payments")
@role_required("staff")
def registration_payment(registration_id: int):
    """Record a payment, waiver or refund (the form's nonce: a double submit records one row)."""
    registration = _registration(registration_id)
    form = request.form
    typed = form.get("amount_yen", "").strip()
    amount = parse_int(typed, None, minimum=0) if typed else None
    try:
        if typed and amount is None:  # not a whole number of yen, or beyond what the column holds
            raise ValidationFailed({"amount_yen": "金額は0以上の整数(円)で入力してください。"})
        service.record(registration.event_id, registration.id, kind=form.get("kind", "payment"),
                       method=form.get("method", "cash"), amount_yen=amount,
                       nonce=form.get("nonce", ""), note=form.get("note", ""),
                       user=current_user._get_current_object())
        db.session.commit()
        flash("参加費の記録を保存しました(監査ログに記録しました)。", "success")
    except DomainError as exc:
        db.session.rollback()
        flash(" ".join(exc.fields.values()) or exc.message, "error")
    return _to_registration(registration_id)


@bp.post("/registrations/<int:registration_id>/payments/<int:payment_id>/receipt-name")
@role_required("staff")
def receipt_name(registration_id: int, payment_id: int):
    registration = _registration(registration_id)
    try:
        service.set_receipt_name(_payment(registration, payment_id), request.form.get("receipt_name", ""),
                                 user=current_user._get_current_object())
        db.session.commit()
        flash("領収書の宛名を保存しました。", "success")
    except DomainError as exc:
        db.session.rollback()
        flash(" ".join(exc.fields.values()) or exc.message, "error")
    return _to_registration(registration_id)


@bp.post("/registrations/<int:registration_id>/payments/<int:payment_id>/reissue")
@role_required("staff")
def receipt_reissue(registration_id: int, payment_id: int):
    registration = _registration(registration_id)
    try:
        service.reissue(_payment(registration, payment_id), user=current_user._get_current_object())
        db.session.commit()
        flash("領収書を再発行にしました(PDFに「再発行」と入ります)。", "success")
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return _to_registration(registration_id)


@bp.get("/registrations/<int:registration_id>/payments/<int:payment_id>/receipt.pdf")
@role_required("staff")
def receipt_download(registration_id: int, payment_id: int):
    payment = _payment(_registration(registration_id), payment_id)
    if payment.kind != "payment":
        abort(404)
    return pdf_response(documents.receipt_pdf(payment).pdf, f"receipt-{payment.receipt_number}.pdf", private=True)


@bp.get("/events/<int:event_id>/payments")
@role_required("staff")
def event_payments(event_id: int):
    event = load_event(event_id)
    return render_template("staff/payments.html", event=event, rows=service.event_payments(event.id),
                           totals=service.totals(event), methods=service.METHOD_LABELS,
                           kinds=service.KIND_LABELS, labels=service.STATUS_LABELS)


@bp.post("/events/<int:event_id>/payments/export")
@role_required("staff")
def event_payments_export(event_id: int):
    event = load_event(event_id)
    try:
        content, mimetype, filename = service.export(event, request.form.get("format", "csv"))
    except DomainError as exc:
        db.session.rollback()
        flash(" ".join(exc.fields.values()) or exc.message, "error")
        return redirect(url_for("staff.event_payments", event_id=event.id), code=303)
    db.session.commit()
    response = Response(content, content_type=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"  # personal data
    return response
