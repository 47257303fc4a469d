"""Request bodies are bounded (issue 21 item 2: an anonymous 200 MB JSON sign-up took 13 s and ~1 GB of
a worker): beyond MAX_CONTENT_LENGTH the answer is 413 in the usual JSON or HTML error shape, before the
body is parsed."""

from __future__ import annotations

import json

from tests.conftest import csrf_token_from, make_event

MB = 1024 * 1024


def test_the_default_limit_is_one_megabyte(app):
    assert app.config["MAX_CONTENT_LENGTH"] == MB


def test_a_too_large_api_body_is_a_json_413(ctx, client):
    event = make_event()
    body = json.dumps({"name": "x" * (2 * MB)})
    response = client.post(f"/api/v1/events/{event.id}/registrations", data=body,
                           content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
    # Just under the limit the body is read and validated as usual.
    small = client.post(f"/api/v1/events/{event.id}/registrations",
                        data=json.dumps({"name": "x" * (MB - 1000)}), content_type="application/json")
    assert small.status_code == 422
    assert small.get_json()["error"]["code"] == "invalid"


def test_a_too_large_form_is_an_html_413(ctx, client):
    event = make_event()
    token = csrf_token_from(client.get(f"/events/{event.slug}/register").get_data(as_text=True))
    response = client.post(f"/events/{event.slug}/register",
                           data={"csrf_token": token, "occupation": "x" * (2 * MB)})
    assert response.status_code == 413
    assert response.mimetype == "text/html"
    assert "送信された内容が大きすぎます" in response.get_data(as_text=True)


def test_a_too_large_staff_form_is_refused_too(app, client):
    from tests.staff_support import login, make_user

    with app.app_context():
        login(client, make_user("staff").email)
    response = client.post("/staff/events/new", data={"description": "x" * (2 * MB)})
    assert response.status_code == 413
    assert "送信された内容が大きすぎます" in response.get_data(as_text=True)
