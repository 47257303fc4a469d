"""Online seminars have no QR ticket / 受付票: the manage page, マイページ, mails and invite give the join URL
(from the time staff reveal it) and explain the 出席コード; the other kinds keep their QR tickets."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import ics
import pytest
from icalendar import Calendar

from eventapp.extensions import db
from eventapp.models.base import utcnow
from eventapp.services import mail
from tests.factories import future, make_event, make_registration

ZOOM = "https://zoom.example.jp/j/777?pwd=reveal-later"


def online(**overrides):
    start = future(days=10, hour=19)
    data = {"kind": "online_seminar", "title": "オンライン移住相談会", "starts_at": start,
            "ends_at": start + timedelta(hours=2), "online_url": ZOOM, "venue_name": "", "venue_address": "",
            "capacity": 5}
    data.update(overrides)
    return make_event(**data)


def page_text(response) -> str:
    assert response.status_code == 200
    return html.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))


def invite_description(client, registration) -> str:
    response = client.get(f"/r/{registration.manage_token}/invite.ics")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    (vevent,) = Calendar.from_ical(text).walk("VEVENT")
    (other,) = ics.Calendar(text).events
    assert str(vevent["UID"]) == other.uid
    description = str(vevent["DESCRIPTION"])
    assert description == other.description  # both parsers read the same text
    return description


@pytest.mark.parametrize("kind", ["onsite_seminar", "fieldwork", "matching_session"])
def test_onsite_kinds_keep_the_qr_ticket(ctx, client, kind):
    registration = make_registration(make_event(kind=kind))
    body = client.get(f"/r/{registration.manage_token}").get_data(as_text=True)
    assert "受付用QRコード" in body and "<svg" in body and "受付票(PDF)" in body
    assert "当日、受付でこの画面をご提示ください" in body
    assert client.get(f"/r/{registration.manage_token}/ticket.png").status_code == 200
    assert client.get(f"/r/{registration.manage_token}/ticket.pdf").status_code == 200


def test_online_seminar_has_no_ticket_but_the_join_url_and_the_attendance_code(ctx, client):
    registration = make_registration(online())
    body = client.get(f"/r/{registration.manage_token}").get_data(as_text=True)
    text = page_text(client.get(f"/r/{registration.manage_token}"))
    assert "<svg" not in body and "ticket.pdf" not in body and "ticket.png" not in body
    assert "受付用QRコード" not in text and "受付でこの画面" not in text
    assert ZOOM in text and "オンラインで参加する" in text
    assert "出席コード" in text
    assert client.get(f"/r/{registration.manage_token}/ticket.png").status_code == 404
    assert client.get(f"/r/{registration.manage_token}/ticket.pdf").status_code == 404
    assert ZOOM in invite_description(client, registration)


def test_join_url_stays_hidden_until_the_reveal_time(ctx, client):
    event = online(online_url_reveal_at=future(days=9, hour=12))
    registration = make_registration(event)
    text = page_text(client.get(f"/r/{registration.manage_token}"))
    assert "zoom.example.jp" not in text
    assert "参加URLは" in text and "12:00からこのページでお知らせします" in text
    assert "zoom.example.jp" not in invite_description(client, registration)

    event.online_url_reveal_at = utcnow() - timedelta(minutes=1)  # staff reveal it now
    db.session.commit()
    assert ZOOM in page_text(client.get(f"/r/{registration.manage_token}"))
    assert ZOOM in invite_description(client, registration)


def test_reveal_time_after_the_event_is_refused(ctx):
    from eventapp.services.errors import ValidationFailed
    from eventapp.services.events import update_event

    event = online()
    with pytest.raises(ValidationFailed) as failure:
        update_event(event.id, {"online_url_reveal_at": event.ends_at + timedelta(minutes=1)})
    assert "online_url_reveal_at" in failure.value.fields
    db.session.rollback()


def _bodies(sent_mail) -> dict[str, str]:
    mail.deliver_due()
    return {m["Subject"].split("】")[0] + "】": m.get_body(("plain",)).get_content() for m in sent_mail()}


def test_online_confirmation_and_promotion_mails_have_no_reception_text(ctx, sent_mail):
    from eventapp.services import registration as registration_service

    event = online(capacity=1)
    first = make_registration(event)
    make_registration(event)
    registration_service.cancel(first.id, by="self")
    db.session.commit()
    mail.deliver_due()
    bodies = [m.get_body(("plain",)).get_content() for m in sent_mail() if "参加確定" in m["Subject"]]
    assert len(bodies) == 2  # the first sign-up's confirmation and the promotion
    for body in bodies:
        assert ZOOM in body and "出席コード" in body
        assert "QRコードを受付" not in body and "受付でご提示" not in body and "受付票やQRコードはありません" in body


def test_online_mail_before_reveal_announces_the_time_instead_of_the_url(ctx, sent_mail):
    make_registration(online(online_url_reveal_at=future(days=9, hour=12)))
    (body,) = [b for s, b in _bodies(sent_mail).items() if s.startswith("【参加確定")]
    assert "zoom.example.jp" not in body
    assert "参加URLは" in body and "12:00から" in body


def test_onsite_confirmation_mail_still_points_to_the_qr_ticket(ctx, sent_mail):
    make_registration(make_event(kind="onsite_seminar", online_url="https://meet.example.jp/not-shown"))
    (body,) = [b for s, b in _bodies(sent_mail).items() if s.startswith("【参加確定")]
    assert "受付用QRコードを受付でご提示ください" in body
    assert "出席コード" not in body and "not-shown" not in body


def test_online_group_mail_offers_companions_no_qr_ticket(ctx, sent_mail):
    from eventapp.services.registration import SignupRequest, sign_up
    from tests.factories import person_input

    event = online(max_companions=2)
    sign_up(event.id, SignupRequest(person_input(), consent=True,
                                    companions=[{"name": "同行 一", "furigana": "どうこう"}]))
    db.session.commit()
    (body,) = [b for s, b in _bodies(sent_mail).items() if s.startswith("【参加確定")]
    assert "同行 一 様" in body and "確認・キャンセル:" in body
    assert "QRコード・確認" not in body and ZOOM in body
