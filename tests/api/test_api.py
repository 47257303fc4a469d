"""The /api/v1 contract (issue 2, section 6): events, registrations, staff endpoints, errors, OpenAPI."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from openapi_spec_validator import validate as validate_openapi
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import ApiToken, Event, Registration, User
from eventapp.models.base import utcnow
from eventapp.services.accounts import create_token, create_user
from eventapp.services.tickets import verify_ticket_code
from tests.factories import future, jst, make_event, make_registration

ISO_JST = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+09:00$")
EVENT_FIELDS = {"id", "slug", "kind", "title", "starts_at", "ends_at", "capacity", "confirmed_count",
                "waitlist_count", "seats_left", "status", "url"}


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.get_data(as_text=True)[:300]
    error = response.get_json()["error"]
    assert set(error) == {"code", "message", "fields", "request_id"}
    assert error["request_id"] == response.headers["X-Request-ID"]
    assert error["message"]
    if code:
        assert error["code"] == code
    return error


def new_event(app, **overrides) -> int:
    with app.app_context():
        return make_event(**overrides).id


def signup_body(**overrides) -> dict:
    body = {"name": "岩手 太郎", "furigana": "いわて たろう", "email": "taro@example.com", "consent_privacy": True}
    body.update(overrides)
    return body


class Tokens(dict):
    """A bearer token per role, made on first use (password hashing is deliberately slow)."""

    def __init__(self, app) -> None:
        super().__init__()
        self.app = app

    def __missing__(self, role: str) -> str:
        with self.app.app_context():
            create_user(f"{role}@example.jp", role, password="correct horse battery")
            self[role] = create_token(f"{role}@example.jp")
            db.session.commit()
        return self[role]


@pytest.fixture
def tokens(app) -> Tokens:
    return Tokens(app)


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# --- public events ------------------------------------------------------------------------------------

def test_list_events_returns_published_events_with_jst_times(app, client):
    event_id = new_event(app, title="地域と温泉を楽しみながら考える 遠恋複業フィールドワーク",
                         starts_at=jst(2031, 11, 8, 13), ends_at=jst(2031, 11, 9, 12), capacity=3)
    with app.app_context():
        make_registration(db.session.get(Event, event_id))
    new_event(app, title="下書き", status="draft")
    new_event(app, title="中止", status="cancelled")

    response = client.get("/api/v1/events")
    assert response.status_code == 200 and response.is_json
    events = response.get_json()["events"]
    assert [e["title"] for e in events] == ["地域と温泉を楽しみながら考える 遠恋複業フィールドワーク"]
    event = events[0]
    assert set(event) >= EVENT_FIELDS
    assert event["starts_at"] == "2031-11-08T13:00:00+09:00" and event["ends_at"] == "2031-11-09T12:00:00+09:00"
    assert (event["capacity"], event["confirmed_count"], event["waitlist_count"], event["seats_left"]) == (3, 1, 0, 2)
    assert event["status"] == "published" and event["kind"] == "fieldwork"
    assert event["url"] == f"http://testserver.local/events/{event['slug']}"
    assert "online_url" not in event  # the join link is for confirmed participants only


def test_list_events_comes_a_page_at_a_time(app, client, monkeypatch):
    from eventapp.services import events as event_service
    monkeypatch.setattr(event_service, "API_EVENTS_PER_PAGE", 2)
    ids = [new_event(app, starts_at=future(days=5 + n)) for n in range(3)]
    first = client.get("/api/v1/events").get_json()
    assert [e["id"] for e in first["events"]] == ids[:2]
    assert (first["page"], first["pages"], first["per_page"], first["total"]) == (1, 2, 2, 3)
    second = client.get("/api/v1/events?page=2").get_json()
    assert [e["id"] for e in second["events"]] == ids[2:] and second["page"] == 2
    assert_error(client.get("/api/v1/events?page=0"), 422, "invalid")


def test_list_events_filters_by_kind_and_orders_by_start(app, client):
    later = new_event(app, kind="online_seminar", starts_at=future(days=40), online_url="https://meet.example/x")
    sooner = new_event(app, kind="online_seminar", starts_at=future(days=5))
    new_event(app, kind="fieldwork")
    events = client.get("/api/v1/events?kind=online_seminar").get_json()["events"]
    assert [e["id"] for e in events] == [sooner, later]
    assert_error(client.get("/api/v1/events?kind=party"), 422, "invalid")


def test_get_event_by_id(app, client):
    event_id = new_event(app, questions=[{"key": "bus", "kind": "yesno", "label": "送迎バス", "required": True}])
    event = client.get(f"/api/v1/events/{event_id}").get_json()
    assert event["id"] == event_id and ISO_JST.match(event["starts_at"])
    assert event["questions"] == [{"key": "bus", "kind": "yesno", "label": "送迎バス", "help_text": "",
                                   "required": True, "important": False, "choices": []}]
    assert_error(client.get("/api/v1/events/999999"), 404, "event_not_found")
    draft = new_event(app, status="draft")
    assert_error(client.get(f"/api/v1/events/{draft}"), 404)
    assert_error(client.get("/api/v1/events/not-a-number"), 404)


# --- registrations -----------------------------------------------------------------------------------

def test_register_confirmed_then_waitlisted(app, client):
    event_id = new_event(app, capacity=1)
    first = client.post(f"/api/v1/events/{event_id}/registrations", json=signup_body(email="a@example.com"))
    assert first.status_code == 201, first.get_json()
    registration = first.get_json()["registration"]
    assert registration["status"] == "confirmed" and registration["waitlist_position"] is None
    assert len(registration["manage_token"]) >= 22  # >= 128 random bits, URL-safe
    assert registration["manage_url"] == f"http://testserver.local/r/{registration['manage_token']}"
    with app.app_context():
        assert verify_ticket_code(registration["ticket_code"]) == event_id

    second = client.post(f"/api/v1/events/{event_id}/registrations", json=signup_body(email="b@example.com"))
    assert second.status_code == 201
    waiting = second.get_json()["registration"]
    assert waiting["status"] == "waitlisted" and waiting["waitlist_position"] == 1
    assert waiting["ticket_code"] is None
    with app.app_context():
        stored = db.session.execute(select(Registration).order_by(Registration.id)).scalars().all()
        assert [(r.status, r.source) for r in stored] == [("confirmed", "api"), ("waitlisted", "api")]


def test_register_with_answers(app, client):
    event_id = new_event(app, questions=[
        {"key": "bus", "kind": "yesno", "label": "北上駅からの送迎バス", "required": True},
        {"key": "diet", "kind": "text", "label": "食事制限"},
    ])
    response = client.post(f"/api/v1/events/{event_id}/registrations",
                           json=signup_body(answers={"bus": True, "diet": "そばアレルギー"}))
    assert response.status_code == 201
    assert response.get_json()["registration"]["answers"] == {"bus": "yes", "diet": "そばアレルギー"}


def test_register_conflicts_have_stable_codes(app, client):
    event_id = new_event(app)
    assert client.post(f"/api/v1/events/{event_id}/registrations", json=signup_body()).status_code == 201
    duplicate = client.post(f"/api/v1/events/{event_id}/registrations", json=signup_body(email="TARO@example.com"))
    assert_error(duplicate, 409, "duplicate")

    closed = new_event(app, registration_closes_at=utcnow() - timedelta(minutes=1))
    assert_error(client.post(f"/api/v1/events/{closed}/registrations", json=signup_body()), 409,
                 "registration_closed")
    not_open = new_event(app, registration_opens_at=utcnow() + timedelta(days=1))
    assert_error(client.post(f"/api/v1/events/{not_open}/registrations", json=signup_body()), 409,
                 "registration_not_open")
    cancelled = new_event(app, status="cancelled")
    assert_error(client.post(f"/api/v1/events/{cancelled}/registrations", json=signup_body()), 409,
                 "event_cancelled")
    assert_error(client.post("/api/v1/events/424242/registrations", json=signup_body()), 404, "event_not_found")


def test_register_invalid_input_lists_fields(app, client):
    event_id = new_event(app, questions=[{"key": "bus", "kind": "yesno", "label": "送迎バス", "required": True}])
    response = client.post(f"/api/v1/events/{event_id}/registrations", json={
        "name": "", "furigana": "Taro", "email": "no-at-sign", "consent_privacy": False, "answers": {"bus": "maybe"},
    })
    error = assert_error(response, 422, "invalid")
    assert set(error["fields"]) == {"name", "furigana", "email", "consent_privacy", "answers.bus"}
    assert "ひらがな" in error["fields"]["furigana"]
    with app.app_context():
        assert db.session.execute(select(Registration)).first() is None


@pytest.mark.parametrize("body, field", [
    ({"name": 123}, "name"),
    ({"consent_privacy": "yes"}, "consent_privacy"),
    ({"consent_privacy": 1}, "consent_privacy"),
    ({"answers": "bus=yes"}, "answers"),
    ({"answers": {"bus": {"nested": True}}}, "answers"),
    ({"answers": {"bus": [1, 2]}}, "answers"),
    ({"email": None}, "email"),
    ({"shoe_size": 27}, "shoe_size"),
    ({"name": "\ud800岩手"}, "name"),  # a lone surrogate cannot be stored as UTF-8
    ({"name": "岩手\x00花子"}, "name"),  # PostgreSQL refuses NUL in text
    ({"answers": {"diet": "\udfff"}}, "answers"),
])
def test_wrong_types_are_422_with_the_field_named(app, client, body, field):
    event_id = new_event(app, questions=[{"key": "bus", "kind": "yesno", "label": "送迎バス"},
                                         {"key": "diet", "kind": "text", "label": "食事制限"}])
    # json.dumps escapes non-ASCII, so lone surrogates travel as `\ud800` as a client would send them
    response = client.post(f"/api/v1/events/{event_id}/registrations", data=json.dumps(signup_body(**body)),
                           content_type="application/json")
    error = assert_error(response, 422)
    assert any(name == field or name.startswith(field + ".") for name in error["fields"]), error


@pytest.mark.parametrize("data, content_type", [
    ('{"name": "岩手"', "application/json"),
    ("not json at all", "application/json"),
    ("\xff\xfe", "application/json"),
    ("[1, 2, 3]", "application/json"),
    ('"just a string"', "application/json"),
    ("null", "application/json"),
    ("name=x", "application/x-www-form-urlencoded"),
    ("", "application/json"),
    ("[" * 100_000, "application/json"),  # deeper than the JSON parser's recursion limit
    ('{"a":' * 50_000, "application/json"),
    ("1e999999", "application/json"),
])
def test_malformed_bodies_never_give_5xx(app, client, data, content_type):
    event_id = new_event(app)
    response = client.post(f"/api/v1/events/{event_id}/registrations", data=data, content_type=content_type)
    assert 400 <= response.status_code < 500
    assert_error(response, response.status_code)
    with app.app_context():
        assert db.session.execute(select(Registration)).first() is None


def test_malformed_json_has_its_own_code(app, client):
    event_id = new_event(app)
    response = client.post(f"/api/v1/events/{event_id}/registrations", data="{oops", content_type="application/json")
    assert_error(response, 400, "malformed_json")


def test_get_and_cancel_registration_by_manage_token(app, client):
    event_id = new_event(app, capacity=1)
    first = client.post(f"/api/v1/events/{event_id}/registrations", json=signup_body(email="a@example.com"))
    second = client.post(f"/api/v1/events/{event_id}/registrations", json=signup_body(email="b@example.com"))
    token, waiting_token = (r.get_json()["registration"]["manage_token"] for r in (first, second))

    shown = client.get(f"/api/v1/registrations/{token}").get_json()["registration"]
    assert shown["status"] == "confirmed" and shown["event"]["id"] == event_id
    assert ISO_JST.match(shown["event"]["starts_at"]) and ISO_JST.match(shown["created_at"])

    cancelled = client.post(f"/api/v1/registrations/{token}/cancel")
    assert cancelled.status_code == 200
    body = cancelled.get_json()["registration"]
    assert body["status"] == "cancelled" and body["ticket_code"] is None and ISO_JST.match(body["cancelled_at"])
    # the waitlisted person moved up in the same transaction
    promoted = client.get(f"/api/v1/registrations/{waiting_token}").get_json()["registration"]
    assert promoted["status"] == "confirmed" and promoted["waitlist_position"] is None and promoted["ticket_code"]

    assert_error(client.post(f"/api/v1/registrations/{token}/cancel"), 409, "already_cancelled")
    assert_error(client.get("/api/v1/registrations/unknown-token"), 404, "registration_not_found")
    assert_error(client.post("/api/v1/registrations/unknown-token/cancel"), 404)
    assert_error(client.get(f"/api/v1/registrations/{'x' * 500}"), 404)


def test_cancel_after_deadline_is_409(app, client):
    event_id = new_event(app, cancellation_deadline=utcnow() + timedelta(hours=1))
    with app.app_context():
        token = make_registration(db.session.get(Event, event_id)).manage_token
        db.session.get(Event, event_id).cancellation_deadline = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert_error(client.post(f"/api/v1/registrations/{token}/cancel"), 409, "cancellation_closed")


# --- staff endpoints ------------------------------------------------------------------------------------

NEW_EVENT = {
    "slug": "kitakami-fieldwork-2031", "kind": "fieldwork", "title": "北上フィールドワーク",
    "starts_at": "2031-11-08T13:00:00+09:00", "ends_at": "2031-11-09T12:00:00+09:00", "capacity": 2,
    "status": "published", "registration_closes_at": "2031-11-01T23:59:00+09:00",
    "roster_freeze_at": "2031-11-07T12:00:00+09:00", "venue_name": "夏油温泉観光ホテル", "fee_yen": 5000,
    "questions": [{"key": "bus", "kind": "yesno", "label": "北上駅からの送迎バス", "required": True}],
    "days": [{"starts_at": "2031-11-08T13:00:00+09:00", "ends_at": "2031-11-08T21:00:00+09:00",
              "items": [{"starts_at": "13:30", "title": "事業継承ストーリー"}]},
             {"starts_at": "2031-11-09T08:00:00+09:00", "ends_at": "2031-11-09T12:00:00+09:00", "items": []}],
}


def test_staff_creates_an_event(app, client, tokens):
    response = client.post("/api/v1/events", json=NEW_EVENT, headers=auth(tokens["staff"]))
    assert response.status_code == 201, response.get_json()
    event = response.get_json()
    assert event["slug"] == "kitakami-fieldwork-2031" and event["status"] == "published"
    assert event["starts_at"] == "2031-11-08T13:00:00+09:00"
    assert event["registration_closes_at"] == "2031-11-01T23:59:00+09:00"
    assert event["roster_freeze_at"] == "2031-11-07T12:00:00+09:00"
    assert event["seats_left"] == 2 and len(event["days"]) == 2
    assert event["days"][0]["items"][0]["title"] == "事業継承ストーリー"
    # and it is public now
    assert client.get(f"/api/v1/events/{event['id']}").get_json()["title"] == "北上フィールドワーク"
    # a naive time is read as JST
    naive = dict(NEW_EVENT, slug="naive-times", starts_at="2031-12-01T10:00:00", ends_at="2031-12-01T12:00:00",
                 registration_closes_at=None, roster_freeze_at=None)
    naive.pop("days")
    created = client.post("/api/v1/events", json=naive, headers=auth(tokens["admin"])).get_json()
    assert created["starts_at"] == "2031-12-01T10:00:00+09:00"


def test_staff_flags_a_question_important_through_the_api(app, client, tokens):
    body = dict(NEW_EVENT, slug="important-question", questions=[
        {"key": "allergy", "kind": "text", "label": "アレルギー", "important": True},
        {"key": "bus", "kind": "yesno", "label": "送迎バス"}])
    response = client.post("/api/v1/events", json=body, headers=auth(tokens["staff"]))
    assert response.status_code == 201, response.get_json()
    questions = client.get(f"/api/v1/events/{response.get_json()['id']}").get_json()["questions"]
    assert [(q["key"], q["important"]) for q in questions] == [("allergy", True), ("bus", False)]
    bad = dict(body, slug="important-bad", questions=[dict(body["questions"][0], important="very")])
    assert_error(client.post("/api/v1/events", json=bad, headers=auth(tokens["staff"])), 422, "invalid")


def test_create_event_validation(app, client, tokens):
    bad = dict(NEW_EVENT, slug="Not A Slug", ends_at="2031-11-08T12:00:00+09:00")
    error = assert_error(client.post("/api/v1/events", json=bad, headers=auth(tokens["staff"])), 422, "invalid")
    assert {"slug", "ends_at"} <= set(error["fields"])
    wrong_types = dict(NEW_EVENT, capacity="20", starts_at="next saturday")
    error = assert_error(client.post("/api/v1/events", json=wrong_types, headers=auth(tokens["staff"])), 422)
    assert {"capacity", "starts_at"} <= set(error["fields"])
    missing = {"title": "x"}
    error = assert_error(client.post("/api/v1/events", json=missing, headers=auth(tokens["staff"])), 422)
    assert {"slug", "kind", "starts_at", "ends_at", "capacity"} <= set(error["fields"])
    client.post("/api/v1/events", json=NEW_EVENT, headers=auth(tokens["staff"]))
    again = client.post("/api/v1/events", json=NEW_EVENT, headers=auth(tokens["staff"]))
    assert "slug" in assert_error(again, 422)["fields"]


def test_staff_endpoints_need_a_valid_bearer_token(app, client, tokens):
    event_id = new_event(app)
    calls = [("post", "/api/v1/events", NEW_EVENT), ("patch", f"/api/v1/events/{event_id}", {"capacity": 50}),
             ("get", f"/api/v1/events/{event_id}/registrations", None)]
    for method, url, body in calls:
        call = getattr(client, method)
        assert_error(call(url, json=body), 401, "unauthorized")
        assert_error(call(url, json=body, headers=auth("ea_not-a-real-token")), 401, "unauthorized")
        assert_error(call(url, json=body, headers={"Authorization": f"Token {tokens['staff']}"}), 401)
        assert_error(call(url, json=body, headers=auth(tokens["checkin"])), 403, "forbidden")
    # an invalid body from an unauthenticated caller is refused for the missing token, not parsed
    assert_error(client.post("/api/v1/events", json={"capacity": "x"}), 401)
    with app.app_context():
        assert db.session.get(Event, event_id).capacity == 20
        assert db.session.execute(select(Event).where(Event.slug == NEW_EVENT["slug"])).first() is None


def test_deactivated_user_token_stops_working(app, client, tokens):
    token = tokens["staff"]
    assert client.get("/api/v1/events/1/registrations", headers=auth(token)).status_code == 404  # accepted
    with app.app_context():
        user = db.session.execute(select(User).where(User.email == "staff@example.jp")).scalar_one()
        user.active = False
        db.session.commit()
    assert_error(client.get("/api/v1/events/1/registrations", headers=auth(token)), 401)


def test_patch_raising_capacity_promotes_waitlisted_fifo(app, client, tokens):
    event_id = new_event(app, capacity=1)
    tokens_in_order = []
    for n in range(4):
        response = client.post(f"/api/v1/events/{event_id}/registrations", json=signup_body(email=f"p{n}@example.com"))
        tokens_in_order.append(response.get_json()["registration"]["manage_token"])

    patched = client.patch(f"/api/v1/events/{event_id}", json={"capacity": 3}, headers=auth(tokens["staff"]))
    assert patched.status_code == 200, patched.get_json()
    event = patched.get_json()
    assert (event["capacity"], event["confirmed_count"], event["waitlist_count"], event["seats_left"]) == (3, 3, 1, 0)
    statuses = [client.get(f"/api/v1/registrations/{t}").get_json()["registration"] for t in tokens_in_order]
    assert [(r["status"], r["waitlist_position"]) for r in statuses] == [
        ("confirmed", None), ("confirmed", None), ("confirmed", None), ("waitlisted", 1)]
    with app.app_context():
        from eventapp.models import OutboxMessage
        promoted = db.session.execute(select(OutboxMessage.to_addr).where(
            OutboxMessage.kind == "registration_promoted").order_by(OutboxMessage.id)).scalars().all()
        assert promoted == ["p1@example.com", "p2@example.com"]


def test_patch_capacity_below_confirmed_is_422(app, client, tokens):
    event_id = new_event(app, capacity=5)
    for n in range(3):
        client.post(f"/api/v1/events/{event_id}/registrations", json=signup_body(email=f"p{n}@example.com"))
    error = assert_error(client.patch(f"/api/v1/events/{event_id}", json={"capacity": 2},
                                      headers=auth(tokens["staff"])), 422, "invalid")
    assert "3名" in error["fields"]["capacity"]
    ok = client.patch(f"/api/v1/events/{event_id}", json={"capacity": 3, "title": "改題"}, headers=auth(tokens["staff"]))
    assert ok.status_code == 200 and ok.get_json()["title"] == "改題" and ok.get_json()["seats_left"] == 0
    assert_error(client.patch(f"/api/v1/events/{event_id}", json={"capacity": -1}, headers=auth(tokens["staff"])), 422)
    assert_error(client.patch(f"/api/v1/events/{event_id}", json={"capacity": 2.5}, headers=auth(tokens["staff"])), 422)
    assert_error(client.patch(f"/api/v1/events/{event_id}", json=[], headers=auth(tokens["staff"])), 422)
    assert_error(client.patch("/api/v1/events/987654", json={"capacity": 9}, headers=auth(tokens["staff"])), 404)


def test_patch_can_cancel_and_publish(app, client, tokens):
    event_id = new_event(app, status="draft")
    assert_error(client.get(f"/api/v1/events/{event_id}"), 404)
    published = client.patch(f"/api/v1/events/{event_id}", json={"status": "published"}, headers=auth(tokens["staff"]))
    assert published.get_json()["status"] == "published"
    client.patch(f"/api/v1/events/{event_id}", json={"status": "cancelled"}, headers=auth(tokens["staff"]))
    assert_error(client.post(f"/api/v1/events/{event_id}/registrations", json=signup_body()), 409, "event_cancelled")


def test_staff_lists_registrations_with_people(app, client, tokens):
    event_id = new_event(app, capacity=1)
    for email in ("a@example.com", "b@example.com"):
        client.post(f"/api/v1/events/{event_id}/registrations", json=signup_body(email=email))
    response = client.get(f"/api/v1/events/{event_id}/registrations", headers=auth(tokens["staff"]))
    assert response.status_code == 200
    body = response.get_json()
    assert (body["confirmed_count"], body["waitlist_count"]) == (1, 1)
    assert [(r["person"]["email"], r["status"], r["waitlist_position"]) for r in body["registrations"]] == [
        ("a@example.com", "confirmed", None), ("b@example.com", "waitlisted", 1)]
    assert body["registrations"][0]["person"]["furigana"] == "いわて たろう"
    assert_error(client.get("/api/v1/events/999999/registrations", headers=auth(tokens["staff"])), 404)


def test_registrations_of_one_address_carry_their_own_attendee(app, client, tokens):
    """Two sign-ups with one address and two names: each payload's `attendee` is its own; `person`
    (staff only) is the address's contact, as at its first sign-up."""
    first, second = new_event(app), new_event(app)
    answers = [client.post(f"/api/v1/events/{event_id}/registrations", json=signup_body(
        email="family@example.com", name=name, furigana=kana, phone=phone, iwate_relation="connected"))
        for event_id, name, kana, phone in ((first, "岩手 太郎", "いわて たろう", "090-1111-2222"),
                                            (second, "岩手 次郎", "いわて じろう", "080-3333-4444"))]
    assert [a.status_code for a in answers] == [201, 201]
    attendee = answers[1].get_json()["registration"]["attendee"]
    assert attendee == {"name": "岩手 次郎", "furigana": "いわて じろう", "phone": "080-3333-4444", "prefecture": "",
                        "iwate_relation": "connected", "occupation": "", "skills": ""}
    token = answers[0].get_json()["registration"]["manage_token"]
    assert client.get(f"/api/v1/registrations/{token}").get_json()["registration"]["attendee"]["name"] == "岩手 太郎"
    listed = client.get(f"/api/v1/events/{second}/registrations", headers=auth(tokens["staff"])).get_json()
    [registration] = listed["registrations"]
    assert registration["attendee"]["name"] == "岩手 次郎"
    assert (registration["person"]["name"], registration["person"]["email"]) == ("岩手 太郎", "family@example.com")
    schemas = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    assert set(schemas["Attendee"]["properties"]) == {"name", "furigana", "phone", "prefecture", "iwate_relation",
                                                      "occupation", "skills"}
    assert "attendee" in schemas["Registration"]["properties"]


def test_api_does_not_need_csrf_but_forms_do(app, client):
    # bearer tokens and secret manage tokens authenticate the API; no cookie session is involved
    event_id = new_event(app)
    assert client.post(f"/api/v1/events/{event_id}/registrations", json=signup_body()).status_code == 201
    with app.app_context():
        slug = db.session.get(Event, event_id).slug
    form_post = client.post(f"/events/{slug}/register", data=dict(signup_body(email="form@example.com"),
                                                                  consent_privacy="y"))
    assert form_post.status_code == 400


def test_unknown_api_path_and_method_are_json_errors(client):
    assert_error(client.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(client.delete("/api/v1/events"), 405, "method_not_allowed")


# --- OpenAPI --------------------------------------------------------------------------------------------

def test_openapi_description_is_valid_and_complete(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.is_json
    spec = response.get_json()
    validate_openapi(spec)
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    expected = {
        "/api/v1/events": {"get", "post"},
        "/api/v1/events/{event_id}": {"get", "patch"},
        "/api/v1/events/{event_id}/registrations": {"get", "post"},
        "/api/v1/registrations/{manage_token}": {"get"},
        "/api/v1/registrations/{manage_token}/cancel": {"post"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert paths["/api/v1/events"]["post"]["security"] == [{"bearerAuth": []}]
    assert "409" in paths["/api/v1/events/{event_id}/registrations"]["post"]["responses"]
    assert {"400", "404", "409", "422"} <= set(paths["/api/v1/events/{event_id}/registrations"]["post"]["responses"])
    error_schema = paths["/api/v1/events/{event_id}/registrations"]["post"]["responses"]["409"]
    assert error_schema["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    event_schema = spec["components"]["schemas"]["Event"]["properties"]
    assert set(event_schema) >= EVENT_FIELDS


# --- CLI ------------------------------------------------------------------------------------------------------

def test_cli_create_user_and_token(app, client):
    runner = app.test_cli_runner()
    created = runner.invoke(args=["create-user", "Jimukyoku@Example.jp", "--role", "staff",
                                  "--password", "long enough password"])
    assert created.exit_code == 0, created.output
    assert "jimukyoku@example.jp" in created.output.lower()

    issued = runner.invoke(args=["create-token", "jimukyoku@example.jp"])
    assert issued.exit_code == 0, issued.output
    token = issued.output.strip().splitlines()[-1]
    assert token.startswith("ea_") and len(token) > 40
    with app.app_context():
        stored = db.session.execute(select(ApiToken.token_hash)).scalars().all()
        assert token not in stored and len(stored) == 1  # only the hash is kept
    event_id = new_event(app)
    assert client.get(f"/api/v1/events/{event_id}/registrations", headers=auth(token)).status_code == 200

    generated = runner.invoke(args=["create-user", "checkin@example.jp", "--role", "checkin"])
    assert generated.exit_code == 0 and "password:" in generated.output


def test_cli_refuses_bad_input_clearly(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["create-user", "a@example.jp", "--role", "staff", "--password", "hanamaki-grape-harvest"]).exit_code == 0
    duplicate = runner.invoke(args=["create-user", "a@example.jp", "--role", "staff", "--password", "hanamaki-grape-harvest"])
    assert duplicate.exit_code != 0 and "既に登録されています" in duplicate.output
    short = runner.invoke(args=["create-user", "b@example.jp", "--role", "staff", "--password", "short"])
    assert short.exit_code != 0 and "10文字以上" in short.output
    bad_role = runner.invoke(args=["create-user", "c@example.jp", "--role", "boss"])
    assert bad_role.exit_code != 0
    unknown = runner.invoke(args=["create-token", "nobody@example.jp"])
    assert unknown.exit_code != 0 and "nobody@example.jp" in unknown.output


def test_event_english_texts_through_the_api(app, client, tokens):
    body = dict(NEW_EVENT, slug="kitakami-english", title_en="Kitakami fieldwork", summary_en="Two days.\nIn Iwate.")
    created = client.post("/api/v1/events", json=body, headers=auth(tokens["staff"]))
    assert created.status_code == 201, created.get_json()
    event = created.get_json()
    assert (event["title_en"], event["summary_en"], event["description_en"]) == (
        "Kitakami fieldwork", "Two days.\nIn Iwate.", "")
    changed = client.patch(f"/api/v1/events/{event['id']}", json={"title_en": ""}, headers=auth(tokens["staff"]))
    assert changed.status_code == 200 and changed.get_json()["title_en"] == ""
    too_long = client.patch(f"/api/v1/events/{event['id']}", json={"title_en": "x" * 301},
                            headers=auth(tokens["staff"]))
    assert too_long.status_code == 422
