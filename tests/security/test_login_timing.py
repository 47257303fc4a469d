"""Login timing does not tell whether a staff address exists (issue 21, item 9): an unknown address is
checked against a dummy hash made the same way as real ones."""

from __future__ import annotations

import statistics
import time

import pytest

from eventapp.extensions import db
from tests.conftest import csrf_token_from
from tests.staff_support import make_user

ATTEMPTS = 15


@pytest.fixture
def unlimited_app(app, monkeypatch):
    """No login rate limit in the way: 45 wrong passwords from one address in a few seconds."""
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT", "1000000/minute")
    return app


def _median_login_time(client, email: str, token: str) -> float:
    times = []
    for _ in range(ATTEMPTS):
        started = time.perf_counter()
        response = client.post("/staff/login", data={"email": email, "password": "wrong-password-guess",
                                                     "csrf_token": token})
        times.append(time.perf_counter() - started)
        assert response.status_code == 401
    return statistics.median(times)


def test_known_and_unknown_addresses_take_the_same_time(unlimited_app):
    with unlimited_app.app_context():
        known = make_user("staff").email
    client = unlimited_app.test_client()
    token = csrf_token_from(client.get("/staff/login").get_data(as_text=True))
    # Warm up both paths (the dummy hash is made on first use).
    _median_login_time(client, "nobody@example.jp", token)
    unknown_time = _median_login_time(client, "nobody-here@example.jp", token)
    known_time = _median_login_time(client, known, token)
    ratio = unknown_time / known_time
    # Before the dummy hash the ratio was ~0.1 (11 ms vs 130 ms); the hash dominates both now.
    assert 0.5 < ratio < 2.0, (f"unknown {unknown_time * 1000:.1f} ms vs known {known_time * 1000:.1f} ms")


def test_deactivated_account_takes_as_long_as_a_wrong_password(unlimited_app):
    with unlimited_app.app_context():
        user = make_user("staff")
        user.active = False
        db.session.commit()
        inactive = user.email
        active = make_user("staff").email
    client = unlimited_app.test_client()
    token = csrf_token_from(client.get("/staff/login").get_data(as_text=True))
    _median_login_time(client, active, token)
    ratio = _median_login_time(client, inactive, token) / _median_login_time(client, active, token)
    assert 0.5 < ratio < 2.0
