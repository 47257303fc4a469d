"""API resources. Thin: parse, authorise, call one service, serialise."""

from __future__ import annotations

from sqlalchemy import select

from .. import idempotency
from ..extensions import csrf, db
from ..models import Event, Registration
from ..services import events as event_service
from ..services import lottery as lottery_service
from ..services import mypage as mypage_service
from ..services import payments as payment_service
from ..services import registration as registration_service
from ..services.capacity import availability, counts_for
from ..services.errors import DomainError, NotFound
from ..urls import external_url
from .auth import authenticated_user, require_role
from .errors import ErrorSchema
from .parser import ApiBlueprint as Blueprint
from .schemas import (
    CancelQuerySchema,
    DrawResultSchema,
    EventCreateSchema,
    EventListQuerySchema,
    EventListSchema,
    EventRefSchema,
    EventSchema,
    EventWriteSchema,
    RegistrationCreateSchema,
    RegistrationEnvelopeSchema,
    StaffRegistrationListSchema,
)

blp = Blueprint("api", __name__, url_prefix="/api/v1", description="Events and registrations")
csrf.exempt(blp)  # bearer tokens or secret manage tokens, never cookies alone
STAFF_SECURITY = [{"bearerAuth": []}]
EVENT_REF_FIELDS = tuple(EventRefSchema._declared_fields)


def documents_errors(*statuses: int):
    """Declare the error responses an endpoint can give, all in the one error format."""

    def decorator(view):
        for status in statuses:
            view = blp.alt_response(status, schema=ErrorSchema, description="Error")(view)
        return view

    return decorator


def event_payload(event: Event, counts=None) -> dict:
    counts = counts or counts_for(event.id)
    avail = availability(event, counts)
    payload = {f: getattr(event, f) for f in EventSchema().fields if hasattr(event, f)}
    payload.update(
        confirmed_count=counts.confirmed, waitlist_count=counts.waitlisted, applied_count=counts.applied,
        seats_left=avail.seats_left,
        availability=avail.state, url=external_url("public.event_detail", slug=event.slug),
        days=[{"starts_at": d.starts_at, "ends_at": d.ends_at, "title": d.title,
               "items": [{"starts_at": i.starts_at, "ends_at": i.ends_at, "title": i.title, "place": i.place}
                         for i in d.items]} for d in event.days],
        questions=[{"key": q.key, "kind": q.kind, "label": q.label, "help_text": q.help_text,
                    "required": q.required, "important": q.important, "choices": q.choices} for q in event.active_questions],
    )
    return payload


def registration_payload(registration: Registration, *, staff: bool = False,
                         waitlist_position: int | None | bool = False, payment_status: str | None = None) -> dict:
    """The API view of a registration; `waitlist_position` when the caller already knows it (sign-up)."""
    if waitlist_position is False:
        waitlist_position = registration_service.waitlist_position(registration)
    payload = {
        "id": registration.id,
        "status": registration.status,
        "waitlist_position": waitlist_position,
        "manage_token": registration.manage_token,
        "manage_url": external_url("public.manage", token=registration.manage_token),
        "ticket_code": registration.ticket_code if registration.status == "confirmed" else None,
        "created_at": registration.created_at,
        "cancelled_at": registration.cancelled_at,
        # Plain values: the sign-up builds its answer before the commit, which would expire the event.
        "event": {name: getattr(registration.event, name) for name in EVENT_REF_FIELDS},
        "attendee": registration.attendee,
        "answers": registration_service.answers_by_key(registration),
        "lead_registration_id": registration.lead_registration_id,
        "companions": _companions_payload(registration, waitlist_position),
        "locale": registration.locale,
    }
    if staff:
        payload["person"] = registration.person
        payload["source"] = registration.source
        payload["payment_status"] = payment_status or payment_service.status_of(registration)
    return payload


def _companions_payload(registration: Registration, lead_position: int | None | bool) -> list[dict]:
    """The lead's companions; their places follow the lead's when the sign-up just told it."""
    if registration.lead_registration_id is not None:
        return []
    result = []
    for n, companion in enumerate(registration.companions, start=1):
        if lead_position is False or companion.status != "waitlisted" or registration.status != "waitlisted":
            position = registration_service.waitlist_position(companion)
        else:
            position = lead_position + n  # the group was inserted one after another under the lock
        result.append({
            "id": companion.id, "status": companion.status, "waitlist_position": position,
            "attendee": companion.attendee, "manage_token": companion.manage_token,
            "manage_url": external_url("public.manage", token=companion.manage_token),
            "ticket_code": companion.ticket_code if companion.status == "confirmed" else None,
            "answers": registration_service.answers_by_key(companion),
        })
    return result


def _published_event(event_id: int) -> Event:
    event = db.session.get(Event, event_id)
    if event is None or event.status == "draft":
        raise NotFound("event_not_found", "イベントが見つかりません。")
    return event


@blp.route("/events", methods=["GET"])
@blp.arguments(EventListQuerySchema(), location="query")
@blp.response(200, EventListSchema)
def list_events(query):
    """Published events, soonest first (a cancelled one is still readable by id)."""
    listing = event_service.published_page(query.get("kind"), query["page"])
    return {"events": [event_payload(e, counts) for e, counts in listing.rows], "page": listing.page,
            "pages": listing.pages, "per_page": listing.per_page, "total": listing.total}


@blp.route("/events", methods=["POST"])
@blp.doc(security=STAFF_SECURITY)
@require_role("staff")  # before parsing: without a token, the answer is 401 whatever the body
@blp.arguments(EventCreateSchema())
@blp.response(201, EventSchema)
@documents_errors(400, 401, 403, 422)
def create_event(data):
    """Create an event (staff)."""
    event = event_service.create_event(data)
    db.session.commit()
    return event_payload(event)


@blp.route("/events/<int:event_id>", methods=["GET"])
@blp.response(200, EventSchema)
@documents_errors(404)
def get_event(event_id):
    return event_payload(_published_event(event_id))


@blp.route("/events/<int:event_id>", methods=["PATCH"])
@blp.doc(security=STAFF_SECURITY)
@require_role("staff")  # before parsing: without a token, the answer is 401 whatever the body
@blp.arguments(EventWriteSchema())
@blp.response(200, EventSchema)
@documents_errors(400, 401, 403, 404, 422)
def patch_event(data, event_id):
    """Change an event (staff). Raising the capacity promotes waitlisted people at once."""
    if db.session.get(Event, event_id) is None:
        raise NotFound("event_not_found", "イベントが見つかりません。")
    event = event_service.update_event(event_id, data)
    db.session.commit()
    return event_payload(event)


@blp.route("/events/<int:event_id>/draw", methods=["POST"])
@blp.doc(security=STAFF_SECURITY)
@require_role("staff")
@blp.response(200, DrawResultSchema)
@documents_errors(401, 403, 404, 409)
def draw_lottery(event_id):
    """Draw a lottery event now (staff): winners confirmed, the rest waitlisted in drawn order or
    not selected, all mailed. 409 `already_drawn` for a second draw, `not_lottery` for a first-come event."""
    result = lottery_service.draw(event_id, user=authenticated_user())
    db.session.commit()
    return result.as_dict()


@blp.route("/events/<int:event_id>/registrations", methods=["POST"])
@blp.doc(parameters=[idempotency.OPENAPI_HEADER])
@blp.arguments(RegistrationCreateSchema())
@blp.response(201, RegistrationEnvelopeSchema)
@documents_errors(400, 404, 409, 422)
@idempotency.api_view(RegistrationEnvelopeSchema, 201)  # Idempotency-Key: a retry gets the first answer
def create_registration(data, event_id):
    """Sign up, with up to the event's `max_companions` companions: the whole group is confirmed while
    seats are left for all of it, otherwise the whole group waits (strict FIFO, places one after another).
    A matching session also takes `preferences`, the ranked organisation ids.

    `name`, `furigana`, `phone`, `prefecture`, `iwate_relation`, `occupation` and `skills` describe this
    registration's attendee (returned as `attendee`). An address that already has registrations is
    not proof of owning it: the sign-up neither changes nor reveals the address's other registrations."""
    answers = data.pop("answers", {}) or {}
    consent = data.pop("consent_privacy", False) is True
    opt_in = data.pop("announcements_opt_in", False) is True
    companions = data.pop("companions", []) or []
    preferences = data.pop("preferences", None)
    locale = data.pop("locale", "ja")  # the mails' language; not the request's Accept-Language
    # sign_up() answers 404 for an unknown or draft event itself.
    try:
        result = registration_service.sign_up(event_id, registration_service.SignupRequest(
            person=data, answers=answers, consent=consent, companions=companions, preferences=preferences,
            announcements_opt_in=opt_in, source="api", locale=locale))
    except DomainError as exc:
        if exc.code != "duplicate":
            raise
        # As on the form: the 409 says only "look in your mailbox", and the mail goes out after the
        # refused sign-up has been rolled back.
        db.session.rollback()
        mypage_service.resend_manage_link(event_id, str(data.get("email") or ""))
        db.session.commit()
        raise
    # Built before the commit, which expires every loaded object: saves reloading the registration,
    # its event and answers (a third of a sign-up's queries).
    payload = registration_payload(result.registration, waitlist_position=result.waitlist_position)
    idempotency.remember({"registration": payload})  # stored with the registration, in its transaction
    db.session.commit()
    return {"registration": payload}


@blp.route("/events/<int:event_id>/registrations", methods=["GET"])
@blp.doc(security=STAFF_SECURITY)
@require_role("staff")  # before parsing: without a token, the answer is 401 whatever the body
@blp.response(200, StaffRegistrationListSchema)
@documents_errors(401, 403, 404)
def list_registrations(event_id):
    """All registrations of an event (staff), in sign-up order."""
    event = db.session.get(Event, event_id)
    if event is None:
        raise NotFound("event_not_found", "イベントが見つかりません。")
    registrations = db.session.execute(
        select(Registration).where(Registration.event_id == event_id).order_by(Registration.id)
    ).scalars().all()
    counts = counts_for(event_id)
    statuses = payment_service.statuses_for([r.id for r in registrations])  # one query for the list
    return {"registrations": [registration_payload(r, staff=True, payment_status=statuses[r.id])
                              for r in registrations],
            "confirmed_count": counts.confirmed, "waitlist_count": counts.waitlisted,
            "applied_count": counts.applied}


@blp.route("/registrations/<string:manage_token>", methods=["GET"])
@blp.response(200, RegistrationEnvelopeSchema)
@documents_errors(404)
def get_registration(manage_token):
    """A registration, by its secret manage token."""
    return {"registration": registration_payload(registration_service.get_by_manage_token(manage_token))}


@blp.route("/registrations/<string:manage_token>/cancel", methods=["POST"])
@blp.arguments(CancelQuerySchema(), location="query")
@blp.response(200, RegistrationEnvelopeSchema)
@documents_errors(404, 409, 422)
def cancel_registration(query, manage_token):
    """Cancel by the participant (until the cancellation deadline). `?group=true` on a lead's token
    also cancels its companions; a companion's token always cancels only that companion."""
    registration = registration_service.get_by_manage_token(manage_token)
    registration_service.cancel(registration.id, by="self", group=query.get("group", False))
    db.session.commit()
    return {"registration": registration_payload(registration)}
