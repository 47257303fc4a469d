"""API sign-up for a matching session follows the same access rule as the web form."""

from __future__ import annotations

from datetime import timedelta

from eventapp.extensions import db
from eventapp.models.base import utcnow
from eventapp.services import matching
from tests.api.test_api import assert_error, signup_body
from tests.conftest import future, make_event, make_registration
from tests.services.test_matching import attend


def test_api_refuses_a_non_attendee_with_a_clear_json_error(app, client):
    with app.app_context():
        now = utcnow()
        fieldwork = make_event(kind="fieldwork", starts_at=now - timedelta(days=3), slug="fw-api")
        session = make_event(kind="matching_session", starts_at=future(20), slug="ms-api")
        attend(make_registration(fieldwork, email="attendee@example.com", now=now - timedelta(days=10)))
        matching.configure(session.id, access_rule="attendees_only", links=[("event", fieldwork.id)])
        db.session.commit()
        session_id = session.id
    refused = client.post(f"/api/v1/events/{session_id}/registrations", json=signup_body(email="other@example.com"))
    error = assert_error(refused, 409, "not_eligible")
    assert "参加された方のみ" in error["message"]
    accepted = client.post(f"/api/v1/events/{session_id}/registrations", json=signup_body(email="attendee@example.com"))
    assert accepted.status_code == 201, accepted.get_data(as_text=True)
