"""The staff mail pages: compose → preview (another recipient) → test → confirm → send or schedule, the list
and cancelling; mistakes come back as 422 with the message, never a 500 or a mail."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.formatting import JST
from eventapp.models import OutboxMessage, StaffMail
from eventapp.services import mail
from tests.factories import make_event, make_registration
from tests.staff_support import login, make_user, post_form


@pytest.fixture
def setup(app, client):
    with app.app_context():
        user = make_user("staff", email="mail-staff@example.jp")
        event = make_event(title="花巻ぶどう収穫", capacity=2)
        first = make_registration(event, name="岩手 一郎")
        second = make_registration(event, name="盛岡 花子")
        waiting = make_registration(event, name="待機 三郎")
        db.session.query(OutboxMessage).delete()
        db.session.commit()
        login(client, user.email)
        return {"event": event.id, "first": first.id, "second": second.id, "waiting": waiting.id,
                "email": user.email}


def staff_kinds(app) -> list[tuple[str, str]]:
    with app.app_context():
        return [(m.kind, m.to_addr) for m in db.session.execute(
            select(OutboxMessage).order_by(OutboxMessage.id)).scalars()]


def compose(client, event_id: int, **overrides):
    url = f"/staff/events/{event_id}/message"
    data = {"audience": "confirmed", "subject": "{event_title}: 集合場所", "body": "{name} 様\n{{持ち物}}は長靴です。",
            **overrides}
    return post_form(client, url, data, token_from=url)


def mail_id_from(response) -> int:
    return int(re.search(r"/mails/(\d+)$", response.headers["Location"]).group(1))


def test_compose_preview_test_confirm_and_send(app, client, setup, sent_mail):
    event_id = setup["event"]
    page = client.get(f"/staff/events/{event_id}/message").get_data(as_text=True)
    assert "参加確定の方(2名)" in page and "キャンセル待ちの方(1名)" in page

    response = compose(client, event_id, body="{nmae} 様 {name.__class__}")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "使えない差し込み項目があります: {nmae}、{name.__class__}。" in html
    assert staff_kinds(app) == []

    response = compose(client, event_id)
    assert response.status_code == 303
    mail_id = mail_id_from(response)
    preview = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "花巻ぶどう収穫: 集合場所" in preview and "岩手 一郎 様" in preview and "{持ち物}は長靴です。" in preview
    other = client.get(f"/staff/events/{event_id}/mails/{mail_id}?r={setup['second']}").get_data(as_text=True)
    assert "盛岡 花子 様" in other
    # A waitlisted person is not a recipient of this mail, and a huge id is just "the first".
    for r in (setup["waiting"], "9" * 30):
        response = client.get(f"/staff/events/{event_id}/mails/{mail_id}?r={r}")
        assert response.status_code == 200 and "岩手 一郎 様" in response.get_data(as_text=True)

    preview_url = f"/staff/events/{event_id}/mails/{mail_id}"
    response = post_form(client, f"{preview_url}/test", {"r": setup["second"]}, token_from=preview_url)
    assert response.status_code == 303
    assert staff_kinds(app) == [("staff_message_test", setup["email"])]
    with app.app_context():
        mail.deliver_due()
    [test_mail] = sent_mail()
    assert test_mail["To"] == setup["email"] and test_mail["Subject"] == "【テスト】花巻ぶどう収穫: 集合場所"
    assert "盛岡 花子 様" in test_mail.get_body(("plain",)).get_content()

    confirm = client.get(f"{preview_url}/confirm").get_data(as_text=True)
    assert "2名に送信します" in confirm
    response = post_form(client, f"{preview_url}/send", {"when": "now"}, token_from=f"{preview_url}/confirm")
    assert response.status_code == 422 and "チェックを入れてください" in response.get_data(as_text=True)
    assert len(staff_kinds(app)) == 1  # still only the test

    response = post_form(client, f"{preview_url}/send", {"when": "now", "confirm": "yes"},
                         token_from=f"{preview_url}/confirm")
    assert response.status_code == 303
    kinds = staff_kinds(app)
    assert [k for k, _ in kinds] == ["staff_message_test", "staff_message", "staff_message"]
    listing = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "送信済み" in listing and "2名" in listing
    # Sent: the draft pages no longer change or send it.
    response = post_form(client, f"{preview_url}/send", {"when": "now", "confirm": "yes"}, token_from=preview_url)
    assert response.status_code == 303 and len(staff_kinds(app)) == 3
    assert client.get(f"/staff/events/{event_id}/mails/{mail_id}/edit").status_code == 303


def test_schedule_in_jst_list_and_cancel(app, client, setup):
    event_id = setup["event"]
    mail_id = mail_id_from(compose(client, event_id, audience="all"))
    url = f"/staff/events/{event_id}/mails/{mail_id}"
    past = (datetime.now(JST) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    response = post_form(client, f"{url}/send", {"when": "later", "scheduled_at": past, "confirm": "yes"},
                         token_from=f"{url}/confirm")
    assert response.status_code == 422 and "送信日時は現在より後にしてください。" in response.get_data(as_text=True)
    response = post_form(client, f"{url}/send", {"when": "later", "scheduled_at": "あした", "confirm": "yes"},
                         token_from=f"{url}/confirm")
    assert response.status_code == 422
    later = (datetime.now(JST) + timedelta(days=1)).replace(second=0, microsecond=0)
    response = post_form(client, f"{url}/send", {"when": "later", "scheduled_at": later.strftime("%Y-%m-%dT%H:%M"),
                                                 "confirm": "yes"}, token_from=f"{url}/confirm")
    assert response.status_code == 303
    with app.app_context():
        row = db.session.get(StaffMail, mail_id)
        assert row.status == "scheduled" and row.scheduled_at == later  # JST typed, the same instant stored
    assert staff_kinds(app) == []
    listing = client.get(f"/staff/events/{event_id}/mails").get_data(as_text=True)
    assert "送信予約" in listing and "予約を取り消す" in listing

    response = post_form(client, f"{url}/cancel", token_from=f"/staff/events/{event_id}/mails")
    assert response.status_code == 303
    with app.app_context():
        assert db.session.get(StaffMail, mail_id).status == "cancelled"
    assert "取り消し" in client.get(f"/staff/events/{event_id}/mails").get_data(as_text=True)


def test_a_mail_of_another_event_is_not_found(app, client, setup):
    mail_id = mail_id_from(compose(client, setup["event"]))
    with app.app_context():
        other = make_event(title="別のイベント").id
    assert client.get(f"/staff/events/{other}/mails/{mail_id}").status_code == 404
    assert post_form(client, f"/staff/events/{other}/mails/{mail_id}/cancel").status_code == 404
    with app.app_context():
        assert db.session.get(StaffMail, mail_id).status == "draft"


def test_the_audit_log_shows_the_mail_and_links_to_it(app, client, setup):
    event_id = setup["event"]
    mail_id = mail_id_from(compose(client, event_id))
    url = f"/staff/events/{event_id}/mails/{mail_id}"
    post_form(client, f"{url}/test", token_from=url)
    assert post_form(client, f"{url}/send", {"when": "now", "confirm": "yes"}, token_from=url).status_code == 303
    with app.app_context():
        admin = make_user("admin").email
    admin_client = app.test_client()
    login(admin_client, admin)
    page = admin_client.get("/staff/audit?object_type=staff_mail").get_data(as_text=True)
    assert "テスト送信" in page and "「{event_title}: 集合場所」を2名に送信" in page
    assert f'href="/staff/events/{event_id}/mails/{mail_id}"' in page
