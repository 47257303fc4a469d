"""Printable PDFs for participants: the event programme (しおり) and a paper ticket (受付票)."""

from __future__ import annotations

from flask import Response, abort, current_app, request
from flask_limiter.util import get_remote_address
from flask_login import current_user
from limits import parse
from sqlalchemy import select

from ..extensions import db, limiter
from ..models import Event
from ..services import documents, payments, pdf_cache
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


def _count_render() -> None:
    """Only renders (cache misses) count against a client: PDF_RATE_LIMIT per IP address."""
    item = parse(current_app.config["PDF_RATE_LIMIT"])
    try:
        allowed = limiter.limiter.hit(item, "pdf-render", get_remote_address())
    except Exception:  # a storage outage lets the request through, as for the other limits
        if not current_app.config.get("RATELIMIT_SWALLOW_ERRORS"):
            raise
        current_app.logger.exception("PDF rate limit: storage failed")
        allowed = True
    if not allowed:
        abort(429)


@bp.get("/events/<slug>/programme.pdf")
def programme_pdf(slug: str):
    event = db.session.execute(select(Event).where(Event.slug == slug)).scalar_one_or_none()
    # Staff may print a draft's programme to check it before publishing.
    is_staff = current_user.is_authenticated and current_user.has_role("staff")
    if event is None or (event.status == "draft" and not is_staff):
        abort(404)
    if event.status == "draft":  # a preview for staff: rendered each time, kept by nobody
        response = pdf_response(documents.programme_pdf(event).pdf, f"{event.slug}-programme.pdf")
        response.headers["Cache-Control"] = "private, no-store"
        return response
    etag = pdf_cache.programme_etag(event)
    if request.if_none_match.contains(etag):  # the client's copy is current: no file read, no render
        response = Response(status=304)
        response.set_etag(etag)
        response.headers["Cache-Control"] = "public, max-age=300"
        return response
    cached = pdf_cache.programme(event, before_render=_count_render, etag=etag)
    response = pdf_response(cached.read(), f"{event.slug}-programme.pdf")
    response.set_etag(cached.etag)
    response.last_modified = cached.last_modified
    return response.make_conditional(request)


@bp.get("/r/<token>/ticket.pdf")
def ticket_pdf(token: str):
    registration = registration_service.get_by_manage_token(token)
    # Online seminars have no 受付票: attendance is recorded with the 出席コード.
    if registration.status != "confirmed" or not registration.event.has_qr_ticket:
        abort(404)
    return pdf_response(documents.ticket_pdf(registration).pdf, f"ticket-{registration.event.slug}.pdf",
                        private=True)


@bp.get("/r/<token>/receipt.pdf")
def receipt_pdf(token: str):
    """The participant's 領収書, once the fee is paid (404 before, and after a refund)."""
    registration = registration_service.get_by_manage_token(token)
    payment = payments.receipt_payment(registration)
    if payment is None:
        abort(404)
    return pdf_response(documents.receipt_pdf(payment).pdf, f"receipt-{payment.receipt_number}.pdf", private=True)
