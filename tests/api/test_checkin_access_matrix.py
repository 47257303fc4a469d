"""Every check-in API route and every check-in screen, with each role and each event state: the API
allows exactly what the screens allow (published, not cancelled, inside the check-in window).

The routes come from Flask's URL map, so a new check-in route fails here until it is listed."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest
from flask import url_for

from eventapp.extensions import db
from eventapp.models.base import utcnow
from eventapp.services import registration as registration_service
from eventapp.services.accounts import create_token
from eventapp.services.checkin import check_in
from tests.factories import future, make_event, person_input
from tests.staff_support import login, make_user

ROLES = ("anonymous", "checkin", "staff", "admin")
_nonce = itertools.count(1)


def _event(state: str):
    now = utcnow()
    if state == "draft":
        return make_event(status="draft", starts_at=future(0))
    if state == "cancelled":  # cancelled after sign-ups (see `world`)
        return make_event(starts_at=future(0))
    if state == "inside":
        return make_event(starts_at=future(0))
    if state == "before_default":  # the default window opens at 00:00 JST the day before the first day
        return make_event(starts_at=future(5))
    if state == "past":  # … and closes at 23:59 JST the day after the last day
        return make_event(starts_at=now - timedelta(days=10))
    if state == "before_set":  # held today, but staff open the desk later
        return make_event(starts_at=future(0), checkin_opens_at=now + timedelta(hours=2))
    if state == "after_set":  # staff closed the desk already
        return make_event(starts_at=future(0), checkin_opens_at=now - timedelta(hours=3),
                          checkin_closes_at=now - timedelta(minutes=1))
    if state == "inside_set":  # a past event whose window staff reopened (late offline uploads)
        return make_event(starts_at=now - timedelta(days=10), checkin_opens_at=now - timedelta(hours=1),
                          checkin_closes_at=now + timedelta(hours=1))
    raise AssertionError(state)


# state → (status for a signed-in role, error code or None)
STATES = {
    "draft": (404, "event_not_found"), "cancelled": (409, "event_cancelled"),
    "before_default": (409, "checkin_closed"), "past": (409, "checkin_closed"),
    "before_set": (409, "checkin_closed"), "after_set": (409, "checkin_closed"),
    "inside": (200, None), "inside_set": (200, None),
}


@pytest.fixture
def world(app):
    """One event per state, each with a confirmed registration and one check-in (made by the service
    directly, so undo has something to undo whatever the state); a user and a token per role."""
    with app.app_context():
        events = {}
        for state in STATES:
            event = _event(state)
            reg = _register(event, name="受付 太郎", furigana="うけつけ たろう")
            if state == "cancelled":
                event.status = "cancelled"
            day = event.days[0]
            row = check_in(event.id, None, f"seed-{state}-{next(_nonce)}", registration_id=reg.id,
                           now=day.starts_at + timedelta(minutes=1))
            db.session.commit()
            events[state] = {"event_id": event.id, "registration_id": reg.id, "checkin_id": row.checkin.id}
        users = {}
        for role in ROLES[1:]:
            user = make_user(role)
            token = create_token(user.email)
            db.session.commit()
            users[role] = {"email": user.email, "token": token}
    return {"events": events, "users": users}


def _register(event, **person):
    """A phone sign-up by staff: also for drafts and events whose sign-up closed long ago."""
    result = registration_service.register(event.id, person_input(**person), {}, consent=True, source="staff",
                                           staff_override=True, notify=False)
    db.session.commit()
    return result.registration


def _fresh_checkin(app, ids: dict) -> int:
    """A new active check-in for a registration of its own (undo needs one each time)."""
    with app.app_context():
        from eventapp.models import Event
        event = db.session.get(Event, ids["event_id"])
        reg = _register(event)
        row = check_in(event.id, None, f"fresh-{next(_nonce)}", registration_id=reg.id,
                       now=event.days[0].starts_at + timedelta(minutes=1))
        db.session.commit()
        return row.checkin.id


def _api_request(endpoint: str, method: str, ids: dict):
    """(url kwargs, JSON body) for one route: valid bodies, so the answer is about who and when."""
    bodies = {
        ("checkin_api.create_checkin", "POST"): {"registration_id": ids["registration_id"],
                                                 "nonce": f"matrix-{next(_nonce):06d}"},
        ("checkin_api.checkin_stats", "GET"): None,
        ("checkin_api.checkin_roster", "GET"): None,
        ("checkin_api.checkin_batch", "POST"): {"scans": []},
        ("checkin_api.create_walkin", "POST"): {"name": "当日 花子", "furigana": "とうじつ はなこ",
                                                "nonce": f"matrix-walkin-{next(_nonce):06d}"},
        ("checkin_api.undo_checkin", "DELETE"): None,
    }
    assert (endpoint, method) in bodies, f"new check-in API route {method} {endpoint}: add it to this matrix"
    return bodies[(endpoint, method)]


def _checkin_api_rules(app):
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/api/v1/events/<int:event_id>/")
             and r.endpoint.startswith("checkin_api.")]
    assert len(rules) >= 5
    return [(rule, method) for rule in rules for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]


def test_every_checkin_api_route_with_every_role_and_event_state(app, world):
    client = app.test_client()
    seen = 0
    for rule, method in _checkin_api_rules(app):
        for state, (expected, code) in STATES.items():
            ids = world["events"][state]
            for role in ROLES:
                body = _api_request(rule.endpoint, method, ids)
                values = {"event_id": ids["event_id"]}
                if "checkin_id" in rule.arguments:
                    values["checkin_id"] = _fresh_checkin(app, ids) if expected == 200 else ids["checkin_id"]
                with app.test_request_context():
                    url = url_for(rule.endpoint, **values)
                headers = {} if role == "anonymous" else {"Authorization": f"Bearer {world['users'][role]['token']}"}
                response = client.open(url, method=method, json=body, headers=headers)
                where = (role, state, method, url, response.get_json())
                if role == "anonymous":
                    assert response.status_code == 401, where
                    continue
                assert response.status_code == expected, where
                if code:
                    error = response.get_json()["error"]
                    assert error["code"] == code and error["message"], where
                    if code == "checkin_closed":
                        assert "受付期間外です" in error["message"], where
                seen += 1
    assert seen >= 6 * len(STATES) * 3


def test_a_draft_roster_never_reaches_the_door(app, world, client):
    """The pen-test finding: names, answers and the ticket key of a draft event."""
    ids = world["events"]["draft"]
    response = client.get(f"/api/v1/events/{ids['event_id']}/checkins/roster",
                          headers={"Authorization": f"Bearer {world['users']['checkin']['token']}"})
    assert response.status_code == 404
    assert "受付 太郎" not in response.get_data(as_text=True) and "ticket_key" not in response.get_data(as_text=True)


def _screen_requests(app, ids: dict, state_ok: bool) -> list[tuple[str, str, str]]:
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("checkin.") and "event_id" in r.arguments]
    known = {("checkin.screen", "GET"), ("checkin.roster_list", "GET"), ("checkin.undo", "POST"),
             ("checkin.manual_checkin", "POST")}
    requests = []
    for rule in rules:
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            assert (rule.endpoint, method) in known, f"new check-in screen {method} {rule.rule}: add it to this matrix"
            values = {"event_id": ids["event_id"]}
            if "checkin_id" in rule.arguments:
                values["checkin_id"] = _fresh_checkin(app, ids) if state_ok else ids["checkin_id"]
            if "registration_id" in rule.arguments:
                values["registration_id"] = ids["registration_id"]
            with app.test_request_context():
                requests.append((rule.endpoint, method, url_for(rule.endpoint, **values)))
    assert len(requests) == len(known)
    return requests


def test_every_checkin_screen_with_every_role_and_event_state(app, world):
    clients = {"anonymous": app.test_client()}
    for role in ROLES[1:]:
        clients[role] = app.test_client()
        login(clients[role], world["users"][role]["email"])
    for state, (expected, _code) in STATES.items():
        ids = world["events"][state]
        for role, client in clients.items():
            for _endpoint, method, url in _screen_requests(app, ids, expected == 200):
                data = None
                if method == "POST":
                    token = client.get("/checkin/token")
                    data = {"csrf_token": token.get_json()["csrf"]} if token.status_code == 200 else {}
                response = client.open(url, method=method, data=data)
                where = (role, state, method, url)
                if role == "anonymous":
                    assert response.status_code in (302, 400), where
                    if response.status_code == 302:
                        assert response.headers["Location"].startswith("/staff/login"), where
                    continue
                wanted = (303 if method == "POST" else 200) if expected == 200 else expected
                assert response.status_code == wanted, where
                if state in ("before_set", "past"):
                    assert "受付期間外です" in response.get_data(as_text=True), where


def test_the_event_list_marks_events_outside_their_window(app, world):
    client = app.test_client()
    login(client, world["users"]["checkin"]["email"])
    html = client.get("/checkin/").get_data(as_text=True)
    inside, before = world["events"]["inside"]["event_id"], world["events"]["before_default"]["event_id"]
    assert f"/checkin/events/{inside}?day=" in html
    assert f"/checkin/events/{before}?day=" not in html and "受付期間外です" in html
    reopened = world["events"]["inside_set"]["event_id"]  # ended ten days ago, window reopened by staff
    assert f"/checkin/events/{reopened}?day=" in html


def test_window_limits_are_validated(app):
    from eventapp.formatting import JST
    from eventapp.services.errors import ValidationFailed

    with app.app_context():
        with pytest.raises(ValidationFailed) as caught:
            make_event(checkin_opens_at=datetime(1, 1, 1, tzinfo=JST), checkin_closes_at=datetime(9999, 12, 31, 23, 59,
                                                                                                  tzinfo=JST))
        assert set(caught.value.fields) == {"checkin_opens_at", "checkin_closes_at"}
        db.session.rollback()
        opens = future(0)
        with pytest.raises(ValidationFailed) as caught:
            make_event(checkin_opens_at=opens, checkin_closes_at=opens)
        assert caught.value.fields == {"checkin_closes_at": "受付(チェックイン)終了は受付開始より後にしてください。"}


def test_staff_set_the_window_on_the_event_form_and_the_database_keeps_it_ordered(app, world):
    from sqlalchemy.exc import IntegrityError

    from eventapp.models import Event
    from tests.staff_support import post_form

    ids = world["events"]["inside"]
    client = app.test_client()
    login(client, world["users"]["staff"]["email"])
    form_url = f"/staff/events/{ids['event_id']}/edit"
    html = client.get(form_url).get_data(as_text=True)
    assert 'name="checkin_opens_at"' in html and 'name="checkin_closes_at"' in html
    with app.app_context():
        event = db.session.get(Event, ids["event_id"])
        from eventapp.staff.forms import event_values
        values = event_values(event)
    values.update({"checkin_opens_at": "2030-01-02T10:00", "checkin_closes_at": "2030-01-02T09:00"})
    response = post_form(client, form_url, values, token_from=form_url)
    assert response.status_code == 422 and "受付(チェックイン)終了は受付開始より後に" in response.get_data(as_text=True)
    values["checkin_closes_at"] = "2030-01-02T18:00"
    response = post_form(client, form_url, values, token_from=form_url)
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    with app.app_context():
        event = db.session.get(Event, ids["event_id"])
        assert event.checkin_opens_at.isoformat() == "2030-01-02T01:00:00+00:00"
        event.checkin_closes_at = event.checkin_opens_at
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
    # Now outside the window that staff set: the door is refused.
    response = client.get(f"/api/v1/events/{ids['event_id']}/checkins",
                          headers={"Authorization": f"Bearer {world['users']['checkin']['token']}"})
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "checkin_closed"
