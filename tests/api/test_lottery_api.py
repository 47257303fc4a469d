"""抽選 over the API and the CLI (issue 17 contract): allocation/lottery_draw_at on events, `applied`
applications through the usual sign-up endpoint, POST /events/{id}/draw, `flask draw-lotteries`."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import Event, Registration
from eventapp.models.base import utcnow
from tests.api.test_api import assert_error, auth, signup_body, tokens  # noqa: F401 (fixture)
from tests.factories import future, make_event


def _lottery_event(app, capacity: int = 1) -> int:
    starts = future(30)
    with app.app_context():
        return make_event(allocation="lottery", lottery_draw_at=starts - timedelta(days=7), starts_at=starts,
                          ends_at=starts + timedelta(hours=4), capacity=capacity).id


def test_staff_create_a_lottery_event_and_applications_say_applied(app, client, tokens):  # noqa: F811
    starts = future(30)
    body = {"slug": "onsen-lottery", "kind": "fieldwork", "title": "温泉フィールドワーク", "capacity": 1,
            "starts_at": starts.isoformat(), "ends_at": (starts + timedelta(hours=5)).isoformat(),
            "allocation": "lottery", "lottery_losers": "not_selected"}
    missing = client.post("/api/v1/events", json=body, headers=auth(tokens["staff"]))
    assert "lottery_draw_at" in assert_error(missing, 422)["fields"]
    body["lottery_draw_at"] = (starts - timedelta(days=7)).isoformat()
    created = client.post("/api/v1/events", json=body, headers=auth(tokens["staff"]))
    assert created.status_code == 201, created.get_json()
    event = created.get_json()
    assert event["allocation"] == "lottery" and event["lottery_losers"] == "not_selected"
    assert event["lottery_draw_at"].startswith(
        (starts - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M"))
    published = client.patch(f"/api/v1/events/{event['id']}", json={"status": "published"},
                             headers=auth(tokens["staff"]))
    assert published.status_code == 200
    for n in range(2):
        response = client.post(f"/api/v1/events/{event['id']}/registrations",
                               json=signup_body(email=f"onsen{n}@example.com"))
        assert response.status_code == 201
        assert response.get_json()["registration"]["status"] == "applied"
    listed = client.get(f"/api/v1/events/{event['id']}/registrations", headers=auth(tokens["staff"])).get_json()
    assert listed["applied_count"] == 2 and listed["confirmed_count"] == 0
    assert client.get(f"/api/v1/events/{event['id']}").get_json()["allocation"] == "lottery"


def test_draw_endpoint_draws_once(app, client, tokens):  # noqa: F811
    event_id = _lottery_event(app, capacity=1)
    for n in range(3):
        assert client.post(f"/api/v1/events/{event_id}/registrations",
                           json=signup_body(email=f"draw{n}@example.com")).status_code == 201
    assert_error(client.post(f"/api/v1/events/{event_id}/draw"), 401)
    response = client.post(f"/api/v1/events/{event_id}/draw", headers=auth(tokens["staff"]))
    assert response.status_code == 200, response.get_json()
    result = response.get_json()
    assert (result["won"], result["waitlisted"], result["not_selected"]) == (1, 2, 0) and len(result["seed"]) == 64
    assert_error(client.post(f"/api/v1/events/{event_id}/draw", headers=auth(tokens["staff"])), 409, "already_drawn")
    with app.app_context():
        found = sorted(db.session.execute(select(Registration.status).where(Registration.event_id == event_id))
                       .scalars())
        assert found == ["confirmed", "waitlisted", "waitlisted"]


def test_draw_endpoint_needs_a_lottery_event(app, client, tokens):  # noqa: F811
    event_id = make_plain(app)
    assert_error(client.post(f"/api/v1/events/{event_id}/draw", headers=auth(tokens["staff"])), 409, "not_lottery")
    assert_error(client.post("/api/v1/events/999999/draw", headers=auth(tokens["staff"])), 404)


def make_plain(app) -> int:
    with app.app_context():
        return make_event().id


def test_cli_draws_due_lotteries(app, client):
    event_id = _lottery_event(app, capacity=1)
    for n in range(2):
        assert client.post(f"/api/v1/events/{event_id}/registrations",
                           json=signup_body(email=f"cli{n}@example.com")).status_code == 201
    runner = app.test_cli_runner()
    first = runner.invoke(args=["draw-lotteries"])
    assert first.exit_code == 0 and "0 applications" in first.output  # the draw time has not come
    with app.app_context():
        event = db.session.get(Event, event_id)
        event.lottery_draw_at = utcnow() - timedelta(minutes=1)  # the draw time has passed
        db.session.commit()
    second = runner.invoke(args=["draw-lotteries"])
    assert second.exit_code == 0 and "2 applications" in second.output, second.output
    assert "0 applications" in runner.invoke(args=["draw-lotteries"]).output
    with app.app_context():
        assert db.session.get(Event, event_id).lottery_drawn_at is not None
