"""Staff sessions can be revoked server-side (issue 21, item 7): a cookie copied from a browser stops
working after logout, a password change, a role change or deactivation; sessions end after the idle
timeout and the absolute lifetime; bearer tokens and participants' session keys are not affected."""

from __future__ import annotations

import pytest

from eventapp import auth
from eventapp.extensions import db
from eventapp.models import User
from eventapp.services import accounts
from tests.staff_support import PASSWORD, login, make_user, post_form

DASHBOARD = "/staff/"


class Clock:
    """A clock the test moves by hand (replaces eventapp.auth.clock)."""

    def __init__(self, start: float = 1_900_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(auth, "clock", fake)
    return fake


def _session_cookie(app, client) -> str:
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None, "no session cookie after login"
    return cookie.value


def _thief(app, cookie: str):
    """Another browser that only has a copy of the victim's session cookie."""
    other = app.test_client()
    other.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie)
    return other


def _is_in(client) -> bool:
    response = client.get(DASHBOARD)
    if response.status_code == 200:
        return True
    assert response.status_code == 302 and "/staff/login" in response.headers["Location"], response.status_code
    return False


@pytest.fixture
def staff(app):
    with app.app_context():
        user = make_user("staff")
        return user.id, user.email


@pytest.fixture
def logged_in(app, client, staff):
    login(client, staff[1])
    copy = _session_cookie(app, client)
    assert _is_in(_thief(app, copy)), "a copied cookie works while the session is valid"
    return client, copy


def test_copied_cookie_fails_after_logout(app, logged_in):
    client, copy = logged_in
    assert post_form(client, "/staff/logout").status_code == 303
    assert not _is_in(client)
    assert not _is_in(_thief(app, copy))


def test_copied_cookie_fails_after_password_change_but_the_changer_stays_in(app, logged_in):
    client, copy = logged_in
    response = post_form(client, "/staff/account/password", {
        "current_password": PASSWORD, "new_password": "shiny-new-hanamaki-pass", "confirm_password": "shiny-new-hanamaki-pass"},
        token_from="/staff/account/password")
    assert response.status_code == 303
    assert _is_in(client), "the session that changed the password stays logged in"
    assert not _is_in(_thief(app, copy))


def test_copied_cookie_fails_after_role_change(app, logged_in, staff):
    _client, copy = logged_in
    with app.app_context():
        admin = make_user("admin")
        accounts.set_role(staff[0], "checkin", acting=admin)
        db.session.commit()
    assert not _is_in(_thief(app, copy))


def test_copied_cookie_fails_after_deactivation_through_the_admin_screen(app, logged_in, staff):
    _client, copy = logged_in
    admin_client = app.test_client()
    with app.app_context():
        admin_email = make_user("admin").email
    login(admin_client, admin_email)
    assert post_form(admin_client, f"/staff/users/{staff[0]}/active", {"active": "0"}).status_code == 303
    thief = _thief(app, copy)
    assert not _is_in(thief)
    # Reactivating does not bring the old session back: the version it carries is gone for good.
    assert post_form(admin_client, f"/staff/users/{staff[0]}/active", {"active": "1"}).status_code == 303
    assert not _is_in(_thief(app, copy))


def test_logout_everywhere_ends_every_session(app, logged_in, staff):
    client, copy = logged_in
    laptop = app.test_client()
    login(laptop, staff[1])
    response = post_form(client, "/staff/account/logout-everywhere", token_from="/staff/account/password")
    assert response.status_code == 303 and "/staff/login" in response.headers["Location"]
    assert not _is_in(client) and not _is_in(laptop) and not _is_in(_thief(app, copy))
    with app.app_context():
        from eventapp.models import AuditEntry
        assert db.session.query(AuditEntry).filter_by(action="logout_all", object_id=staff[0]).count() == 1
    login(client, staff[1])  # a new login works
    assert _is_in(client)


def test_idle_timeout_and_absolute_lifetime(app, client, staff, clock):
    login(client, staff[1])
    idle, lifetime = app.config["STAFF_IDLE_TIMEOUT"], app.config["STAFF_SESSION_LIFETIME"]
    assert (idle, lifetime) == (8 * 3600, 7 * 24 * 3600)
    clock.advance(idle - 60)
    assert _is_in(client), "used within the idle timeout: still in (and the last use moves on)"
    clock.advance(idle - 60)
    assert _is_in(client)
    clock.advance(idle + 1)
    assert not _is_in(client), "more than 8 hours without a request: logged out"

    login(client, staff[1])
    logged_in_at = clock.now
    for _ in range(lifetime // (idle - 60) + 2):  # busy all week, never idle for long
        clock.advance(idle - 60)
        if not _is_in(client):
            break
    else:
        pytest.fail("a session outlived STAFF_SESSION_LIFETIME")
    assert lifetime < clock.now - logged_in_at <= lifetime + idle, "out at the lifetime, not before"


def test_session_with_a_missing_version_is_refused(app, client, staff):
    """A cookie from before this change (no version in it) is no login."""
    login(client, staff[1])
    with client.session_transaction() as session:
        session.pop(auth.VERSION_KEY)
    assert not _is_in(client)


def test_invalid_staff_session_keeps_other_session_keys(app, client, staff):
    """Only the staff login's keys go: a participant's own sign-in (my_… keys) in the same browser stays."""
    login(client, staff[1])
    with client.session_transaction() as session:
        session["my_person_id"] = 42
    with app.app_context():
        user = db.session.get(User, staff[0])
        accounts.end_sessions(user)
        db.session.commit()
    assert not _is_in(client)
    with client.session_transaction() as session:
        assert session.get("my_person_id") == 42
        assert "_user_id" not in session and auth.VERSION_KEY not in session


def test_bearer_tokens_are_unaffected_by_session_revocation(app, client, staff):
    with app.app_context():
        token = accounts.create_token(staff[1])
        db.session.commit()
    login(client, staff[1])
    assert post_form(client, "/staff/logout").status_code == 303
    response = app.test_client().get("/api/v1/events", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
