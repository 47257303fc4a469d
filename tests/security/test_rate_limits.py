"""Rate limits on sign-up, secret-token pages and check-in (login has its own test in tests/views), the
friendly 429 answers, and the database storage that all gunicorn workers share."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time

import pytest
import requests
from limits import parse
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import select, update

from eventapp.extensions import db
from eventapp.models import RateLimitCounter
from eventapp.ratelimit_storage import DatabaseStorage
from eventapp.security import rate_limited_endpoints
from tests.conftest import TEST_SECRET, csrf_token_from, make_event
from tests.live_server import start_server
from tests.staff_support import login, make_user

IP = {"REMOTE_ADDR": "198.51.100.20"}
OTHER_IP = {"REMOTE_ADDR": "198.51.100.21"}


@contextlib.contextmanager
def limit(app, name: str, value: str):
    """Lower one limit for this test; the in-memory counters are cleared so earlier tests do not count."""
    from eventapp.extensions import limiter
    old = app.config[name]
    app.config[name] = value
    limiter.reset()
    try:
        yield
    finally:
        app.config[name] = old
        limiter.reset()


def test_the_limited_endpoints_exist(app):
    # A renamed view would silently lose its limit: every configured endpoint must be a real one.
    endpoints = rate_limited_endpoints()
    assert set(endpoints) <= set(app.view_functions), set(endpoints) - set(app.view_functions)
    assert {"signup", "token", "feed", "checkin", "my_link_ip, my_link_address"} == set(endpoints.values())


def test_signup_is_limited_per_ip_on_the_form_and_the_api_together(app, client):
    with app.app_context():
        event = make_event()
        slug, event_id = event.slug, event.id
    with limit(app, "SIGNUP_RATE_LIMIT", "2/minute"):
        token = csrf_token_from(client.get(f"/events/{slug}/register", environ_base=IP).get_data(as_text=True))
        # Invalid forms still count: the limit is on attempts, not on successes.
        codes = [client.post(f"/events/{slug}/register", data={"csrf_token": token}, environ_base=IP).status_code
                 for _ in range(2)]
        assert codes == [422, 422]
        blocked = client.post(f"/events/{slug}/register", data={"csrf_token": token}, environ_base=IP)
        assert blocked.status_code == 429
        assert "しばらくお待ちください" in blocked.get_data(as_text=True)
        assert "Retry-After" in blocked.headers
        # The API shares the sign-up budget of the address and answers in JSON.
        api = client.post(f"/api/v1/events/{event_id}/registrations", json={}, environ_base=IP)
        assert api.status_code == 429
        assert api.get_json()["error"]["code"] == "rate_limited"
        # Reading the form is not limited, and another address can still sign up.
        assert client.get(f"/events/{slug}/register", environ_base=IP).status_code == 200
        assert client.post(f"/api/v1/events/{event_id}/registrations", json={},
                           environ_base=OTHER_IP).status_code == 422


def test_token_guessing_is_limited_per_ip_across_all_token_pages(app, client):
    with limit(app, "TOKEN_RATE_LIMIT", "5/minute"):
        urls = [f"/r/{secrets.token_urlsafe(24)}", f"/r/{secrets.token_urlsafe(24)}/ticket.png",
                f"/invite/{secrets.token_urlsafe(24)}", f"/api/v1/registrations/{secrets.token_urlsafe(24)}",
                f"/r/{secrets.token_urlsafe(24)}/cancel"]
        assert [client.get(u, environ_base=IP).status_code for u in urls] == [404] * 5
        html = client.get(f"/r/{secrets.token_urlsafe(24)}", environ_base=IP)
        assert html.status_code == 429 and "しばらくお待ちください" in html.get_data(as_text=True)
        api = client.get(f"/api/v1/registrations/{secrets.token_urlsafe(24)}", environ_base=IP)
        assert api.status_code == 429 and api.get_json()["error"]["code"] == "rate_limited"
        assert client.get(f"/r/{secrets.token_urlsafe(24)}", environ_base=OTHER_IP).status_code == 404


def test_invitation_tokens_on_the_signup_page_count_with_the_token_pages(app, client):
    """`/events/<slug>/register?invite=<token>` looks an invitation up: guesses there are token guesses
    (issue 21 item 13: 150 of 150 went through)."""
    with app.app_context():
        slug = make_event(kind="matching_session", fee_yen=0).slug
    with limit(app, "TOKEN_RATE_LIMIT", "5/minute"):
        guesses = [client.get(f"/events/{slug}/register?invite={secrets.token_urlsafe(24)}",
                              environ_base=IP).status_code for _ in range(4)]
        assert guesses == [200] * 4  # an unknown invitation shows the empty form
        # The budget is shared with the other token pages: the fifth request is one of them.
        assert client.get(f"/r/{secrets.token_urlsafe(24)}", environ_base=IP).status_code == 404
        refused = client.get(f"/events/{slug}/register?invite={secrets.token_urlsafe(24)}", environ_base=IP)
        assert refused.status_code == 429 and "しばらくお待ちください" in refused.get_data(as_text=True)
        assert client.get(f"/r/{secrets.token_urlsafe(24)}", environ_base=IP).status_code == 429
        # The plain sign-up page (no invitation) is not a token page, and another address has its own budget.
        assert client.get(f"/events/{slug}/register", environ_base=IP).status_code == 200
        assert client.get(f"/events/{slug}/register?invite={secrets.token_urlsafe(24)}",
                          environ_base=OTHER_IP).status_code == 200


def test_the_default_token_budget_refuses_the_121st_invitation_guess(app, client):
    with app.app_context():
        slug = make_event(kind="matching_session", fee_yen=0).slug
    with limit(app, "TOKEN_RATE_LIMIT", "120/minute"):
        codes = [client.get(f"/events/{slug}/register?invite=guess{n}", environ_base=IP).status_code
                 for n in range(121)]
    assert codes == [200] * 120 + [429]


def test_calendar_feeds_have_their_own_budget(app, client):
    with limit(app, "FEED_RATE_LIMIT", "2/minute"):
        codes = [client.get(f"/feeds/person/{secrets.token_urlsafe(24)}.ics", environ_base=IP).status_code
                 for _ in range(3)]
        assert codes == [404, 404, 429]
        assert client.get(f"/r/{secrets.token_urlsafe(24)}", environ_base=IP).status_code == 404


def test_checkin_is_limited_per_staff_member_not_per_address(app, demo_ids):
    with app.app_context():
        emails = [make_user("checkin").email, make_user("checkin").email]
    door_a, door_b = app.test_client(), app.test_client()
    login(door_a, emails[0])
    login(door_b, emails[1])
    url = f"/api/v1/events/{demo_ids['event_id']}/checkins/batch"
    tokens = {door: door.get("/checkin/token").get_json()["csrf"] for door in (door_a, door_b)}

    def sync(door):
        return door.post(url, json={"scans": []}, headers={"X-CSRFToken": tokens[door]}, environ_base=IP)

    with limit(app, "CHECKIN_RATE_LIMIT", "3/minute"):
        # Both devices behind the same venue router.
        assert [sync(door_a).status_code for _ in range(4)] == [200, 200, 200, 429]
        assert sync(door_a).get_json()["error"]["code"] == "rate_limited"
        assert sync(door_b).status_code == 200
        # Reading the counters is not limited (the screen polls them).
        assert door_a.get(f"/api/v1/events/{demo_ids['event_id']}/checkins", environ_base=IP).status_code == 200


@pytest.fixture
def storage(app):
    return DatabaseStorage("database://", url=app.config["SQLALCHEMY_DATABASE_URI"])


def test_database_storage_counts_fixed_windows(app, storage):
    worker_1 = FixedWindowRateLimiter(storage)
    worker_2 = FixedWindowRateLimiter(DatabaseStorage("database://", url=app.config["SQLALCHEMY_DATABASE_URI"]))
    three = parse("3/minute")
    assert [worker_1.hit(three, "ip", "a"), worker_2.hit(three, "ip", "a"), worker_1.hit(three, "ip", "a")] == [
        True, True, True]
    assert worker_2.hit(three, "ip", "a") is False
    assert worker_1.hit(three, "ip", "b") is True  # another client has its own window
    reset_at, remaining = worker_2.get_window_stats(three, "ip", "a")
    assert remaining == 0 and time.time() < reset_at <= time.time() + 61
    # An expired window starts again from one.
    key = three.key_for("ip", "a")
    with app.app_context():
        db.session.execute(update(RateLimitCounter).where(RateLimitCounter.key == key)
                           .values(expires_at=time.time() - 1))
        db.session.commit()
    assert storage.get(key) == 0
    assert storage.incr(key, 60) == 1
    storage.clear(key)
    assert storage.get(key) == 0
    assert storage.check() is True
    assert storage.reset() >= 1


def test_reads_right_after_a_hit_answer_from_that_hit(app, storage):
    """The X-RateLimit headers after a hit need no further round trips, and say what the database says."""
    key = parse("5/minute").key_for("ip", "headers")
    assert storage.incr(key, 60) == 1
    with app.app_context():
        stored_expiry = db.session.execute(
            select(RateLimitCounter.expires_at).where(RateLimitCounter.key == key)).scalar_one()
        # Another worker hits the same window meanwhile: this worker's own hit still answers its headers.
        db.session.execute(update(RateLimitCounter).where(RateLimitCounter.key == key).values(count=4))
        db.session.commit()
    assert (storage.get(key), storage.get_expiry(key)) == (1, pytest.approx(stored_expiry))
    # A thread that has not hit reads the database.
    seen = []
    worker = threading.Thread(target=lambda: seen.append(storage.get(key)))
    worker.start()
    worker.join()
    assert seen == [4]
    # The next hit continues from the database's count, not the remembered one.
    assert storage.incr(key, 60) == 5 and storage.get(key) == 5


@pytest.mark.server
def test_gunicorn_workers_share_the_database_counters(app, database_url, tmp_path):
    """Four worker processes, one budget: the counter lives in the database, not in a worker."""
    with app.app_context():
        event_id = make_event().id
    server = start_server(database_url, secret_key=TEST_SECRET, workers=4, log_path=tmp_path / "server.log",
                          extra_env={"SIGNUP_RATE_LIMIT": "6/minute", "RATELIMIT_STORAGE_URI": "database://"})
    try:
        url = f"{server.url}/api/v1/events/{event_id}/registrations"
        # A new connection each time, so the requests spread over the workers.
        codes = [requests.post(url, json={}, headers={"Connection": "close"}, timeout=30).status_code
                 for _ in range(8)]
    finally:
        server.stop()
    assert codes == [422] * 6 + [429] * 2, codes
    with app.app_context():
        counts = db.session.execute(select(RateLimitCounter.count).where(
            RateLimitCounter.key.like("%signup%"))).scalars().all()
    assert counts == [8]
