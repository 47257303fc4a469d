"""Sign-up, cancellation and waiting-list promotion (service level)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from eventapp.extensions import db
from eventapp.models import OutboxMessage, Registration
from eventapp.models.base import utcnow
from eventapp.services import registration as svc
from eventapp.services.errors import DomainError, ValidationFailed
from tests.factories import future, make_event, make_registration, person_input


def test_signup_confirms_until_capacity_then_waitlists(ctx):
    event = make_event(capacity=2)
    first, second = make_registration(event), make_registration(event)
    third, fourth = make_registration(event), make_registration(event)
    assert [first.status, second.status] == ["confirmed", "confirmed"]
    assert [third.status, fourth.status] == ["waitlisted", "waitlisted"]
    assert [svc.waitlist_position(third), svc.waitlist_position(fourth)] == [1, 2]
    assert svc.waitlist_position(first) is None


def test_signup_queues_a_confirmation_mail_in_the_same_transaction(ctx):
    event = make_event(capacity=1)
    make_registration(event, email="a@example.com")
    make_registration(event, email="b@example.com")
    kinds = db.session.execute(select(OutboxMessage.kind, OutboxMessage.to_addr).order_by(OutboxMessage.id)).all()
    assert kinds == [("registration_confirmed", "a@example.com"), ("registration_waitlisted", "b@example.com")]


def test_duplicate_signup_is_refused_with_code(ctx):
    event = make_event()
    make_registration(event, email="Same@Example.com")
    with pytest.raises(DomainError) as info:
        make_registration(event, email="same@example.com")
    assert info.value.code == "duplicate"


def test_signup_after_cancel_is_allowed(ctx):
    event = make_event()
    registration = make_registration(event, email="again@example.com")
    svc.cancel(registration.id)
    db.session.commit()
    again = make_registration(event, email="again@example.com")
    assert again.status == "confirmed" and again.id != registration.id


def test_database_refuses_two_active_registrations_for_one_person(ctx):
    event = make_event()
    registration = make_registration(event)
    clone = Registration(event_id=event.id, person_id=registration.person_id, status="waitlisted", name="x", furigana="x",
                         waitlisted_at=utcnow(), manage_token="x" * 32, ticket_code="E1-X-Y",
                         consent_version="v", consent_at=utcnow())
    db.session.add(clone)
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_database_refuses_unknown_status(ctx):
    event = make_event()
    registration = make_registration(event)
    with pytest.raises(IntegrityError):
        db.session.execute(text("UPDATE registrations SET status='maybe' WHERE id=:id"), {"id": registration.id})
        db.session.flush()
    db.session.rollback()


def test_closed_cancelled_and_unopened_events_refuse_signups(ctx):
    closed = make_event(registration_closes_at=utcnow() - timedelta(minutes=1))
    not_open = make_event(registration_opens_at=utcnow() + timedelta(days=1))
    cancelled = make_event(status="cancelled")
    codes = []
    for event in (closed, not_open, cancelled):
        with pytest.raises(DomainError) as info:
            make_registration(event)
        codes.append(info.value.code)
    assert codes == ["registration_closed", "registration_not_open", "event_cancelled"]


def test_validation_reports_every_field_in_japanese(ctx):
    event = make_event(questions=[{"key": "bus", "kind": "yesno", "label": "送迎バスを利用しますか", "required": True}])
    with pytest.raises(ValidationFailed) as info:
        svc.register(event.id, {"name": "", "furigana": "Tanaka", "email": "not-an-email"}, {}, consent=False)
    fields = info.value.fields
    assert set(fields) == {"name", "furigana", "email", "answers.bus", "consent_privacy"}
    assert "ひらがな" in fields["furigana"]
    assert db.session.execute(select(Registration)).first() is None


def test_furigana_in_katakana_is_stored_as_hiragana(ctx):
    event = make_event()
    registration = make_registration(event, furigana="イワテ　ハナコ")
    assert registration.furigana == registration.person.furigana == "いわて はなこ"
    half_width = make_registration(event, furigana="ｽｽﾞｷ ｲﾁﾛｳ")
    assert half_width.furigana == half_width.person.furigana == "すずき いちろう"


def test_cancel_promotes_first_waitlisted_fifo(ctx):
    event = make_event(capacity=1)
    confirmed = make_registration(event)
    first, second = make_registration(event), make_registration(event)
    svc.cancel(confirmed.id)
    db.session.commit()
    db.session.refresh(first)
    db.session.refresh(second)
    assert first.status == "confirmed" and second.status == "waitlisted"
    assert svc.waitlist_position(second) == 1
    kinds = db.session.execute(select(OutboxMessage.kind).where(OutboxMessage.registration_id == first.id)).scalars()
    assert "registration_promoted" in list(kinds)


def test_no_promotion_after_roster_freeze(ctx):
    event = make_event(capacity=1, roster_freeze_at=utcnow() - timedelta(minutes=1))
    confirmed = make_registration(event)
    waiting = make_registration(event)
    svc.cancel(confirmed.id, by="staff")
    db.session.commit()
    db.session.refresh(waiting)
    assert waiting.status == "waitlisted"


def test_self_cancel_after_deadline_is_refused(ctx):
    event = make_event(starts_at=future(days=2), cancellation_deadline=utcnow() + timedelta(hours=1))
    registration = make_registration(event)
    with pytest.raises(DomainError) as info:
        svc.cancel(registration.id, now=utcnow() + timedelta(hours=2))
    assert info.value.code == "cancellation_closed"
    # staff may still cancel on the participant's behalf
    svc.cancel(registration.id, by="staff", now=utcnow() + timedelta(hours=2))
    assert registration.status == "cancelled"


def test_cancelling_twice_is_a_clear_error(ctx):
    registration = make_registration(make_event())
    svc.cancel(registration.id)
    db.session.commit()
    with pytest.raises(DomainError) as info:
        svc.cancel(registration.id)
    assert info.value.code == "already_cancelled"


def test_choice_and_yesno_answers_are_validated(ctx):
    event = make_event(questions=[
        {"key": "room", "kind": "choice", "label": "部屋", "choices": ["相部屋", "個室"], "required": True},
        {"key": "bus", "kind": "yesno", "label": "バス"},
    ])
    with pytest.raises(ValidationFailed) as info:
        svc.register(event.id, person_input(), {"room": "スイート", "bus": "maybe"}, consent=True)
    assert set(info.value.fields) == {"answers.room", "answers.bus"}
    registration = make_registration(event, answers={"room": "個室", "bus": True})
    assert svc.answers_by_key(registration) == {"room": "個室", "bus": "yes"}
