"""Announcement pages: the sign-up checkbox (off by default), the mailed confirmation page, the
no-login unsubscribe page with the RFC 8058 one-click POST, マイページ's setting, the staff page
(filter → preview with count → send) and the API flag."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import AnnouncementConsent, AuditEntry, OutboxMessage, Person
from eventapp.services import announcements
from tests.factories import csrf_token_from, make_event, make_registration
from tests.staff_support import login, make_user, post_form
from tests.views.test_mypage_views import csrf, setup_person, sign_in
from tests.views.test_public import signup_form_data

CONFIRM_RE = re.compile(r"http://testserver\.local(/announcements/confirm/[A-Za-z0-9_.-]+)")


def consent(app, email: str) -> AnnouncementConsent | None:
    with app.app_context():
        row = db.session.execute(select(AnnouncementConsent).join(Person).where(Person.email == email)
                                 ).scalar_one_or_none()
        if row is not None:
            db.session.expunge(row)
        return row


def subscribed(app, email: str) -> str:
    """Opt an address in (as マイページ would) and return its unsubscribe token."""
    with app.app_context():
        registration = make_registration(make_event(), email=email)
        row = announcements.set_from_mypage(registration.person, True)
        db.session.commit()
        return row.unsubscribe_token


def test_signup_checkbox_is_unticked_and_ticking_it_only_mails_a_confirmation(app, client):
    with app.app_context():
        slug = make_event().slug
    html = client.get(f"/events/{slug}/register").get_data(as_text=True)
    box = re.search(r'<input[^>]*name="announcements_opt_in"[^>]*>', html).group(0)
    assert 'type="checkbox"' in box and "checked" not in box
    assert "次回以降のイベントのお知らせを受け取る" in html
    response = client.post(f"/events/{slug}/register",
                           data=signup_form_data(html, email="hanako@example.com", announcements_opt_in="y"))
    assert response.status_code == 303
    assert consent(app, "hanako@example.com") is None
    with app.app_context():
        body = db.session.execute(select(OutboxMessage.body).where(
            OutboxMessage.kind == "announcement_opt_in")).scalar_one()
    path = CONFIRM_RE.search(body).group(1)

    # GET (what a mail scanner does) records nothing; the button's POST does.
    page = client.get(path)
    assert page.status_code == 200 and "お知らせを受け取る" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert consent(app, "hanako@example.com") is None
    done = client.post(path, data={"csrf_token": csrf_token_from(page.get_data(as_text=True))})
    assert done.status_code == 200 and "受け取りを設定しました" in done.get_data(as_text=True)
    row = consent(app, "hanako@example.com")
    assert row.status == "active" and row.source == "signup" and row.consent_version == "2026-12"
    assert client.get(path[:-3] + "xyz").status_code == 404


def test_signup_without_ticking_sends_no_confirmation(app, client):
    with app.app_context():
        slug = make_event().slug
    html = client.get(f"/events/{slug}/register").get_data(as_text=True)
    assert client.post(f"/events/{slug}/register", data=signup_form_data(html)).status_code == 303
    with app.app_context():
        kinds = db.session.execute(select(OutboxMessage.kind)).scalars().all()
    assert kinds == ["registration_confirmed"]


def test_unsubscribe_get_asks_and_one_click_post_needs_no_login_or_csrf(app):
    token = subscribed(app, "hanako@example.com")
    fresh = app.test_client()  # no cookie, no session: what a mail client's one-click POST looks like
    page = fresh.get(f"/announcements/unsubscribe/{token}")
    assert page.status_code == 200 and "配信を停止する" in page.get_data(as_text=True)
    assert consent(app, "hanako@example.com").status == "active"  # a prefetch changes nothing
    response = fresh.post(f"/announcements/unsubscribe/{token}", data="List-Unsubscribe=One-Click",
                          content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200 and "配信を停止しました" in response.get_data(as_text=True)
    row = consent(app, "hanako@example.com")
    assert row.status == "withdrawn" and row.withdrawn_via == "one_click"
    # Again (mail clients retry): still fine; an unknown token is a 404.
    assert fresh.post(f"/announcements/unsubscribe/{token}").status_code == 200
    assert fresh.get("/announcements/unsubscribe/not-a-token").status_code == 404
    assert fresh.post("/announcements/unsubscribe/not-a-token").status_code == 404
    with app.app_context():
        actions = db.session.execute(select(AuditEntry.action).order_by(AuditEntry.id)).scalars().all()
    assert actions.count("announcement_unsubscribe") == 1


def test_other_public_posts_still_need_csrf(app):
    """The exemption is for the unsubscribe endpoint only."""
    with app.app_context():
        slug = make_event().slug
    fresh = app.test_client()
    html = fresh.get(f"/events/{slug}/register").get_data(as_text=True)
    data = {k: v for k, v in signup_form_data(html).items() if k != "csrf_token"}
    assert fresh.post(f"/events/{slug}/register", data=data).status_code == 400


def test_mypage_shows_and_changes_the_setting(app, client):
    setup_person(app)
    sign_in(app, client)
    home = client.get("/my/").get_data(as_text=True)
    assert "イベントのお知らせは受け取らない設定です。" in home
    assert re.search(r'<input type="checkbox" name="opt_in" value="1">', home)
    response = client.post("/my/announcements", data={"csrf_token": csrf(client), "opt_in": "1"})
    assert response.status_code == 303
    row = consent(app, "hanako@example.com")
    assert row.status == "active" and row.source == "mypage"
    assert "受け取っています" in client.get("/my/").get_data(as_text=True)
    client.post("/my/announcements", data={"csrf_token": csrf(client)})
    assert consent(app, "hanako@example.com").status == "withdrawn"
    # Without a session: back to the sign-in page, nothing changes.
    other = app.test_client()
    assert other.post("/my/announcements", data={"opt_in": "1"}).status_code in (303, 400)
    assert consent(app, "hanako@example.com").status == "withdrawn"


@pytest.fixture
def staff_client(app, client):
    with app.app_context():
        email = make_user("staff").email
    login(client, email)
    return client


def test_staff_preview_shows_count_and_mail_then_sends_once_per_person(app, staff_client):
    subscribed(app, "a@example.com")
    subscribed(app, "b@example.com")
    with app.app_context():
        event_id = make_event(title="冬の遠野フィールドワーク").id
    url = f"/staff/events/{event_id}/announce"
    page = staff_client.get(url)
    assert page.status_code == 200 and "参加歴" in page.get_data(as_text=True)
    preview = post_form(staff_client, url, {"action": "preview", "intro": "ぜひどうぞ。"}, token_from=url)
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert re.search(r'data-testid="recipient-count">2<', html) and "ぜひどうぞ。" in html
    assert "配信停止" in html and "冬の遠野フィールドワーク" in html
    with app.app_context():
        assert db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == "announcement")).first() is None
    # A stale count is refused; the previewed one sends.
    stale = post_form(staff_client, url, {"action": "send", "intro": "ぜひどうぞ。", "expected": "3"}, token_from=url)
    assert stale.status_code == 422 and "変わりました" in stale.get_data(as_text=True)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1)
    form = {"action": "send", "intro": "ぜひどうぞ。", "expected": "2", "idempotency_key": key}
    sent = post_form(staff_client, url, form, token_from=url)
    assert sent.status_code == 303
    # A double-clicked send gets the first answer and mails nobody twice.
    again = post_form(staff_client, url, form, token_from=url)
    assert again.status_code == 303 and again.headers.get("Idempotent-Replayed") == "true"
    with app.app_context():
        rows = db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == "announcement")).scalars().all()
        assert sorted(r.to_addr for r in rows) == ["a@example.com", "b@example.com"]
        assert all(r.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" for r in rows)
        assert db.session.execute(select(AuditEntry.details).where(AuditEntry.action == "announce")
                                  ).scalar_one()["recipients"] == 2


def test_staff_page_refuses_drafts_bad_filters_and_checkin_role(app, staff_client):
    with app.app_context():
        draft_id = make_event(status="draft").id
        event_id = make_event().id
        desk = make_user("checkin").email
    page = staff_client.get(f"/staff/events/{draft_id}/announce").get_data(as_text=True)
    assert "公開中で終了前のイベントだけ" in page and 'value="send"' not in page
    bad = post_form(staff_client, f"/staff/events/{event_id}/announce",
                    {"action": "preview", "fiscal_year": "令和8", "attended": "nope"},
                    token_from=f"/staff/events/{event_id}/announce")
    assert bad.status_code == 422 and "年度は西暦の4桁" in bad.get_data(as_text=True)
    other = app.test_client()
    login(other, desk)
    assert other.get(f"/staff/events/{event_id}/announce").status_code == 403


def test_api_flag_is_false_by_default_and_strictly_boolean(app, client):
    with app.app_context():
        event_id = make_event().id
    body = {"name": "岩手 太郎", "furigana": "いわて たろう", "email": "taro@example.com", "consent_privacy": True}
    assert client.post(f"/api/v1/events/{event_id}/registrations",
                       json={**body, "announcements_opt_in": "yes"}).status_code == 422
    assert client.post(f"/api/v1/events/{event_id}/registrations", json=body).status_code == 201
    response = client.post(f"/api/v1/events/{event_id}/registrations",
                           json={**body, "email": "jiro@example.com", "announcements_opt_in": True})
    assert response.status_code == 201
    with app.app_context():
        to = db.session.execute(select(OutboxMessage.to_addr).where(
            OutboxMessage.kind == "announcement_opt_in")).scalars().all()
    assert to == ["jiro@example.com"]
    assert consent(app, "jiro@example.com") is None


def test_unsubscribe_page_and_signup_box_in_english(app):
    token = subscribed(app, "hanako@example.com")
    fresh = app.test_client()
    page = fresh.get(f"/announcements/unsubscribe/{token}?lang=en").get_data(as_text=True)
    assert "Unsubscribe from announcements" in page and "配信を停止する" not in page
    with app.app_context():
        slug = make_event().slug
    form = fresh.get(f"/events/{slug}/register?lang=en").get_data(as_text=True)
    assert "Receive announcements of future events" in form
