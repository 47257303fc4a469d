"""Check-in pages: access by role, the screen's data attributes, session API calls with the CSRF
header, the printable list with undo, and the service worker."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from eventapp.extensions import db
from eventapp.models import CheckIn
from eventapp.services.accounts import create_user
from tests.factories import csrf_token_from, make_checkin_event, make_registration


def login(client, app, role: str = "checkin", email: str = "desk@example.jp") -> None:
    with app.app_context():
        create_user(email, role, "password-123", "受付 一郎")
        db.session.commit()
    page = client.get("/staff/login")
    response = client.post("/staff/login", data={"csrf_token": csrf_token_from(page.get_data(as_text=True)),
                                                 "email": email, "password": "password-123"})
    assert response.status_code == 303


def screen_data(html: str) -> dict:
    main = re.search(r'<main id="checkin-app"(.*?)>', html, re.S).group(1)
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', main))


def test_anonymous_is_sent_to_login(client, app):
    with app.app_context():
        event_id = make_checkin_event().id
    response = client.get(f"/checkin/events/{event_id}")
    assert response.status_code == 302 and "/staff/login" in response.headers["Location"]


def test_screen_and_session_api_need_the_csrf_header(client, app):
    with app.app_context():
        event = make_checkin_event()
        reg = make_registration(event)
        event_id, code, day_id = event.id, reg.ticket_code, event.days[0].id
    login(client, app)
    index = client.get("/checkin/")
    assert index.status_code == 200 and f"/checkin/events/{event_id}?day={day_id}" in index.get_data(as_text=True)
    page = client.get(f"/checkin/events/{event_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    data = screen_data(html)
    assert data["event-id"] == str(event_id) and data["day-id"] == str(day_id)
    assert data["api"] == f"/api/v1/events/{event_id}"
    assert "<script>" not in html  # data goes through attributes, scripts are files
    assert "vendor/jsQR.js" in html

    url = f"/api/v1/events/{event_id}/checkins"
    refused = client.post(url, json={"code": code, "nonce": "session-nonce-1"})
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "csrf_failed"
    accepted = client.post(url, json={"code": code, "nonce": "session-nonce-1"}, headers={"X-CSRFToken": data["csrf"]})
    assert accepted.status_code == 200 and accepted.get_json()["by"] == "受付 一郎"
    # Reading needs no CSRF token.
    assert client.get(url).get_json()["checked_in"] == 1
    fresh = client.get("/checkin/token").get_json()["csrf"]
    again = client.post(url, json={"code": code, "nonce": "session-nonce-2"}, headers={"X-CSRFToken": fresh})
    assert again.get_json()["result"] == "already_checked_in"


def test_list_shows_checkins_and_undo_works(client, app):
    with app.app_context():
        event = make_checkin_event()
        reg = make_registration(event, name="盛岡 次郎", furigana="もりおか じろう",)
        event_id, code = event.id, reg.ticket_code
    login(client, app)
    token = screen_data(client.get(f"/checkin/events/{event_id}").get_data(as_text=True))["csrf"]
    body = client.post(f"/api/v1/events/{event_id}/checkins", json={"code": code, "nonce": "list-nonce-1"},
                       headers={"X-CSRFToken": token}).get_json()
    listing = client.get(f"/checkin/events/{event_id}/list")
    html = listing.get_data(as_text=True)
    assert "盛岡 次郎" in html and "もりおか じろう" in html and "✔" in html
    undo_url = f"/checkin/events/{event_id}/checkins/{body['checkin_id']}/undo"
    assert undo_url in html
    response = client.post(undo_url, data={"csrf_token": csrf_token_from(html)})
    assert response.status_code == 303
    after = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "受付を取り消しました" in after and "✔" not in after
    with app.app_context():
        rows = db.session.execute(select(CheckIn)).scalars().all()
        assert len(rows) == 1 and rows[0].undone_at is not None and rows[0].undone_by_id is not None
        assert db.session.execute(select(func.count()).select_from(CheckIn)
                                  .where(CheckIn.undone_at.is_(None))).scalar_one() == 0


def test_service_worker_and_manifest(client):
    sw = client.get("/checkin/sw.js")
    assert sw.status_code == 200 and "javascript" in sw.content_type
    assert "caches" in sw.get_data(as_text=True)
    manifest = client.get("/checkin/manifest.webmanifest").get_json(force=True)
    assert manifest["start_url"] == "/checkin/" and manifest["display"] == "standalone"
    assert client.get(manifest["icons"][0]["src"]).status_code == 200
    # Chrome offers "install" only with raster icons of at least 192 and 512 px.
    from io import BytesIO

    from PIL import Image
    sizes = set()
    for icon in manifest["icons"]:
        if icon["type"] == "image/png":
            image = Image.open(BytesIO(client.get(icon["src"]).data))
            assert icon["sizes"] == f"{image.width}x{image.height}"
            sizes.add(image.width)
    assert {192, 512} <= sizes


def test_list_undo_of_a_walk_in_can_cancel_its_registration(client, app):
    from eventapp.models import Registration

    with app.app_context():
        event = make_checkin_event()
        make_registration(event, name="盛岡 次郎", furigana="もりおか じろう")
        event_id = event.id
    login(client, app)
    token = screen_data(client.get(f"/checkin/events/{event_id}").get_data(as_text=True))["csrf"]
    body = client.post(f"/api/v1/events/{event_id}/walkins", json={
        "name": "当日 花子", "furigana": "とうじつ はなこ", "nonce": "list-walkin-1"},
        headers={"X-CSRFToken": token}).get_json()
    html = client.get(f"/checkin/events/{event_id}/list").get_data(as_text=True)
    assert html.count('name="cancel_walkin"') == 1  # only the walk-in's row offers it
    undo_url = f"/checkin/events/{event_id}/checkins/{body['checkin_id']}/undo"
    response = client.post(undo_url, data={"csrf_token": csrf_token_from(html), "cancel_walkin": "1"})
    assert response.status_code == 303
    with app.app_context():
        registration = db.session.get(Registration, body["registration"]["id"])
        assert registration.status == "cancelled"
        assert db.session.get(CheckIn, body["checkin_id"]).undone_at is not None
