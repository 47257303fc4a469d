"""Service and error-page messages follow the UI language; outside a request (mails, CLI) they stay Japanese."""

from __future__ import annotations

import pytest

from eventapp.services.errors import ValidationFailed
from eventapp.services.people import validate_person
from tests.conftest import csrf_token_from, make_event


def test_signup_errors_in_english(app, client):
    # No app context held around the requests: Flask-Babel caches the locale per app context.
    with app.app_context():
        slug = make_event(slug="en-errors").slug
    page = client.get(f"/events/{slug}/register?lang=en").get_data(as_text=True)
    response = client.post(f"/events/{slug}/register?lang=en",
                           data={"csrf_token": csrf_token_from(page), "email": "not-an-email"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Please enter your name." in html
    assert "氏名を入力してください。" not in html
    # The same form in Japanese.
    response = client.post(f"/events/{slug}/register?lang=ja",
                           data={"csrf_token": csrf_token_from(page), "email": "not-an-email"})
    assert "氏名を入力してください。" in response.get_data(as_text=True)


def test_service_messages_are_japanese_outside_a_request(ctx):
    with pytest.raises(ValidationFailed) as info:
        validate_person({"name": "", "furigana": "abc", "email": "x"})
    assert info.value.fields["name"] == "氏名を入力してください。"
    assert info.value.message == "入力内容を確認してください。"


def test_error_pages_in_english(client):
    html = client.get("/no-such-page?lang=en").get_data(as_text=True)
    assert "Page not found" in html
    assert "ページが見つかりません" in client.get("/no-such-page?lang=ja").get_data(as_text=True)


def test_language_link_keeps_the_other_query_parameters(client):
    html = client.get("/?kind=fieldwork&lang=en").get_data(as_text=True)
    assert 'href="?kind=fieldwork&amp;lang=ja"' in html
