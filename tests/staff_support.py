"""Helpers for staff tests: accounts per role and logging in through the real login form."""

from __future__ import annotations

from itertools import count

from eventapp.extensions import db
from tests.conftest import csrf_token_from

PASSWORD = "correct-horse-battery"
_n = count(1)


def make_user(role: str = "staff", **kw):
    from eventapp.services.accounts import create_user

    user, _ = create_user(kw.pop("email", f"{role}{next(_n)}@example.jp"), role, PASSWORD, kw.pop("name", ""))
    db.session.commit()
    return user


def login(client, email: str, password: str = PASSWORD):
    page = client.get("/staff/login")
    response = client.post("/staff/login", data={"email": email, "password": password,
                                                 "csrf_token": csrf_token_from(page.get_data(as_text=True))})
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return response


def post_form(client, url: str, data: dict | None = None, *, token_from: str | None = None, **kw):
    """POST with a CSRF token taken from `token_from` (a page the user could see), default the staff dashboard."""
    page = client.get(token_from or "/staff/")
    token = csrf_token_from(page.get_data(as_text=True))
    return client.post(url, data={**(data or {}), "csrf_token": token}, **kw)
