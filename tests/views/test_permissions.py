"""Every /staff URL checks the role: anonymous → login page, wrong role → 403, right role → allowed.

The test walks the whole URL map, so a new staff page without a role check fails here.
"""

from __future__ import annotations

import pytest

from eventapp.models.staff import ROLE_RANK
from tests.conftest import csrf_token_from, make_event, make_registration
from tests.staff_support import login, make_user

# Pages under /staff that anyone may open (the login form, its two-factor step and logging out).
PUBLIC_ENDPOINTS = {"auth.login", "auth.login_code", "auth.logout"}
# Allowed for every role, and it ends the session that asked: the walk logs in again after it.
ENDS_THE_SESSION = {"staff.logout_everywhere"}


def staff_rules(app):
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/staff")
             and r.endpoint not in PUBLIC_ENDPOINTS and r.endpoint != "static"]
    assert len(rules) >= 25, "the staff blueprint should be registered"
    return rules


def required_role(app, rule) -> str:
    view = app.view_functions[rule.endpoint]
    role = getattr(view, "required_role", None)
    assert role in ROLE_RANK, f"{rule.rule} ({rule.endpoint}) is not protected by role_required"
    return role


@pytest.fixture
def ids(app):
    # Objects are made in their own app context: requests must not share one (Flask-WTF keeps the CSRF token in g).
    with app.app_context():
        event = make_event()
        registration = make_registration(event)
        spare = make_user("staff")  # the target of account actions, so nobody locks themselves out
        return {"event_id": event.id, "registration_id": registration.id, "person_id": registration.person_id,
                "user_id": spare.id, "year": 2030}


def build(rule, ids) -> str:
    values = {}
    for arg in rule.arguments:
        # Ids of real objects; an argument another package adds gets a placeholder (a 404 is still "not 403").
        values[arg] = ids.get(arg, 1)
    return rule.build(values, append_unknown=False)[1]


def request(client, method: str, url: str, token: str):
    if method == "GET":
        return client.get(url)
    return client.open(url, method=method, data={"csrf_token": token})


def methods(rule):
    return sorted(m for m in rule.methods if m not in ("HEAD", "OPTIONS"))


def test_every_staff_url_has_a_role(app):
    for rule in staff_rules(app):
        required_role(app, rule)


def test_anonymous_is_sent_to_login(app, client, ids):
    token = csrf_token_from(client.get("/staff/login").get_data(as_text=True))
    for rule in staff_rules(app):
        url = build(rule, ids)
        for method in methods(rule):
            response = request(client, method, url, token)
            assert response.status_code == 302, (method, url, response.status_code)
            assert response.headers["Location"].startswith("/staff/login?next="), (method, url)


@pytest.mark.parametrize("role", ["checkin", "staff", "admin"])
def test_each_role_gets_exactly_its_pages(app, client, ids, role):
    with app.app_context():
        email = make_user(role).email
    login(client, email)
    token = csrf_token_from(client.get("/staff/account/password").get_data(as_text=True))
    checked = 0
    for rule in staff_rules(app):
        needed = required_role(app, rule)
        url = build(rule, ids)
        for method in methods(rule):
            response = request(client, method, url, token)
            if ROLE_RANK[role] >= ROLE_RANK[needed]:
                assert response.status_code not in (302, 401, 403) or (
                    response.status_code == 302 and not response.headers["Location"].startswith("/staff/login")
                ), (role, method, url, response.status_code)
                assert response.status_code < 500, (role, method, url)
            else:
                assert response.status_code == 403, (role, method, url, response.status_code)
            if rule.endpoint in ENDS_THE_SESSION and method != "GET":
                login(client, email)
                token = csrf_token_from(client.get("/staff/account/password").get_data(as_text=True))
            checked += 1
    assert checked >= 30
