"""Admin screens (accounts, audit log, privacy notice), password change, login rate limit, exports over HTTP."""

from __future__ import annotations

import csv
import io

import pytest

from eventapp.auth import verify_password
from eventapp.extensions import db
from eventapp.models import AuditEntry, Person, User
from tests.conftest import csrf_token_from, make_event, make_registration
from tests.staff_support import PASSWORD, login, make_user, post_form


@pytest.fixture
def admin_client(app, client):
    with app.app_context():
        email = make_user("admin", name="管理 者").email
    login(client, email)
    return client


def test_admin_creates_changes_and_deactivates_staff(app, admin_client):
    response = post_form(admin_client, "/staff/users", {"email": "Volunteer@Example.jp", "role": "checkin",
                                                        "name": "受付 ボランティア", "password": ""})
    assert response.status_code == 303
    page = admin_client.get("/staff/users").get_data(as_text=True)
    assert "初期パスワード" in page and "volunteer@example.jp" in page
    with app.app_context():
        user_id = db.session.query(User).filter_by(email="volunteer@example.jp").one().id
    assert post_form(admin_client, f"/staff/users/{user_id}/role", {"role": "staff"}).status_code == 303
    assert post_form(admin_client, f"/staff/users/{user_id}/active", {"active": "0"}).status_code == 303
    response = post_form(admin_client, "/staff/users", {"email": "volunteer@example.jp", "role": "staff"})
    assert response.status_code == 422 and "既に登録されています" in response.get_data(as_text=True)
    with app.app_context():
        user = db.session.get(User, user_id)
        assert (user.role, user.active) == ("staff", False)
        actions = [e.action for e in db.session.query(AuditEntry).order_by(AuditEntry.id)]
        assert actions == ["create", "role", "deactivate"]
    audit_page = admin_client.get("/staff/audit").get_data(as_text=True)
    assert "volunteer@example.jp: staff" not in audit_page  # role change reads checkin → staff
    assert "volunteer@example.jp: checkin → staff" in audit_page
    assert admin_client.get("/staff/audit?action=deactivate").get_data(as_text=True).count("無効化") >= 1


def test_deactivated_user_cannot_log_in(app, client):
    with app.app_context():
        user = make_user("staff")
        user.active = False
        db.session.commit()
        email = user.email
    page = client.get("/staff/login").get_data(as_text=True)
    response = client.post("/staff/login", data={"email": email, "password": PASSWORD,
                                                 "csrf_token": csrf_token_from(page)})
    assert response.status_code == 401
    assert "メールアドレスまたはパスワードが正しくありません" in response.get_data(as_text=True)


def test_password_change(app, client):
    with app.app_context():
        email = make_user("checkin").email
    login(client, email)
    response = post_form(client, "/staff/account/password", {"current_password": "nope", "new_password": "x",
                                                             "confirm_password": "x"})
    assert response.status_code == 422 and "現在のパスワードが正しくありません" in response.get_data(as_text=True)
    response = post_form(client, "/staff/account/password", {
        "current_password": PASSWORD, "new_password": "brand-new-passphrase", "confirm_password": "brand-new-passphrase"})
    assert response.status_code == 303
    with app.app_context():
        assert verify_password(db.session.query(User).filter_by(email=email).one(), "brand-new-passphrase")


def test_login_is_rate_limited_per_ip_with_a_friendly_page(app, client):
    app.config["LOGIN_RATE_LIMIT"] = "3/minute"
    try:
        page = client.get("/staff/login", environ_base={"REMOTE_ADDR": "203.0.113.7"}).get_data(as_text=True)
        token = csrf_token_from(page)
        codes = [client.post("/staff/login", data={"email": "a@example.jp", "password": "guess", "csrf_token": token},
                             environ_base={"REMOTE_ADDR": "203.0.113.7"}).status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429]
        blocked = client.post("/staff/login", data={"email": "a@example.jp", "password": "guess",
                                                    "csrf_token": token}, environ_base={"REMOTE_ADDR": "203.0.113.7"})
        assert "しばらくお待ちください" in blocked.get_data(as_text=True)
        # Reading the form is never limited, and another address is not affected.
        assert client.get("/staff/login", environ_base={"REMOTE_ADDR": "203.0.113.7"}).status_code == 200
        other = client.post("/staff/login", data={"email": "a@example.jp", "password": "guess", "csrf_token": token},
                            environ_base={"REMOTE_ADDR": "203.0.113.8"})
        assert other.status_code == 401
    finally:
        app.config["LOGIN_RATE_LIMIT"] = "10000/minute"


def test_session_cookie_is_httponly_and_samesite(app, client):
    with app.app_context():
        email = make_user("staff").email
    response = login(client, email)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_privacy_notice_versions_and_anonymise_from_person_page(app, admin_client):
    response = post_form(admin_client, "/staff/privacy", {"purpose": "", "body": "b", "contact": "c"})
    assert response.status_code == 422 and "入力してください" in response.get_data(as_text=True)
    response = post_form(admin_client, "/staff/privacy", {"purpose": "改定した利用目的", "body": "本文",
                                                          "contact": "窓口", "version": "2030-01"})
    assert response.status_code == 303
    assert "改定した利用目的" in admin_client.get("/privacy").get_data(as_text=True)

    with app.app_context():
        registration = make_registration(make_event(), name="削除 依頼")
        person_id = registration.person_id
        assert registration.consent_version == "2030-01"
    url = f"/staff/people/{person_id}/anonymise"
    post_form(admin_client, url, {})  # without the confirmation box nothing happens
    with app.app_context():
        assert db.session.get(Person, person_id).name == "削除 依頼"
    assert post_form(admin_client, url, {"confirm": "yes"}).status_code == 303
    page = admin_client.get(f"/staff/people/{person_id}").get_data(as_text=True)
    assert "匿名化されました" in page and "削除 依頼" not in page


def test_export_download_over_http(app, admin_client):
    with app.app_context():
        event = make_event()
        make_registration(event, name="=cmd|' /C calc'!A0", furigana="あ")
        make_registration(event, name="岩手 花子", furigana="いわて はなこ")
        event_id = event.id
    response = post_form(admin_client, f"/staff/events/{event_id}/export", {"preset": "reception", "format": "csv"},
                         token_from=f"/staff/events/{event_id}")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert [r[1] for r in rows[1:]] == ["'=cmd|' /C calc'!A0", "岩手 花子"]
    response = post_form(admin_client, f"/staff/events/{event_id}/export", {"preset": "bogus", "format": "csv"})
    assert response.status_code == 303


def test_checkin_volunteer_sees_a_limited_dashboard_and_a_clear_403(app, client):
    with app.app_context():
        make_event(title="夏油温泉 交流会")
        email = make_user("checkin").email
    login(client, email)
    html = client.get("/staff/").get_data(as_text=True)
    assert "夏油温泉 交流会" in html
    assert "イベントを作成" not in html and "参加者検索" not in html
    response = client.get("/staff/events")
    assert response.status_code == 403
    assert "この画面を開く権限がありません" in response.get_data(as_text=True)
