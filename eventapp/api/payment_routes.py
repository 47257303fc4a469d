"""/api/v1 fees (参加費): record a payment, waiver or refund; list an event's payments with totals.

Door staff (role `checkin`) record payments, from the check-in screen (session + CSRF header) or
with a bearer token; waivers and refunds need role `staff`. Unlike check-ins there is no check-in
window: bank transfers are recorded weeks before the event.
"""

from __future__ import annotations

import functools

from flask import g, request
from flask_wtf.csrf import ValidationError, validate_csrf
from marshmallow import Schema, fields, validate

from ..extensions import csrf, db
from ..models import PAYMENT_KINDS, PAYMENT_METHODS, PAYMENT_STATUSES, Event, Payment
from ..services import payments as service
from ..services.errors import DomainError, NotFound
from .auth import require_role
from .errors import ErrorSchema
from .parser import ID_RANGE
from .parser import ApiBlueprint as Blueprint
from .schemas import JSTDateTime, StrictSchema

blp = Blueprint("payments_api", __name__, url_prefix="/api/v1", description="Fees (参加費)")
csrf.exempt(blp)
SECURITY = [{"bearerAuth": []}]


def door_auth(view):
    """Role `checkin` or higher; a session-authenticated write also needs the CSRF header."""

    @require_role("checkin", allow_session=True)
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if request.method != "GET" and not request.headers.get("Authorization"):
            try:
                validate_csrf(request.headers.get("X-CSRFToken", ""))
            except ValidationError as exc:
                raise DomainError("csrf_failed", "ページを再読み込みしてからもう一度お試しください(CSRF)。",
                                  status=400) from exc
        return view(*args, **kwargs)

    return wrapped


def _errors(*statuses: int):
    def decorator(view):
        for status in statuses:
            view = blp.alt_response(status, schema=ErrorSchema, description="Error")(view)
        return view

    return decorator


def _user():
    user = g.api_user
    return user._get_current_object() if hasattr(user, "_get_current_object") else user


class PaymentCreateSchema(StrictSchema):
    registration_id = fields.Integer(required=True, strict=True, validate=ID_RANGE)
    method = fields.String(load_default="cash", validate=validate.OneOf(PAYMENT_METHODS),
                           metadata={"description": "cash (当日現金) | bank_transfer (銀行振込) | other"})
    amount_yen = fields.Integer(strict=True, validate=validate.Range(0, service.MAX_AMOUNT), metadata={
        "description": "default: the event's fee (a refund: the amount paid)"})
    nonce = fields.String(required=True, validate=validate.Length(min=8, max=64), metadata={
        "description": "client-chosen idempotency key: the same nonce gives the same payment, no second row"})
    kind = fields.String(load_default="payment", validate=validate.OneOf(PAYMENT_KINDS), metadata={
        "description": "payment (default) | waiver (免除, staff) | refund (返金, staff)"})
    note = fields.String(load_default="", validate=validate.Length(max=200))
    paid_at = JSTDateTime(metadata={"description": "when it was paid (a transfer's value date); default: now"})


class PaymentSchema(Schema):
    id = fields.Integer()
    registration_id = fields.Integer()
    kind = fields.String()
    method = fields.String()
    amount_yen = fields.Integer()
    paid_at = JSTDateTime()
    recorded_at = JSTDateTime()
    recorded_by = fields.String()
    nonce = fields.String()
    note = fields.String()
    receipt_number = fields.String(allow_none=True)
    receipt_name = fields.String()
    receipt_reissued_count = fields.Integer()
    payment_status = fields.String(validate=validate.OneOf(PAYMENT_STATUSES),
                                   metadata={"description": "the registration's status after this record"})


class PaymentEnvelopeSchema(Schema):
    payment = fields.Nested(PaymentSchema, required=True)


class PaymentTotalsSchema(Schema):
    paid_yen = fields.Integer()
    refunded_yen = fields.Integer()
    net_yen = fields.Integer()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "confirmed registrations by payment status"})


class PaymentListSchema(Schema):
    payments = fields.List(fields.Nested(PaymentSchema))
    totals = fields.Nested(PaymentTotalsSchema)


def payment_payload(payment: Payment, status: str | None = None) -> dict:
    return {"id": payment.id, "registration_id": payment.registration_id, "kind": payment.kind,
            "method": payment.method, "amount_yen": payment.amount_yen, "paid_at": payment.paid_at,
            "recorded_at": payment.recorded_at, "recorded_by": payment.recorded_by_name, "nonce": payment.nonce,
            "note": payment.note, "receipt_number": payment.receipt_number, "receipt_name": payment.receipt_name,
            "receipt_reissued_count": payment.receipt_reissued_count,
            "payment_status": status or service.statuses_for([payment.registration_id])[payment.registration_id]}


@blp.route("/events/<int:event_id>/payments", methods=["POST"])
@blp.doc(security=SECURITY)
@door_auth  # before parsing: without credentials the answer is 401 whatever the body
@blp.arguments(PaymentCreateSchema())
@blp.response(201, PaymentEnvelopeSchema)
@_errors(400, 401, 403, 404, 409, 422)
def create_payment(data, event_id):
    """Record a payment (idempotent per nonce: a retry answers 200 with the same payment)."""
    if data["kind"] != "payment" and not _user().has_role("staff"):
        raise DomainError("forbidden", "免除・返金は事務局のみ記録できます。", status=403)
    recorded = service.record(event_id, data["registration_id"], kind=data["kind"], method=data["method"],
                              amount_yen=data.get("amount_yen"), nonce=data["nonce"], user=_user(),
                              note=data["note"], paid_at=data.get("paid_at"))
    payload = {"payment": payment_payload(recorded.payment)}
    db.session.commit()
    return payload, (201 if recorded.created else 200)


@blp.route("/events/<int:event_id>/payments", methods=["GET"])
@blp.doc(security=SECURITY)
@require_role("staff")
@blp.response(200, PaymentListSchema)
@_errors(401, 403, 404)
def list_payments(event_id):
    """Every payment, waiver and refund of an event, oldest first, with totals (staff)."""
    event = db.session.get(Event, event_id)
    if event is None:
        raise NotFound("event_not_found", "イベントが見つかりません。")
    rows = service.event_payments(event_id)
    statuses = service.statuses_for(sorted({p.registration_id for p in rows}))
    sums = service.totals(event)
    return {"payments": [payment_payload(p, statuses[p.registration_id]) for p in rows],
            "totals": {"paid_yen": sums.paid_yen, "refunded_yen": sums.refunded_yen, "net_yen": sums.net_yen,
                       "counts": sums.counts}}
