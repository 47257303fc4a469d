"""Small HTTP contract points (issue 15, item 16): Allow on 405, one charset on CSV, the port in
PUBLIC_BASE_URL, an OpenAPI schema that says what sign-ups accept, 401 before body validation."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from eventapp.config import load_config
from tests.api.test_api import assert_error, auth, new_event, signup_body
from tests.conftest import make_event, make_registration
from tests.staff_support import login, make_user, post_form

ROOT = Path(__file__).resolve().parents[2]


def test_405_says_which_methods_are_allowed(client):
    api = client.delete("/api/v1/events")
    assert_error(api, 405, "method_not_allowed")
    assert {m.strip() for m in api.headers["Allow"].split(",")} >= {"GET", "POST"}
    page = client.put("/")
    assert page.status_code == 405 and "GET" in page.headers["Allow"]


def test_csv_downloads_have_one_charset(app, client):
    with app.app_context():
        event = make_event()
        make_registration(event)
        event_id, email = event.id, make_user("admin").email
    login(client, email)
    export = post_form(client, f"/staff/events/{event_id}/export", {"preset": "reception", "format": "csv"},
                       token_from=f"/staff/events/{event_id}")
    for response in (export, client.get("/staff/reports/2025.csv")):
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8"


def test_public_base_url_follows_the_port(tmp_path, monkeypatch):
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    monkeypatch.setenv("PORT", "5123")
    assert load_config(tmp_path)["PUBLIC_BASE_URL"] == "http://127.0.0.1:5123"
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://events.example.jp")
    assert load_config(tmp_path)["PUBLIC_BASE_URL"] == "https://events.example.jp"
    # `make run PORT=…`: the Makefile hands both to the server's environment (a recipe prints them).
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "PUBLIC_BASE_URL", "MAKEFLAGS")}
    probe = 'show-env:\n\t@echo "$$PORT $$PUBLIC_BASE_URL"\n'
    out = subprocess.run(["make", "-s", "-f", "Makefile", "-f", "-", "show-env", "PORT=5123"], input=probe,
                         text=True, capture_output=True, cwd=ROOT, env=env, check=True).stdout
    assert out.split() == ["5123", "http://127.0.0.1:5123"]


def test_schema_states_what_a_sign_up_accepts(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    props = spec["components"]["schemas"]["RegistrationCreate"]["properties"]
    assert (props["name"]["minLength"], props["name"]["maxLength"]) == (1, 100)
    assert props["furigana"]["minLength"] == 1 and "pattern" in props["furigana"]
    assert props["email"]["format"] == "email"
    assert props["consent_privacy"]["enum"] == [True]
    answers = props["answers"]
    assert answers["maxProperties"] == 200 and "maxLength" not in answers
    assert answers["additionalProperties"]["oneOf"] == [
        {"type": "string", "maxLength": 2000, "pattern": r"^[^\x00]*$"}, {"type": "boolean"}]
    assert spec["components"]["schemas"]["EventCreate"]["properties"]["slug"]["pattern"] == "^[a-z0-9]+(?:-[a-z0-9]+)*$"


def test_schema_states_what_an_event_write_accepts(client):
    """Single-field rules of services.events/services.text are in the description (issue 15, item 16)."""
    import re

    spec = client.get("/api/v1/openapi.json").get_json()
    props = spec["components"]["schemas"]["EventWrite"]["properties"]
    def accepts(field: str, value: str) -> bool:
        return re.search(props[field]["pattern"], value) is not None

    assert accepts("title", "地方複業のはじめかた") and not accepts("title", "  ") and not accepts("title", "a\nb")
    assert accepts("description", "1行目\n2行目\tタブ") and not accepts("description", "ベル\x07")
    assert not accepts("venue_name", "右から左\u202e")
    assert accepts("online_url", "https://meet.example.jp/abc?x=1") and accepts("online_url", "")
    assert not accepts("online_url", "javascript:alert(1)") and not accepts("online_url", "https:///nohost")
    assert accepts("starts_at", "2026-12-04T19:00:00+09:00") and not accepts("starts_at", "1999-12-31T00:00:00Z")
    assert props["organiser_email"]["format"] == "email"
    day = spec["components"]["schemas"]["EventDay"]["properties"]
    assert day["starts_at"]["pattern"] == props["starts_at"]["pattern"]


@pytest.mark.parametrize("body, field", [
    ({"name": "x" * 101}, "name"), ({"furigana": "Taro"}, "furigana"), ({"consent_privacy": False}, "consent_privacy"),
    ({"phone": "12"}, "phone"), ({"prefecture": "岩手"}, "prefecture"), ({"answers": {"bus": 3}}, "answers"),
])
def test_what_the_schema_refuses_the_server_refuses(app, client, body, field):
    event_id = new_event(app)
    error = assert_error(client.post(f"/api/v1/events/{event_id}/registrations", json=signup_body(**body)), 422)
    assert any(name.startswith(field) for name in error["fields"]), error


def test_what_the_schema_accepts_the_server_accepts(app, client):
    """Edge values the schema allows: a `.test` address, a well-formed phone kept as given, katakana."""
    event_id = new_event(app)
    response = client.post(f"/api/v1/events/{event_id}/registrations", json=signup_body(
        name="𠮷" * 100, furigana="ヨシダ\u3000はなこ", email="a.b+c@example.test", phone="0--0000000000",
        prefecture="", answers={"unknown\x00key": True, "other": None}))
    assert response.status_code == 201, response.get_data(as_text=True)


def test_check_in_api_answers_401_before_looking_at_the_body(app, client):
    from datetime import timedelta

    from eventapp.models.base import utcnow

    now = utcnow()  # an event happening now: inside its check-in window
    event_id = new_event(app, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=3))
    for method, url in (("post", f"/api/v1/events/{event_id}/checkins"),
                        ("post", f"/api/v1/events/{event_id}/checkins/batch"),
                        ("post", f"/api/v1/events/{event_id}/walkins")):
        for body in ({"unexpected": 1}, {}, [1, 2]):
            assert_error(getattr(client, method)(url, json=body), 401, "unauthorized")
    # with a token the same body is a 422
    with app.app_context():
        from eventapp.extensions import db
        from eventapp.services.accounts import create_token

        make_user("staff", email="door@example.jp")
        token = create_token("door@example.jp")
        db.session.commit()
    assert_error(client.post(f"/api/v1/events/{event_id}/checkins", json={"unexpected": 1}, headers=auth(token)), 422)
