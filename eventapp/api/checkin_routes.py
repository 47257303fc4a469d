"""/api/v1 check-in resources: scan, undo, walk-in, live counters, roster snapshot, offline batch.

Bearer token or a logged-in session (the check-in screen). The API blueprint is CSRF-exempt
because bearer tokens are not sent by browsers on their own; a session cookie is, so requests
authenticated by the session must carry the CSRF token in the X-CSRFToken header.
"""

from __future__ import annotations

import functools
import time

from flask import g, request
from flask_wtf.csrf import ValidationError, validate_csrf
from marshmallow import Schema, fields, validate

from ..extensions import csrf, db
from ..services import checkin as service
from ..services.errors import DomainError, ValidationFailed
from .auth import require_role
from .errors import ErrorSchema
from .parser import ID_RANGE, MAX_ID
from .parser import ApiBlueprint as Blueprint
from .schemas import JSTDateTime, StrictSchema

blp = Blueprint("checkin_api", __name__, url_prefix="/api/v1", description="Onsite check-in")
csrf.exempt(blp)
SECURITY = [{"bearerAuth": []}]
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


@blp.before_request
def _start_timer() -> None:
    g.checkin_started = time.perf_counter()
    g.checkin_cpu = time.process_time()


@blp.after_request
def _server_timing(response):
    # Time spent in the app (queueing excluded): lets staff and benchmarks see slow scans at the door.
    started = g.get("checkin_started")
    if started is not None:
        # cpu: this worker's CPU time for the request (one request at a time per sync worker),
        # which stays meaningful when other processes compete for the cores.
        cpu = (time.process_time() - g.checkin_cpu) * 1000
        response.headers["Server-Timing"] = (f"app;dur={(time.perf_counter() - started) * 1000:.1f}, "
                                             f"cpu;dur={cpu:.1f}")
    return response


def checkin_auth(view):
    """Role `checkin` or higher; session-authenticated writes also need the CSRF header; and the
    event must be open for check-in (published, not cancelled, inside its window), exactly as on
    the check-in screens. Every route of this blueprint names an event, so none can skip it."""

    @require_role("checkin", allow_session=True)
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if request.method in UNSAFE and not request.headers.get("Authorization"):
            try:
                validate_csrf(request.headers.get("X-CSRFToken", ""))
            except ValidationError as exc:
                raise DomainError("csrf_failed", "ページを再読み込みしてからもう一度お試しください(CSRF)。",
                                  status=400) from exc
        service.require_checkin_open(kwargs["event_id"])
        return view(*args, **kwargs)

    return wrapped


def _user():
    """The authenticated user as a model instance (a session login gives Flask-Login's proxy)."""
    user = g.api_user
    return user._get_current_object() if hasattr(user, "_get_current_object") else user


def errors(*statuses: int):
    def decorator(view):
        for status in statuses:
            view = blp.alt_response(status, schema=ErrorSchema, description="Error")(view)
        return view

    return decorator


class CheckInCreateSchema(StrictSchema):
    code = fields.String(validate=validate.Length(max=200), metadata={"description": "the QR ticket code"})
    registration_id = fields.Integer(validate=ID_RANGE,
                                     metadata={"description": "instead of `code`: manual check-in from the roster"})
    nonce = fields.String(required=True, validate=validate.Length(min=8, max=64),
                          metadata={"description": "client-chosen idempotency key (e.g. a UUID)"})
    day = fields.Integer(validate=ID_RANGE, metadata={"description": "event day id; default: today's day"})
    scanned_at = JSTDateTime(metadata={"description": "when the ticket was scanned (offline devices)"})
    device_id = fields.String(validate=validate.Length(max=64))


class NoteSchema(Schema):
    label = fields.String()
    value = fields.String(metadata={"description": "as people read it (はい/いいえ for yes/no questions)"})
    important = fields.Boolean(metadata={"description": "重要: dietary/allergy or flagged by staff"})


class CheckInRegistrationSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    furigana = fields.String()
    status = fields.String()
    source = fields.String()
    notes = fields.List(fields.Nested(NoteSchema))
    important_answers = fields.List(fields.Nested(NoteSchema))
    fee_yen = fields.Integer(metadata={"description": "the event's fee (0: free)"})
    payment_status = fields.String(metadata={"description": "none | unpaid | paid | waived | refunded"})


class CheckInResultSchema(Schema):
    result = fields.String(metadata={"description": "checked_in | already_checked_in | duplicate"})
    message = fields.String()
    checkin_id = fields.Integer()
    day = fields.Integer()
    checked_in_at = JSTDateTime()
    by = fields.String()
    over_capacity = fields.Boolean()
    registration = fields.Nested(CheckInRegistrationSchema)


class UndoResultSchema(Schema):
    checkin_id = fields.Integer()
    undone_at = JSTDateTime()
    registration = fields.Nested(CheckInRegistrationSchema)


class UndoSchema(StrictSchema):
    cancel_walkin = fields.Boolean(load_default=False, metadata={
        "description": "当日参加の受付なら、その当日参加の申込もキャンセルする"})


class StatsQuerySchema(Schema):
    day = fields.Integer(validate=ID_RANGE)
    after = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_ID, error="範囲外の数値です。"))


class CheckInRowSchema(Schema):
    id = fields.Integer()
    registration_id = fields.Integer()
    day = fields.Integer()
    checked_in_at = JSTDateTime()
    by = fields.String()
    source = fields.String()
    active = fields.Boolean()


class StatsSchema(Schema):
    day = fields.Integer()
    checked_in = fields.Integer()
    confirmed = fields.Integer()
    capacity = fields.Integer()
    duplicates = fields.Integer()
    recent = fields.List(fields.Nested(CheckInRowSchema))


class RosterEntrySchema(CheckInRegistrationSchema):
    code_hash = fields.String(metadata={"description": "SHA-256 (hex) of the upper-case ticket code"})
    phone_digits = fields.String()
    checkins = fields.List(fields.Nested(CheckInRowSchema))


class RosterDaySchema(Schema):
    id = fields.Integer()
    starts_at = JSTDateTime()
    ends_at = JSTDateTime()
    title = fields.String()


class RosterSchema(Schema):
    event = fields.Dict()
    days = fields.List(fields.Nested(RosterDaySchema))
    ticket_key = fields.String(metadata={"description": "hex HMAC key to verify this event's codes offline"})
    generated_at = JSTDateTime()
    registrations = fields.List(fields.Nested(RosterEntrySchema))


class BatchScanSchema(StrictSchema):
    code = fields.String(validate=validate.Length(max=200))
    registration_id = fields.Integer(validate=ID_RANGE)
    nonce = fields.String(required=True, validate=validate.Length(min=8, max=64))
    day = fields.Integer(validate=ID_RANGE)
    scanned_at = JSTDateTime(required=True)


class BatchSchema(StrictSchema):
    device_id = fields.String(validate=validate.Length(max=64))
    scans = fields.List(fields.Nested(BatchScanSchema), required=True,
                        validate=validate.Length(max=service.MAX_BATCH))


class BatchErrorSchema(Schema):
    code = fields.String()
    message = fields.String()
    fields = fields.Dict()


class BatchResultSchema(Schema):
    nonce = fields.String()
    result = fields.String(metadata={"description": "checked_in | duplicate | error"})
    checkin_id = fields.Integer()
    registration_id = fields.Integer()
    day = fields.Integer()
    checked_in_at = JSTDateTime()
    by = fields.String()
    duplicate_checkin_id = fields.Integer()
    error = fields.Nested(BatchErrorSchema)


class BatchResponseSchema(Schema):
    results = fields.List(fields.Nested(BatchResultSchema))


class WalkInSchema(StrictSchema):
    # The attendee columns' lengths, as on the sign-up (tests/security/test_lengths.py).
    name = fields.String(required=True, validate=validate.Length(max=100))
    furigana = fields.String(required=True, validate=validate.Length(max=100))
    email = fields.String(validate=validate.Length(max=254),
                          metadata={"description": "任意: 空なら確認メールは送られません。"})
    phone = fields.String(validate=validate.Length(max=40))
    answers = fields.Dict(keys=fields.String(validate=validate.Length(max=64)), values=fields.Raw(allow_none=True))
    nonce = fields.String(required=True, validate=validate.Length(min=8, max=64))
    day = fields.Integer(validate=ID_RANGE)
    device_id = fields.String(validate=validate.Length(max=64))
    send_mail = fields.Boolean(load_default=False, metadata={
        "description": "確認メールを送る(既定: 送らない。メールアドレスがあるときだけ)"})


def result_payload(res: service.CheckInResult, summary: dict | None = None) -> dict:
    return {"result": res.result, "message": service.result_message(res), "checkin_id": res.checkin.id,
            "day": res.checkin.event_day_id, "checked_in_at": res.checkin.checked_in_at, "by": res.checkin.by_name,
            "over_capacity": res.over_capacity,
            "registration": summary if summary is not None else service.registration_summary(res.registration)}


@blp.route("/events/<int:event_id>/checkins", methods=["POST"])
@blp.doc(security=SECURITY)
@checkin_auth  # before parsing: without credentials the answer is 401 whatever the body
@blp.arguments(CheckInCreateSchema())
@blp.response(200, CheckInResultSchema)
@errors(400, 401, 403, 404, 409, 422)
def create_checkin(data, event_id):
    """Check a ticket holder in (idempotent per nonce; a second scan answers `already_checked_in`)."""
    if not data.get("code") and data.get("registration_id") is None:
        raise ValidationFailed({"code": "code か registration_id を指定してください。"})
    by_code = bool(data.get("code"))
    plan, registration, day = service.prepare_check_in(
        event_id, data.get("code"), data["nonce"], day_id=data.get("day"), scanned_at=data.get("scanned_at"),
        registration_id=None if by_code else data.get("registration_id"))
    summary = service.registration_summary(registration)
    # One transaction. On SQLite it has held the write lock since BEGIN IMMEDIATE (a POST declares
    # its write intent), so what was read above is current and the insert needs no re-check; the
    # lock is held for a few milliseconds longer than a separate read transaction would, which
    # costs less than a second transaction and the re-check (two workers, one lock).
    res = service.record_check_in(plan, registration, day, user=_user(), device_id=data.get("device_id", ""),
                                  source="scan" if by_code else "manual")
    payload = result_payload(res, summary)  # before the commit expires the objects it reads
    db.session.commit()
    return payload


@blp.route("/events/<int:event_id>/checkins/<int:checkin_id>", methods=["DELETE"])
@blp.doc(security=SECURITY)
@checkin_auth  # before parsing: without credentials the answer is 401 whatever the body
@blp.arguments(UndoSchema(), required=False)
@blp.response(200, UndoResultSchema)
@errors(400, 401, 403, 404, 409, 422)
def undo_checkin(data, event_id, checkin_id):
    """Undo a check-in (kept as undone, with who and when); `cancel_walkin` also cancels a walk-in's registration."""
    row = service.undo(event_id, checkin_id, user=_user(), cancel_walkin=data.get("cancel_walkin", False))
    payload = {"checkin_id": row.id, "undone_at": row.undone_at,
               "registration": service.registration_summary(row.registration)}
    db.session.commit()
    return payload


@blp.route("/events/<int:event_id>/checkins", methods=["GET"])
@blp.doc(security=SECURITY)
@checkin_auth  # before parsing: without credentials the answer is 401 whatever the body
@blp.arguments(StatsQuerySchema(), location="query")
@blp.response(200, StatsSchema)
@errors(401, 403, 404)
def checkin_stats(query, event_id):
    """Live counters for a day, and check-ins with an id above `after` (from all devices)."""
    return service.stats(event_id, query.get("day"), after_id=query.get("after", 0))


@blp.route("/events/<int:event_id>/checkins/roster", methods=["GET"])
@blp.doc(security=SECURITY)
@checkin_auth  # before parsing: without credentials the answer is 401 whatever the body
@blp.response(200, RosterSchema)
@errors(401, 403, 404)
def checkin_roster(event_id):
    """Roster snapshot for offline check-in: code hashes, names, notes, check-ins, the ticket key."""
    return service.roster_snapshot(event_id)


@blp.route("/events/<int:event_id>/checkins/batch", methods=["POST"])
@blp.doc(security=SECURITY)
@checkin_auth  # before parsing: without credentials the answer is 401 whatever the body
@blp.arguments(BatchSchema())
@blp.response(200, BatchResponseSchema)
@errors(400, 401, 403, 404, 422)
def checkin_batch(data, event_id):
    """Upload queued offline scans; the earliest scan of a ticket wins, later ones are duplicates."""
    results = service.sync_batch(event_id, data["scans"], user=_user(), device_id=data.get("device_id", ""))
    db.session.commit()
    return {"results": results}


@blp.route("/events/<int:event_id>/walkins", methods=["POST"])
@blp.doc(security=SECURITY)
@checkin_auth  # before parsing: without credentials the answer is 401 whatever the body
@blp.arguments(WalkInSchema())
@blp.response(200, CheckInResultSchema)
@errors(400, 401, 403, 404, 409, 422)
def create_walkin(data, event_id):
    """当日参加: register and check in at once, even past capacity (`over_capacity` warns)."""
    person = {k: data[k] for k in ("name", "furigana", "email", "phone") if k in data}
    res = service.walk_in(event_id, person, data.get("answers") or {}, nonce=data["nonce"],
                          day_id=data.get("day"), user=_user(), device_id=data.get("device_id", ""),
                          send_mail=data["send_mail"])
    payload = result_payload(res)  # before the commit expires the objects it reads
    db.session.commit()
    return payload
