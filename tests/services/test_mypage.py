"""マイページ services: sign-in links (single use, expiry, hashed at rest, known = unknown), editing a
registration (audit, staff mail after the freeze), feeds, the disclosure export, the duplicate mail."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from eventapp.extensions import db
from eventapp.models import AuditEntry, MyPageLink, OutboxMessage, Registration
from eventapp.models.base import utcnow
from eventapp.services import mypage
from eventapp.services import registration as registration_service
from eventapp.services.calendar import personal_feed_links
from eventapp.services.errors import DomainError, NotFound, ValidationFailed
from tests.factories import make_event, make_registration, person_input

LINK_RE = re.compile(r"http://testserver\.local/my/([A-Za-z0-9_-]{43})")
QUESTIONS = [{"key": "bus", "kind": "yesno", "label": "送迎バス", "required": True},
             {"key": "diet", "kind": "text", "label": "食事制限"}]


def mailed_token(to: str) -> str:
    message = db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == "my_page_link",
                                                             OutboxMessage.to_addr == to)
                                 .order_by(OutboxMessage.id.desc())).scalars().first()
    assert message is not None, f"no sign-in mail to {to}"
    return LINK_RE.search(message.body).group(1)


def test_link_is_mailed_hashed_at_rest_single_use(ctx):
    registration = make_registration(make_event(), email="Hanako@Example.com")
    now = utcnow()
    assert mypage.request_link("  hanako@EXAMPLE.com ", now=now) == "hanako@example.com"
    db.session.commit()
    token = mailed_token("hanako@example.com")
    # The database holds only the SHA-256 of the token, in no column of any table.
    link = db.session.execute(select(MyPageLink)).scalar_one()
    assert link.token_hash == mypage.hash_token(token) and token not in link.token_hash
    dump = " ".join(str(v) for row in db.session.execute(text("SELECT * FROM my_page_links")).all() for v in row)
    assert token not in dump
    assert link.expires_at - link.created_at == timedelta(minutes=30)

    assert mypage.check_link(token, now=now).person_id == registration.person_id  # GET: not used up
    used = mypage.consume_link(token, now=now + timedelta(minutes=1))
    db.session.commit()
    assert used.person_id == registration.person_id and used.used_at is not None
    with pytest.raises(NotFound) as info:
        mypage.consume_link(token, now=now + timedelta(minutes=2))
    assert info.value.code == "link_used"


def test_link_expires_after_30_minutes(ctx):
    make_registration(make_event(), email="late@example.com")
    now = utcnow()
    mypage.request_link("late@example.com", now=now)
    db.session.commit()
    token = mailed_token("late@example.com")
    assert mypage.check_link(token, now=now + timedelta(minutes=29, seconds=59))
    with pytest.raises(NotFound) as info:
        mypage.consume_link(token, now=now + timedelta(minutes=30))
    assert info.value.code == "link_expired"
    assert "30分" in info.value.message
    with pytest.raises(NotFound) as info:
        mypage.consume_link("x" * 43, now=now)
    assert info.value.code == "link_not_found"


def test_unknown_address_takes_the_same_path_but_gets_no_mail_and_no_sign_in(ctx):
    make_event()
    mypage.request_link("nobody@example.com")
    db.session.commit()
    # A row is written all the same (same work as for a known address), with nobody behind it.
    link = db.session.execute(select(MyPageLink)).scalar_one()
    assert link.person_id is None
    assert db.session.execute(select(OutboxMessage)).scalars().all() == []
    with pytest.raises(ValidationFailed):
        mypage.request_link("not an address")


def test_update_attendee_changes_only_this_registration_and_is_audited(ctx):
    event = make_event(questions=QUESTIONS)
    first = make_registration(event, email="family@example.com", name="岩手 一郎", answers={"bus": "yes"})
    other = make_registration(make_event(), email="family@example.com", name="岩手 二郎")
    changed = mypage.update_attendee(first, {**first.attendee, "name": "岩手 一朗", "furigana": "イワテ イチロウ"},
                                     {"bus": "no", "diet": "えび"}, by="participant:1")
    db.session.commit()
    assert set(changed) == {"name", "furigana", "answers.bus", "answers.diet"}
    db.session.expire_all()
    first, other = db.session.get(Registration, first.id), db.session.get(Registration, other.id)
    assert (first.name, first.furigana) == ("岩手 一朗", "いわて いちろう")
    assert registration_service.answers_by_key(first) == {"bus": "no", "diet": "えび"}
    assert other.name == "岩手 二郎"
    entry = db.session.execute(select(AuditEntry).where(AuditEntry.object_type == "registration")).scalar_one()
    assert entry.action == "update" and entry.object_id == first.id and entry.actor == "participant:1"
    assert entry.details["changes"]["name"] == {"before": "岩手 一郎", "after": "岩手 一朗"}
    assert entry.details["changes"]["answers.bus"] == {"before": "yes", "after": "no"}
    assert entry.details["changes"]["answers.diet"] == {"before": "", "after": "えび"}
    assert "本人がマイページで変更" in entry.summary
    # Before the roster freeze nobody is mailed about it.
    assert db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == "attendee_changed")).first() is None
    # Nothing changed: no entry.
    assert mypage.update_attendee(first, first.attendee, {"bus": "no", "diet": "えび"}, by="participant:1") == {}


def test_update_attendee_validates_and_closes_at_the_start(ctx):
    event = make_event(questions=QUESTIONS)
    registration = make_registration(event, answers={"bus": "yes"})
    with pytest.raises(ValidationFailed) as info:
        mypage.update_attendee(registration, {**registration.attendee, "furigana": "Hanako"}, {"bus": "maybe"},
                               by="participant:1")
    assert set(info.value.fields) == {"furigana", "answers.bus"}
    with pytest.raises(DomainError) as info:
        mypage.update_attendee(registration, registration.attendee, {"bus": "no"}, by="participant:1",
                               now=event.starts_at)
    assert info.value.code == "edit_closed"


def test_change_after_the_roster_freeze_mails_the_organiser(ctx):
    event = make_event(questions=QUESTIONS, organiser_email="enren@example.jp")
    registration = make_registration(event, name="岩手 花子", answers={"bus": "yes"})
    event.roster_freeze_at = utcnow() - timedelta(hours=1)
    db.session.commit()
    mypage.update_attendee(registration, {**registration.attendee, "name": "岩手 華子"}, {"bus": "no"},
                           by="participant:1")
    db.session.commit()
    message = db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == "attendee_changed")).scalar_one()
    assert message.to_addr == "enren@example.jp"
    assert "名簿確定後" in message.subject
    assert "氏名: 岩手 花子 → 岩手 華子" in message.body
    assert "送迎バス: yes → no" in message.body


def test_feed_rotate_and_revoke(ctx):
    registration = make_registration(make_event())
    person = registration.person
    old = person.calendar_token
    assert personal_feed_links(person)["webcal"].startswith("webcal://testserver.local/")
    new = mypage.rotate_feed(person)
    assert new and new != old
    mypage.revoke_feed(person)
    db.session.commit()
    assert person.calendar_token is None and personal_feed_links(person) == {}


def test_export_holds_person_registrations_answers_consents_and_audit(ctx):
    event = make_event(questions=QUESTIONS)
    registration = make_registration(event, email="export@example.com", name="岩手 花子", answers={"bus": "yes"})
    make_registration(make_event(title="二つ目のイベント"), email="export@example.com", name="岩手 次郎")
    mypage.update_attendee(registration, {**registration.attendee, "phone": "090-1234-5678"}, {"bus": "yes"},
                           by="participant:x")
    db.session.commit()
    data = mypage.export_data(registration.person)
    assert data["person"]["email"] == "export@example.com"
    assert [r["attendee"]["name"] for r in data["registrations"]] == ["岩手 花子", "岩手 次郎"]
    assert data["registrations"][0]["answers"] == [{"question": "送迎バス", "value": "yes"}]
    assert data["registrations"][0]["attendee"]["phone"] == "090-1234-5678"
    assert data["consents"] and data["consents"][0][0] == registration.consent_version
    assert [a["action"] for a in data["audit"]] == ["update"]
    header, rows = mypage.export_rows(data)
    assert header == ["区分", "項目", "値"]
    assert ["registrations", "[1].attendee.name", "岩手 花子"] in rows


def test_duplicate_message_and_resend_manage_link(ctx):
    event = make_event()
    existing = make_registration(event, email="dup@example.com")
    with pytest.raises(DomainError) as info:
        registration_service.register(event.id, person_input(email="dup@example.com"), {}, consent=True)
    assert info.value.code == "duplicate"
    assert info.value.message == "このメールアドレスでのお申し込みを確認するためのリンクをメールでお送りしました。"
    db.session.rollback()
    assert mypage.resend_manage_link(event.id, "DUP@example.com") is True
    db.session.commit()
    message = db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == "manage_link")).scalar_one()
    assert message.to_addr == "dup@example.com"
    assert f"/r/{existing.manage_token}" in message.body and "/my" in message.body
    # Asked again at once: no second mail (nobody can fill the owner's inbox this way).
    assert mypage.resend_manage_link(event.id, "dup@example.com") is False
    assert mypage.resend_manage_link(event.id, "stranger@example.com") is False


def test_resend_ticket_queues_the_confirmation_again(ctx):
    registration = make_registration(make_event())
    mypage.resend_ticket(registration)
    db.session.commit()
    kinds = db.session.execute(select(OutboxMessage.kind).where(OutboxMessage.registration_id == registration.id)
                               .order_by(OutboxMessage.id)).scalars().all()
    assert kinds == ["registration_confirmed", "registration_confirmed"]
    registration_service.cancel(registration.id)
    db.session.commit()
    with pytest.raises(DomainError):
        mypage.resend_ticket(registration)


def test_old_links_are_purged_but_live_sessions_keep_theirs(ctx):
    make_registration(make_event(), email="purge@example.com")
    now = utcnow()
    mypage.request_link("purge@example.com", now=now - timedelta(days=2))
    mypage.request_link("purge@example.com", now=now - timedelta(hours=3))  # its session may still run
    db.session.commit()
    assert mypage.purge_links(now=now) == 1
    db.session.commit()
    remaining = db.session.execute(select(MyPageLink)).scalar_one()
    assert remaining.created_at > now - timedelta(hours=4)
