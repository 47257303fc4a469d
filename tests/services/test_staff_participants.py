"""Participant list search/filter/sort and the staff actions on registrations."""

from __future__ import annotations

import pytest

from eventapp.extensions import db
from eventapp.models import AuditEntry, OutboxMessage, Registration
from eventapp.services import calendar, participants
from eventapp.services.errors import DomainError, ValidationFailed
from tests.conftest import make_event, make_registration, person_input


def test_list_searches_filters_and_sorts_gojuon(ctx):
    event = make_event(capacity=2, questions=[{"key": "bus", "kind": "yesno", "label": "バス"}])
    make_registration(event, name="渡辺 健", furigana="わたなべ けん", email="ken@example.com", answers={"bus": "yes"})
    make_registration(event, name="青木 陽子", furigana="アオキ ヨウコ", email="yoko@example.com", answers={"bus": "no"})
    make_registration(event, name="加藤 誠", furigana="かとう まこと", email="makoto@corp.example",
                      answers={"bus": "yes"})
    result = participants.participant_list(event)
    assert [r.name for r in result.rows] == ["青木 陽子", "加藤 誠", "渡辺 健"]  # 五十音順, katakana folded
    assert (result.counts.confirmed, result.counts.waitlisted) == (2, 1)
    assert result.waitlist_positions == {result.rows[1].id: 1}

    by_time = participants.participant_list(event, sort="signup")
    assert [r.name for r in by_time.rows] == ["渡辺 健", "青木 陽子", "加藤 誠"]
    assert [r.name for r in participants.participant_list(event, q="あおき").rows] == ["青木 陽子"]
    assert [r.name for r in participants.participant_list(event, q="CORP").rows] == ["加藤 誠"]
    assert [r.name for r in participants.participant_list(event, q="渡辺").rows] == ["渡辺 健"]
    assert [r.status for r in participants.participant_list(event, status="waitlisted").rows] == ["waitlisted"]
    bus = event.questions[0].id
    assert {r.name for r in participants.participant_list(event, question_id=bus, answer="yes").rows} == {
        "渡辺 健", "加藤 誠"}


def test_phone_signup_works_on_a_closed_draft_event_and_is_audited(ctx):
    event = make_event(status="draft", capacity=1)
    result = participants.register_on_behalf(event.id, person_input(name="電話 太郎"), {}, notify=False)
    db.session.commit()
    assert result.registration.source == "staff" and result.registration.status == "confirmed"
    assert db.session.query(OutboxMessage).count() == 0
    assert db.session.query(AuditEntry).filter_by(action="register").one().object_id == result.registration.id


def test_confirm_waitlisted_past_capacity_warns(ctx):
    event = make_event(capacity=1)
    make_registration(event)
    waiting = make_registration(event)
    assert participants.confirm_waitlisted(waiting.id) is True  # now over capacity
    db.session.commit()
    assert db.session.get(Registration, waiting.id).status == "confirmed"
    # The mail says staff confirmed the seat, not that someone cancelled (issue 15, item 12).
    (message,) = db.session.query(OutboxMessage).filter_by(kind="registration_confirmed_by_staff").all()
    assert "事務局" in message.subject and "参加を確定しました" in message.body
    assert "キャンセルが出たため" not in message.body and "繰り上げ" not in message.subject
    assert calendar.mail_attachments(message.kind, db.session.get(Registration, waiting.id))  # the invite
    with pytest.raises(DomainError):
        participants.confirm_waitlisted(waiting.id)


def test_cancel_note_resend(ctx):
    event = make_event(capacity=1)
    first = make_registration(event)
    second = make_registration(event)
    participants.set_note(first.id, "車椅子を利用")
    participants.resend_confirmation(first.id)
    participants.cancel_on_behalf(first.id)
    db.session.commit()
    assert db.session.get(Registration, first.id).staff_note == "車椅子を利用"
    assert db.session.get(Registration, first.id).cancelled_by == "staff"
    assert db.session.get(Registration, second.id).status == "confirmed"  # the freed seat went to the queue
    kinds = [m.kind for m in db.session.query(OutboxMessage).filter_by(registration_id=first.id)
             .order_by(OutboxMessage.id)]
    assert kinds == ["registration_confirmed", "registration_confirmed", "registration_cancelled"]
    actions = {e.action for e in db.session.query(AuditEntry)}
    assert {"note", "resend", "cancel"} <= actions
    with pytest.raises(ValidationFailed):
        participants.set_note(first.id, "x" * 2001)


def test_person_history_across_events(ctx):
    a, b = make_event(title="A"), make_event(title="B")
    first = make_registration(a, email="same@example.com")
    make_registration(b, email="same@example.com")
    person, registrations, attended = participants.person_history(first.person_id)
    assert {r.event.title for r in registrations} == {"A", "B"}
    assert attended == {}
    assert [p.id for p in participants.search_people("SAME@").hits] == [person.id]


def test_people_search_finds_an_address_by_any_of_its_attendees(ctx):
    """The person keeps the first sign-up's name; staff still find it by a later attendee's name or furigana."""
    make_registration(make_event(), email="family@example.com", name="岩手 一郎", furigana="いわて いちろう")
    second = make_registration(make_event(), email="family@example.com", name="岩手 さくら", furigana="いわて さくら")
    make_registration(make_event(), email="other@example.com", name="盛岡 花子", furigana="もりおか はなこ")
    assert second.person.name == "岩手 一郎"
    assert [p.id for p in participants.search_people("さくら").hits] == [second.person_id]
    assert [p.id for p in participants.search_people("サクラ").hits] == [second.person_id]  # katakana folded
    assert [p.id for p in participants.search_people("一郎").hits] == [second.person_id]
    assert participants.search_people("存在しない").hits == []
