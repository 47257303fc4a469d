"""Calendar files and feeds: one event, one person's invite, a person's feed, public feeds."""

from __future__ import annotations

from flask import Response, abort, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..models import Event, EventDay
from ..services import calendar
from ..services import registration as registration_service
from ..services.errors import NotFound
from . import bp


def _ics(body: bytes, filename: str, *, private: bool = False, max_age: int = 300) -> Response:
    response = Response(body, content_type=calendar.ICS_MIMETYPE)
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    if private:  # the URL is the key: keep it out of shared caches and referrers
        response.headers["Cache-Control"] = "private, no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Robots-Tag"] = "noindex"
    else:
        response.headers["Cache-Control"] = f"public, max-age={max_age}"
        # Subscribed calendars poll; an unchanged feed then costs a 304 instead of the whole file.
        response.add_etag()
        response.make_conditional(request)
    return response


@bp.get("/events/<slug>.ics")
def event_ics(slug: str):
    event = db.session.execute(
        select(Event).where(Event.slug == slug).options(selectinload(Event.days).selectinload(EventDay.items))
    ).scalar_one_or_none()
    if event is None or event.status == "draft":
        abort(404)
    return _ics(calendar.event_ics(event), f"{event.slug}.ics")


@bp.get("/r/<token>/invite.ics")
def registration_ics(token: str):
    try:
        registration = registration_service.get_by_manage_token(token)
        body = calendar.registration_ics(registration)  # NotFound while waitlisted
    except NotFound:
        abort(404)
    return _ics(body, "invite.ics", private=True)


@bp.get("/feeds/person/<token>.ics")
def person_feed(token: str):
    try:
        body = calendar.person_feed_ics(token)
    except NotFound:
        abort(404)
    return _ics(body, "my-events.ics", private=True)


@bp.get("/feeds/events.ics")
def events_feed():
    return _ics(calendar.public_feed_ics(), "events.ics")


@bp.get("/feeds/<kind>.ics")
def kind_feed(kind: str):
    try:
        body = calendar.public_feed_ics(kind)
    except NotFound:
        abort(404)
    return _ics(body, f"{kind}.ics")
