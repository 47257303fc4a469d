"""CSRF: every state-changing route of the URL map refuses a request without a valid token, and no GET
route changes anything. The tests walk app.url_map, so a new route is covered the day it is added."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from eventapp.extensions import db
from eventapp.models import AuditEntry
from tests.conftest import csrf_token_from
from tests.security.conftest import sign_in_mypage, url_values
from tests.security.support import build, fingerprint, methods
from tests.staff_support import login, make_user

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}

# API writes that take no session at all: the public sign-up (anyone may sign up; the body is the request)
# and the participant's own cancel (the secret manage token in the URL is the credential). A cookie adds
# nothing there, so a forged cross-site request can do no more than the attacker could do directly.
API_WRITES_WITHOUT_SESSION = {"api.create_registration", "api.cancel_registration"}
# Page routes exempt from CSRF on purpose: the RFC 8058 one-click unsubscribe POST comes from a mail client
# with no cookie and no form token; the secret token in its URL is the credential, and all it does is stop
# announcements (docs/security.md, 特定電子メール法). Covered by tests/views/test_announcement_views.py.
HTML_WRITES_WITHOUT_CSRF = {"public.announcement_unsubscribe"}
# API writes the check-in screen makes with the staff session: they need the X-CSRFToken header.
API_SESSION_WRITES_WITH_CSRF_HEADER = {"checkin_api.create_checkin", "checkin_api.checkin_batch",
                                       "checkin_api.undo_checkin", "checkin_api.create_walkin",
                                       "payments_api.create_payment"}

# Valid bodies, so that a refusal is about the token and not about the payload.
API_BODIES = {
    "checkin_api.create_checkin": lambda ids: {"registration_id": ids["registration_id"], "nonce": "csrf-test-0001"},
    "checkin_api.checkin_batch": lambda ids: {"scans": []},
    "checkin_api.create_walkin": lambda ids: {"name": "当日 太郎", "furigana": "とうじつ たろう",
                                              "email": "walkin@example.jp", "nonce": "csrf-test-0002"},
    "payments_api.create_payment": lambda ids: {"registration_id": ids["registration_id"],
                                                "nonce": "csrf-test-0003"},
    "api.create_event": lambda ids: {"slug": "csrf-probe", "title": "CSRF", "kind": "fieldwork"},
    "api.patch_event": lambda ids: {"title": "書き換え"},
}


def unsafe_rules(app, *, api: bool):
    rules = [(rule, m) for rule in app.url_map.iter_rules() for m in methods(rule)
             if m in UNSAFE and rule.rule.startswith("/api/") == api]
    return rules


@pytest.fixture
def admin_client(app, client, demo_ids):
    with app.app_context():
        email = make_user("admin").email
    login(client, email)
    return client


def test_every_html_form_route_refuses_a_missing_or_wrong_token(app, admin_client, demo_ids):
    rules = unsafe_rules(app, api=False)
    assert len(rules) >= 35, "the whole app should be registered"
    real_token = csrf_token_from(admin_client.get("/staff/account/password").get_data(as_text=True))
    with app.app_context():
        before = fingerprint()
    from eventapp.extensions import csrf
    exempt = {endpoint for endpoint, view in app.view_functions.items()
              if f"{view.__module__}.{view.__name__}" in csrf._exempt_views and not endpoint.startswith(("api.", "checkin_api."))}
    assert exempt == HTML_WRITES_WITHOUT_CSRF  # a new exemption has to be argued for here
    for rule, method in rules:
        if rule.endpoint in HTML_WRITES_WITHOUT_CSRF:
            continue
        url = build(rule, url_values(rule, demo_ids))
        for data in ({}, {"csrf_token": "forged" + real_token[6:]}, {"csrf_token": ""}):
            response = admin_client.open(url, method=method, data={"name": "x", **data})
            assert response.status_code == 400, (rule.endpoint, method, data, response.status_code)
            assert "ページの有効期限が切れました" in response.get_data(as_text=True), rule.endpoint
    with app.app_context():
        assert fingerprint() == before
    # Still logged in (the refused logout did nothing), and the real token does work.
    assert admin_client.get("/staff/").status_code == 200
    response = admin_client.post("/staff/logout", data={"csrf_token": real_token})
    assert response.status_code in (302, 303)


def test_api_writes_do_not_accept_a_session_cookie_without_a_token(app, admin_client, demo_ids):
    rules = unsafe_rules(app, api=True)
    assert len(rules) >= 8
    with app.app_context():
        before = fingerprint()
    checked = 0
    for rule, method in rules:
        if rule.endpoint in API_WRITES_WITHOUT_SESSION:
            continue
        url = build(rule, url_values(rule, demo_ids))
        body = API_BODIES.get(rule.endpoint, lambda ids: {})(demo_ids)
        response = admin_client.open(url, method=method, json=body)
        error = response.get_json()["error"]
        if rule.endpoint in API_SESSION_WRITES_WITH_CSRF_HEADER:
            assert (response.status_code, error["code"]) == (400, "csrf_failed"), (rule.endpoint, error)
            wrong = admin_client.open(url, method=method, json=body, headers={"X-CSRFToken": "forged"})
            assert wrong.status_code == 400, rule.endpoint
        else:
            # Bearer-only: the admin's session counts for nothing.
            assert (response.status_code, error["code"]) == (401, "unauthorized"), (rule.endpoint, error)
        checked += 1
    assert checked >= 6
    with app.app_context():
        assert fingerprint() == before


def test_session_writes_work_with_the_header_token(app, admin_client, demo_ids):
    """The other side of the check above: the check-in screen's way (session + X-CSRFToken) is accepted."""
    token = admin_client.get("/checkin/token").get_json()["csrf"]
    response = admin_client.post(f"/api/v1/events/{demo_ids['event_id']}/checkins/batch", json={"scans": []},
                                 headers={"X-CSRFToken": token})
    assert response.status_code == 200, response.get_json()


def test_public_api_writes_ignore_the_session(app, admin_client, client, demo_ids):
    """Sign-up and cancel by manage token answer a logged-in admin exactly as an anonymous caller."""
    url = f"/api/v1/registrations/{'x' * 32}/cancel"
    anonymous = app.test_client().post(url, json={})
    as_admin = admin_client.post(url, json={})
    assert anonymous.status_code == as_admin.status_code == 404
    signup = f"/api/v1/events/{demo_ids['event_id']}/registrations"
    assert (app.test_client().post(signup, json={}).status_code
            == admin_client.post(signup, json={}).status_code == 422)


def test_no_get_route_changes_state(app, admin_client, demo_ids):
    rules = [r for r in app.url_map.iter_rules() if "GET" in r.methods]
    assert len(rules) >= 50
    with app.app_context():
        from eventapp.services.accounts import create_token
        bearer = {"Authorization": f"Bearer {create_token(make_user('admin').email)}"}
        db.session.commit()
    sign_in_mypage(app, admin_client, demo_ids["my_email"])  # the participant's pages answer 200 too
    with app.app_context():
        before = fingerprint()
        before_audit_max = db.session.execute(select(func.coalesce(func.max(AuditEntry.id), 0))).scalar_one()
    statuses = {}
    for rule in rules:
        # The staff API reads need a bearer token (the session does not count there).
        headers = bearer if rule.rule.startswith("/api/") else {}
        response = admin_client.get(build(rule, url_values(rule, demo_ids)), headers=headers)
        statuses[rule.endpoint] = response.status_code
        assert response.status_code < 500, (rule.rule, response.status_code)
    with app.app_context():
        after = fingerprint()
        # Downloads of personal data are audited on purpose (who exported what, when): that is a record
        # of the read, not a change to the data. Every other table must be byte-for-byte unchanged.
        new_audit = db.session.execute(select(AuditEntry.action).where(
            AuditEntry.id > before_audit_max)).scalars().all()
    assert set(new_audit) <= {"export"}, new_audit
    changed = {t: (before[t], after[t]) for t in before if before[t] != after[t] and t != "audit_log"}
    assert not changed, f"GET requests changed {changed}"
    # The walk really reached the pages: all answer 200 but the login form and its two-factor step
    # (redirect a logged-in user) and the invitation (forwards to the sign-up form).
    others = {e: s for e, s in statuses.items() if s != 200}
    assert set(others) <= {"auth.login", "auth.login_code", "matching_public.invitation"}, others
