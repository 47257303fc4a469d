"""Participants reach only their own registration: secret tokens are long and random, guesses get a
plain 404, and the token pages leak nothing; the check-in pages outside /staff also check the role
(the /staff matrix is tests/views/test_permissions.py)."""

from __future__ import annotations

import math
import re
import secrets
import string

import pytest

from eventapp.extensions import db
from eventapp.models import Registration
from tests.conftest import make_event, make_registration
from tests.staff_support import login, make_user

URLSAFE = set(string.ascii_letters + string.digits + "-_")
MIN_BITS = 128


def bits(token: str) -> float:
    """Upper bound of the entropy a token of this alphabet and length can carry."""
    assert set(token) <= URLSAFE, token
    return len(token) * math.log2(len(URLSAFE))


def test_generated_tokens_are_long_random_and_unique(app):
    from eventapp.services.accounts import create_token
    with app.app_context():
        event = make_event(capacity=100)
        registrations = [make_registration(event) for _ in range(40)]
        manage = [r.manage_token for r in registrations]
        calendar = [r.person.calendar_token for r in registrations]
        tickets = [r.ticket_code for r in registrations]
        api_token = create_token(make_user("staff").email)
        db.session.commit()
    for token in manage + calendar:
        assert bits(token) >= MIN_BITS, token
    assert bits(api_token.removeprefix("ea_")) >= MIN_BITS
    for group in (manage, calendar, tickets):
        assert len(set(group)) == len(group)
    # Random, not derived from ids or order: no shared prefix, and every URL-safe symbol turns up.
    assert len({t[:4] for t in manage}) == len(manage)
    assert len(set("".join(manage))) > 50


def test_invitation_tokens_are_long_enough():
    from eventapp.services.matching import _token
    assert all(bits(_token()) >= MIN_BITS for _ in range(20))


@pytest.fixture
def two_people(app):
    with app.app_context():
        event = make_event()
        a = make_registration(event, name="岩手 一郎", email="ichiro@example.jp")
        b = make_registration(event, name="盛岡 二子", email="futako@example.jp")
        return {"a": a.manage_token, "b": b.manage_token, "a_id": a.id}


def test_a_participant_sees_only_their_own_registration(client, two_people):
    page = client.get(f"/r/{two_people['a']}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "岩手 一郎" in html and "盛岡 二子" not in html and "futako@example.jp" not in html
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"].startswith("no-store") or "no-store" in page.headers["Cache-Control"]
    api = client.get(f"/api/v1/registrations/{two_people['a']}").get_json()["registration"]
    assert api["id"] == two_people["a_id"] and "futako" not in str(api)


def near_misses(token: str) -> list[str]:
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    return [token[:-1], token + "x", flipped, token.swapcase(), token.upper(), f"{token[:16]}", "", " " + token]


def test_guessed_and_almost_right_tokens_get_a_plain_404(app, client, two_people):
    guesses = [secrets.token_urlsafe(24) for _ in range(60)] + [g for g in near_misses(two_people["a"]) if g.strip()]
    pages = ["/r/{}", "/r/{}/ticket.png", "/r/{}/ticket.pdf", "/r/{}/cancel", "/r/{}/invite.ics", "/r/{}/survey",
             "/invite/{}", "/feeds/person/{}.ics", "/api/v1/registrations/{}"]
    answers: dict[str, set] = {pattern: set() for pattern in pages}
    for guess in guesses:
        for pattern in pages:
            response = client.get(pattern.format(guess))
            assert response.status_code == 404, (pattern, guess, response.status_code)
            # The request id differs per request (random, or the client's own), and tells nothing.
            answers[pattern].add(re.sub(r'"request_id":"[^"]*"', "", response.get_data(as_text=True)))
    # Per page, every miss looks the same: nothing tells "almost" from "far off".
    assert all(len(bodies) == 1 for bodies in answers.values()), {p: len(b) for p, b in answers.items()}
    token = two_people["a"]
    wrong = token[:-1] + ("x" if token[-1] != "x" else "y")  # always a different last character
    response = client.post(f"/api/v1/registrations/{wrong}/cancel", json={})
    assert response.status_code == 404
    with app.app_context():
        assert db.session.get(Registration, two_people["a_id"]).status == "confirmed"


CHECKIN_PAGES = ["/checkin/", "/checkin/events/{event_id}", "/checkin/events/{event_id}/list", "/checkin/token"]


def test_checkin_pages_need_the_checkin_role(app, demo_ids):
    anonymous = app.test_client()
    for page in CHECKIN_PAGES:
        response = anonymous.get(page.format(**demo_ids))
        assert response.status_code == 302 and response.headers["Location"].startswith("/staff/login"), page
    # Anonymous API callers get 401, whatever the method.
    base = f"/api/v1/events/{demo_ids['event_id']}"
    # Valid bodies: the check-in API parses before it authenticates, and the refusal must be about who asks.
    scan = {"registration_id": demo_ids["registration_id"], "nonce": "anonymous-0001"}
    walkin = {"name": "当日 太郎", "furigana": "とうじつ たろう", "email": "walkin@example.jp", "nonce": "anonymous-0002"}
    for method, url, body in [("GET", f"{base}/checkins", None), ("GET", f"{base}/checkins/roster", None),
                              ("POST", f"{base}/checkins", scan), ("POST", f"{base}/checkins/batch", {"scans": []}),
                              ("POST", f"{base}/walkins", walkin),
                              ("DELETE", f"{base}/checkins/{demo_ids['checkin_id']}", None),
                              ("GET", f"{base}/registrations", None), ("POST", "/api/v1/events", {}),
                              ("PATCH", base, {})]:
        assert anonymous.open(url, method=method, json=body).status_code == 401, (method, url)
    door = app.test_client()
    with app.app_context():
        login(door, make_user("checkin").email)
    for page in CHECKIN_PAGES:
        assert door.get(page.format(**demo_ids)).status_code == 200, page
    # The check-in role reaches no staff page (the full matrix is in tests/views/test_permissions.py).
    assert door.get("/staff/people").status_code == 403
    assert door.get(f"{base}/registrations").status_code == 401  # staff API data needs a bearer token
