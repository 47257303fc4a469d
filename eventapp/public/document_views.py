"""Printable PDFs for participants: the event programme (しおり) and a paper ticket (受付票)."""

from __future__ import annotations

from flask import Response, abort
from flask_login import current_user
from sqlalchemy import select

from ..extensions import db
from ..models import Event
from ..services import documents
from ..services import registration as registration_service
from . import bp


def pdf_response(pdf: bytes, filename: str, *, private: bool = False) -> Response:
    response = Response(pdf, mimetype="application/pdf")
    # inline: opens in the browser's viewer, from where it prints or saves.
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    if private:  # the manage URL is the key to a ticket
        response.headers["Cache-Control"] = "private, no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Robots-Tag"] = "noindex"
    else:
        response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/events/<slug>/programme.pdf")
def programme_pdf(slug: str):
    event = db.session.execute(select(Event).where(Event.slug == slug)).scalar_one_or_none()
    # Staff may print a draft's programme to check it before publishing.
    is_staff = current_user.is_authenticated and current_user.has_role("staff")
    if event is None or (event.status == "draft" and not is_staff):
        abort(404)
    response = pdf_response(documents.programme_pdf(event).pdf, f"{event.slug}-programme.pdf")
    if event.status == "draft":
        response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/r/<token>/ticket.pdf")
def ticket_pdf(token: str):
    registration = registration_service.get_by_manage_token(token)
    if registration.status != "confirmed":
        abort(404)
    return pdf_response(documents.ticket_pdf(registration).pdf, f"ticket-{registration.event.slug}.pdf",
                        private=True)
