"""Retry-safe sign-up: the Idempotency-Key header of the API and the sign-up form's hidden one-time key."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from eventapp.extensions import db
from eventapp.models import IdempotencyKey, Registration
from eventapp.models.base import utcnow
from eventapp.models.idempotency import KEY_MAX
from tests.api.test_api import assert_error, new_event, signup_body
from tests.live_server import PROJECT_ROOT
from tests.views.test_public import signup_form_data


def _registrations(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Registration))


def _post(client, event_id: int, body: dict, key: str | None = "key-0001", **headers):
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(f"/api/v1/events/{event_id}/registrations", json=body, headers=headers)


def test_a_retry_with_the_same_key_gets_the_original_response_instead_of_409(app, client):
    event_id = new_event(app, capacity=1)
    first = _post(client, event_id, signup_body())
    assert first.status_code == 201, first.get_data(as_text=True)
    retry = _post(client, event_id, signup_body())
    assert retry.status_code == 201
    assert retry.get_data() == first.get_data()  # the same body, byte for byte
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert _registrations(app) == 1
    # Without the key (or with another), the same sign-up is the usual duplicate.
    assert _post(client, event_id, signup_body(), key=None).status_code == 409
    assert _post(client, event_id, signup_body(), key="key-0002").status_code == 409


def test_the_replay_is_the_original_even_after_the_registration_changed(app, client):
    event_id = new_event(app, capacity=1)
    _post(client, event_id, signup_body(email="first@example.com"), key="k-first")
    waiting = _post(client, event_id, signup_body(email="second@example.com"), key="k-second")
    assert waiting.json["registration"]["status"] == "waitlisted"
    token = _post(client, event_id, signup_body(email="first@example.com"), key="k-first").json
    client.post(f"/api/v1/registrations/{token['registration']['manage_token']}/cancel")  # frees the seat
    again = _post(client, event_id, signup_body(email="second@example.com"), key="k-second")
    assert again.get_data() == waiting.get_data()  # what the first attempt was told, not the state now


def test_the_same_key_with_another_body_is_422_idempotency_key_reused(app, client):
    event_id = new_event(app)
    assert _post(client, event_id, signup_body()).status_code == 201
    response = _post(client, event_id, signup_body(email="other@example.com"))
    assert_error(response, 422, "idempotency_key_reused")
    assert _registrations(app) == 1


def test_keys_are_scoped_per_event_and_client(app, client):
    one, two = new_event(app), new_event(app)
    assert _post(client, one, signup_body()).status_code == 201
    # The same key for another event is another key.
    second = _post(client, two, signup_body())
    assert second.status_code == 201 and "Idempotent-Replayed" not in second.headers
    with app.app_context():
        scopes = db.session.scalars(select(IdempotencyKey.scope)).all()
    assert len(set(scopes)) == 2 and all(":anonymous" in s for s in scopes)


def test_refused_sign_ups_are_not_stored_and_may_be_retried_with_the_same_key(app, client):
    event_id = new_event(app)
    bad = _post(client, event_id, signup_body(name=""))
    assert bad.status_code == 422
    good = _post(client, event_id, signup_body())
    assert good.status_code == 201 and "Idempotent-Replayed" not in good.headers


def test_a_key_as_long_as_its_column_is_accepted(app, client):
    assert IdempotencyKey.__table__.c.key.type.length == KEY_MAX == 200
    event_id = new_event(app)
    assert _post(client, event_id, signup_body(), key="k" * KEY_MAX).status_code == 201
    assert _post(client, event_id, signup_body(), key="k" * KEY_MAX).headers["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("key", ["", " ", "a" * 201, "鍵", "a\tb"])
def test_malformed_keys_are_400(app, client, key):
    response = _post(client, new_event(app), signup_body(), key=key)
    assert_error(response, 400, "invalid_idempotency_key")
    assert _registrations(app) == 0


def test_keys_expire_after_24_hours_and_purge_expired_deletes_them(app, client, database_url):
    event_id = new_event(app)
    first = _post(client, event_id, signup_body())
    assert first.status_code == 201
    with app.app_context():
        stored = db.session.scalars(select(IdempotencyKey)).one()
        assert timedelta(hours=23, minutes=59) < stored.expires_at - stored.created_at <= timedelta(hours=24)
        db.session.execute(update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    # Expired: the key no longer answers for the first sign-up (the duplicate is the usual 409) …
    assert _post(client, event_id, signup_body()).status_code == 409
    # … and may be used again for a new one (the expired row gives way).
    fresh = _post(client, event_id, signup_body(email="fresh@example.com"))
    assert fresh.status_code == 201 and "Idempotent-Replayed" not in fresh.headers
    with app.app_context():
        db.session.execute(update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        db.session.remove()
    env = {"DATABASE_URL": database_url, "SECRET_KEY": "x", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "eventapp", "purge-expired"],
                            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "deleted 1 expired idempotency keys" in result.stdout
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0


def test_the_key_header_is_described_in_openapi(client):
    spec = client.get("/api/v1/openapi.json").json
    parameters = spec["paths"]["/api/v1/events/{event_id}/registrations"]["post"]["parameters"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in parameters)


# --------------------------------------------------------------------------- the HTML form


def _form(client, slug: str) -> tuple[str, str]:
    html = client.get(f"/events/{slug}/register").get_data(as_text=True)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', html)
    assert key, "no one-time key in the sign-up form"
    return html, key.group(1)


def test_a_resubmitted_sign_up_form_redirects_to_the_same_registration(app, client):
    with app.app_context():
        from tests.factories import make_event
        slug = make_event().slug
    html, key = _form(client, slug)
    assert _form(client, slug)[1] != key  # one key per form shown
    data = {**signup_form_data(html), "idempotency_key": key}
    first = client.post(f"/events/{slug}/register", data=data)
    assert first.status_code == 303 and "/r/" in first.headers["Location"]
    again = client.post(f"/events/{slug}/register", data=data)
    assert again.status_code == 303 and again.headers["Location"] == first.headers["Location"]
    assert _registrations(app) == 1
    changed = client.post(f"/events/{slug}/register", data={**data, "email": "changed@example.com"})
    assert changed.status_code == 422 and "別の内容" in changed.get_data(as_text=True)
    # Without the key, the resubmission is refused as a duplicate, as before.
    plain = client.post(f"/events/{slug}/register", data={k: v for k, v in data.items() if k != "idempotency_key"})
    assert plain.status_code == 422
    assert _registrations(app) == 1


def test_the_form_keeps_its_key_when_shown_again_with_errors(app, client):
    with app.app_context():
        from tests.factories import make_event
        slug = make_event().slug
    html, key = _form(client, slug)
    response = client.post(f"/events/{slug}/register", data={**signup_form_data(html, name=""), "idempotency_key": key})
    assert response.status_code == 422
    assert f'name="idempotency_key" value="{key}"' in response.get_data(as_text=True)
