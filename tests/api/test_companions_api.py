"""API sign-up with companions (同行者) and a matching session's preferences (issue 14, requirement 7)."""

from __future__ import annotations

from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import Registration
from eventapp.services import matching, organisations
from tests.api.test_api import Tokens, assert_error, auth, new_event, signup_body
from tests.conftest import future, make_event


def test_api_signs_up_a_group_and_payloads_carry_attendee_and_companions(app, client):
    event_id = new_event(app, capacity=10, max_companions=3)
    event = client.get(f"/api/v1/events/{event_id}").get_json()
    assert event["max_companions"] == 3
    body = signup_body(companions=[{"name": "岩手 次郎", "furigana": "いわて じろう"},
                                   {"name": "岩手 三郎", "furigana": "イワテ サブロウ"}])
    response = client.post(f"/api/v1/events/{event_id}/registrations", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    registration = response.get_json()["registration"]
    assert registration["attendee"]["name"] == "岩手 太郎"
    assert registration["lead_registration_id"] is None
    companions = registration["companions"]
    assert [c["attendee"]["name"] for c in companions] == ["岩手 次郎", "岩手 三郎"]
    assert companions[1]["attendee"]["furigana"] == "いわて さぶろう"
    assert all(c["status"] == "confirmed" and c["ticket_code"] and c["manage_url"] for c in companions)
    # A companion's own manage token shows its own registration, pointing at the lead.
    own = client.get(f"/api/v1/registrations/{companions[0]['manage_token']}").get_json()["registration"]
    assert own["attendee"]["name"] == "岩手 次郎" and own["lead_registration_id"] == registration["id"]
    assert own["companions"] == []
    again = client.get(f"/api/v1/registrations/{registration['manage_token']}").get_json()["registration"]
    assert [c["id"] for c in again["companions"]] == [c["id"] for c in companions]


def test_api_group_waits_together_with_consecutive_places(app, client):
    event_id = new_event(app, capacity=2, max_companions=2)
    client.post(f"/api/v1/events/{event_id}/registrations", json=signup_body(email="first@example.com"))
    body = signup_body(email="group@example.com", companions=[{"name": "同行 一", "furigana": "どうこう"},
                                                               {"name": "同行 二", "furigana": "どうこう"}])
    registration = client.post(f"/api/v1/events/{event_id}/registrations", json=body).get_json()["registration"]
    assert registration["status"] == "waitlisted" and registration["waitlist_position"] == 1
    assert [(c["status"], c["waitlist_position"]) for c in registration["companions"]] == [
        ("waitlisted", 2), ("waitlisted", 3)]
    again = client.get(f"/api/v1/registrations/{registration['manage_token']}").get_json()["registration"]
    assert [c["waitlist_position"] for c in again["companions"]] == [2, 3]


def test_api_reports_companion_errors_per_field(app, client):
    event_id = new_event(app, capacity=10, max_companions=2)
    url = f"/api/v1/events/{event_id}/registrations"
    bad = client.post(url, json=signup_body(companions=[{"name": "同行 一", "furigana": "どうこう"},
                                                         {"name": "同行 二", "furigana": "doko"}]))
    error = assert_error(bad, 422)
    assert set(error["fields"]) == {"companions.1.furigana"}
    missing = client.post(url, json=signup_body(companions=[{"name": "同行 一"}]))
    assert "companions.0.furigana" in assert_error(missing, 422)["fields"]
    too_many = client.post(url, json=signup_body(companions=[{"name": "同行", "furigana": "どうこう"}] * 3))
    assert "companions" in assert_error(too_many, 422)["fields"]
    unknown = client.post(url, json=signup_body(companions=[{"name": "同行", "furigana": "どうこう", "email": "x@y.jp"}]))
    assert "companions.0.email" in assert_error(unknown, 422)["fields"]
    with app.app_context():
        assert db.session.execute(select(Registration.id)).first() is None


def test_api_stores_a_matching_sessions_ranked_preferences(app, client):
    with app.app_context():
        session = make_event(kind="matching_session", starts_at=future(20), slug="ms-prefs", fee_yen=0)
        orgs = [organisations.create_organisation({"name": name, "municipality": "花巻市",
                                                   "project_type": "fan_community", "challenges": "販路拡大"})
                for name in ("一の団体", "二の団体")]
        for org in orgs:
            organisations.link_event(session.id, org.id)
        matching.configure(session.id, access_rule="open", links=[])
        db.session.commit()
        session_id, org_ids = session.id, [o.id for o in orgs]
    url = f"/api/v1/events/{session_id}/registrations"
    unknown = client.post(url, json=signup_body(preferences=[org_ids[0], 999999]))
    assert "preferences" in assert_error(unknown, 422)["fields"]
    created = client.post(url, json=signup_body(preferences=[org_ids[1], org_ids[0]]))
    assert created.status_code == 201, created.get_data(as_text=True)
    with app.app_context():
        registration_id = created.get_json()["registration"]["id"]
        stored = [(p.organisation_id, p.rank) for p in matching.preferences_of(registration_id)]
    assert stored == [(org_ids[1], 1), (org_ids[0], 2)]


def test_openapi_describes_companions_and_preferences(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    create = next(s for name, s in schemas.items() if name.startswith("RegistrationCreate"))
    assert {"companions", "preferences"} <= set(create["properties"])
    registration = next(s for name, s in schemas.items() if name == "Registration")
    assert {"attendee", "companions", "lead_registration_id"} <= set(registration["properties"])


def test_api_cancels_a_lead_alone_or_with_the_group(app, client):
    event_id = new_event(app, capacity=10, max_companions=1)
    url = f"/api/v1/events/{event_id}/registrations"
    body = signup_body(companions=[{"name": "同行 一", "furigana": "どうこう"}])
    alone = client.post(url, json=body).get_json()["registration"]
    cancelled = client.post(f"/api/v1/registrations/{alone['manage_token']}/cancel").get_json()["registration"]
    assert cancelled["status"] == "cancelled" and [c["status"] for c in cancelled["companions"]] == ["confirmed"]
    group = client.post(url, json=signup_body(email="group@example.com", companions=body["companions"])
                        ).get_json()["registration"]
    cancelled = client.post(f"/api/v1/registrations/{group['manage_token']}/cancel?group=true"
                            ).get_json()["registration"]
    assert cancelled["status"] == "cancelled" and [c["status"] for c in cancelled["companions"]] == ["cancelled"]


def test_staff_set_max_companions_through_the_api(app, client):
    tokens = Tokens(app)
    event_id = new_event(app, capacity=10)
    url = f"/api/v1/events/{event_id}"
    too_many = client.patch(url, json={"max_companions": 11}, headers=auth(tokens["staff"]))
    assert "max_companions" in assert_error(too_many, 422)["fields"]
    changed = client.patch(url, json={"max_companions": 2}, headers=auth(tokens["staff"]))
    assert changed.status_code == 200 and changed.get_json()["max_companions"] == 2
