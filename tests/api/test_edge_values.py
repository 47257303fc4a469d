"""Values found by fuzzing that used to give 500s: each is now a 4xx with a clear message (API: its code)."""

from __future__ import annotations

import pytest

from eventapp.extensions import db
from eventapp.services.accounts import create_token
from tests.factories import make_checkin_event, make_registration
from tests.staff_support import login, make_user

HUGE = "9" * 5000  # beyond Python's 4,300-digit int-string limit: json.loads raises a plain ValueError
EXTREME_DATES = ["9999-12-31T23:59:59-09:00", "0001-01-01T00:00:00+09:00", "9999-12-31T23:59:59+00:00"]


@pytest.fixture
def scene(app):
    with app.app_context():
        event = make_checkin_event()  # inside its check-in window, so the door routes read their bodies
        make_registration(event)
        admin = make_user("admin")
        token = create_token(admin.email)
        db.session.commit()
        ids = {"event_id": event.id, "email": admin.email, "headers": {"Authorization": f"Bearer {token}"}}
        db.session.remove()
    return ids


@pytest.mark.parametrize("path,method", [("/api/v1/events/{id}/registrations", "post"),
                                         ("/api/v1/events/{id}", "patch"), ("/api/v1/events", "post"),
                                         ("/api/v1/events/{id}/checkins", "post"),
                                         ("/api/v1/events/{id}/walkins", "post")])
def test_a_5000_digit_json_integer_is_malformed_json(client, scene, path, method):
    response = getattr(client, method)(path.format(id=scene["event_id"]), data='{"capacity": ' + HUGE + '}',
                                       content_type="application/json", headers=scene["headers"])
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["error"]["code"] == "malformed_json"


@pytest.mark.parametrize("value", EXTREME_DATES)
@pytest.mark.parametrize("field", ["registration_opens_at", "registration_closes_at", "cancellation_deadline",
                                   "roster_freeze_at", "starts_at"])
def test_extreme_dates_in_every_event_time_are_validation_errors(client, scene, field, value):
    response = client.patch(f"/api/v1/events/{scene['event_id']}", json={field: value}, headers=scene["headers"])
    assert response.status_code == 422, response.get_data(as_text=True)
    assert "2000年から2100年" in response.json["error"]["fields"][field]


@pytest.mark.parametrize("value", EXTREME_DATES)
def test_extreme_dates_in_days_are_validation_errors(client, scene, value):
    day = {"starts_at": value, "ends_at": value.replace("23:59:59", "23:59:59").replace("00:00:00", "01:00:00")}
    response = client.patch(f"/api/v1/events/{scene['event_id']}", json={"days": [day]}, headers=scene["headers"])
    assert response.status_code == 422, response.get_data(as_text=True)
    assert "days.0" in response.json["error"]["fields"]


@pytest.mark.parametrize("path,body", [
    ("/api/v1/events/{id}/checkins", '{"code": "X", "nonce": "n0nce-123", "device_id": "\\ud800"}'),
    ("/api/v1/events/{id}/walkins", '{"name": "\\udfff", "furigana": "a", "nonce": "n0nce-123"}'),
    ("/api/v1/events/{id}/registrations", '{"name": "a\\ud800b", "furigana": "a", "email": "x@example.com"}'),
])
def test_lone_surrogates_in_json_strings_are_refused(client, scene, path, body):
    response = client.post(path.format(id=scene["event_id"]), data=body, content_type="application/json",
                           headers=scene["headers"])
    assert response.status_code == 422, response.get_data(as_text=True)
    assert any("サロゲート" in message for message in response.json["error"]["fields"].values())


@pytest.mark.parametrize("query", ["after=100000000000000000000", f"after={2**63}", f"day={2**63}", "after=-1"])
def test_query_integers_beyond_the_id_range_are_422(client, scene, query):
    response = client.get(f"/api/v1/events/{scene['event_id']}/checkins?{query}", headers=scene["headers"])
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.json["error"]["code"] == "invalid"


def test_body_ids_beyond_64_bits_are_422(client, scene):
    response = client.post(f"/api/v1/events/{scene['event_id']}/checkins", headers=scene["headers"],
                           json={"registration_id": 2**64, "nonce": "n0nce-123"})
    assert response.status_code == 422, response.get_data(as_text=True)
    assert "registration_id" in response.json["error"]["fields"]


@pytest.mark.parametrize("path", [f"/api/v1/events/{2**63}", f"/api/v1/events/{2**31}/checkins/1",
                                  "/api/v1/events/1/checkins/9223372036854775808"])
def test_path_ids_beyond_the_column_range_are_404(client, scene, path):
    response = client.get(path, headers=scene["headers"])
    assert response.status_code in (404, 405)


@pytest.mark.parametrize("path", ["/staff/reports/9999.csv", "/staff/reports/9999.pdf", "/staff/reports/0.csv",
                                  "/staff/reports/2147483647.csv", "/staff/audit?page=9223372036854775807",
                                  "/staff/audit?page=0", f"/staff/registrations/{2**63}",
                                  "/staff/events/{id}/participants?question=9223372036854775808"])
def test_staff_urls_with_out_of_range_numbers_are_404(client, scene, path):
    login(client, scene["email"])
    response = client.get(path.format(id=scene["event_id"]))
    assert response.status_code == 404, response.get_data(as_text=True)[:300]


def test_staff_event_form_refuses_extreme_deadlines(client, scene):
    from tests.staff_support import post_form

    login(client, scene["email"])
    page = client.get(f"/staff/events/{scene['event_id']}/edit")
    assert page.status_code == 200
    response = post_form(client, f"/staff/events/{scene['event_id']}/edit",
                         {"title": "x", "starts_at": "2030-01-01T10:00", "ends_at": "2030-01-01T12:00",
                          "registration_closes_at": "9999-12-31T23:59", "cancellation_deadline": "0001-01-01T00:00",
                          "capacity": "5", "kind": "fieldwork", "status": "published", "slug": "edge"},
                         token_from=f"/staff/events/{scene['event_id']}/edit")
    assert response.status_code == 422, response.status_code
    assert "2000年から2100年" in response.get_data(as_text=True)
