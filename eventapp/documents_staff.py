"""Staff-only printable PDFs: rosters (名簿) and name badges (名札).

A blueprint of its own (mounted under /staff) so the documents do not depend on the staff
back-office package; the staff event page links here.
"""

from __future__ import annotations

from flask import Blueprint, request

from .auth.decorators import role_required
from .extensions import db
from .models import Event
from .public.document_views import pdf_response
from .services import documents

bp = Blueprint("staff_documents", __name__, url_prefix="/staff")


def _event(event_id: int) -> Event:
    return db.get_or_404(Event, event_id)


@bp.get("/events/<int:event_id>/roster.pdf")
@role_required("staff")
def roster_pdf(event_id: int):
    event = _event(event_id)
    preset = request.args.get("preset", "reception")
    sort = request.args.get("sort", "kana")
    result = documents.roster_pdf(event, preset, sort)
    return pdf_response(result.pdf, f"{event.slug}-{preset}.pdf", private=True)


@bp.get("/events/<int:event_id>/badges.pdf")
@role_required("staff")
def badges_pdf(event_id: int):
    event = _event(event_id)
    result = documents.badges_pdf(event, request.args.get("sort", "kana"))
    return pdf_response(result.pdf, f"{event.slug}-badges.pdf", private=True)
