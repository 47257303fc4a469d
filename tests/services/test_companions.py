"""Companions (同行者): a group signs up through the one entry point, takes seats or waits together,
and is promoted strictly FIFO as a whole."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import OutboxMessage, Person, Registration
from eventapp.services import registration as svc
from eventapp.services.errors import DomainError, ValidationFailed
from eventapp.services.registration import SignupRequest, sign_up
from tests.factories import make_event, make_registration, person_input


def group_signup(event, n_companions: int, **person):
    companions = [{"name": f"同行 {i}", "furigana": "どうこう"} for i in range(n_companions)]
    result = sign_up(event.id, SignupRequest(person_input(**person), consent=True, companions=companions))
    db.session.commit()
    return result


def members(result) -> list[Registration]:
    return [result.registration, *result.companions]


def test_group_is_confirmed_together_each_with_own_seat_ticket_and_person(ctx):
    event = make_event(capacity=5, max_companions=3)
    result = group_signup(event, 2, email="lead@example.com")
    group = members(result)
    assert [r.status for r in group] == ["confirmed"] * 3
    assert [r.name for r in group[1:]] == ["同行 0", "同行 1"]
    assert {r.lead_registration_id for r in group[1:]} == {result.registration.id}
    assert result.registration.lead_registration_id is None
    assert len({r.ticket_code for r in group}) == len({r.manage_token for r in group}) == 3
    # Each companion is a person of its own without an address: the one-active-per-person index holds.
    companion_people = db.session.execute(select(Person).where(
        Person.id.in_([r.person_id for r in group[1:]]))).scalars().all()
    assert [p.email for p in companion_people] == [None, None]
    assert svc.availability(event, svc.counts_for(event.id)).seats_left == 2


def test_group_mail_goes_to_the_lead_and_lists_every_companion_link(ctx):
    event = make_event(capacity=5, max_companions=2)
    result = group_signup(event, 2, email="family@example.com")
    rows = db.session.execute(select(OutboxMessage)).scalars().all()
    assert [(m.kind, m.to_addr) for m in rows] == [("registration_confirmed", "family@example.com")]
    for companion in result.companions:
        assert companion.name in rows[0].body and companion.manage_token in rows[0].body


def test_group_that_does_not_fit_waits_together_with_places_without_gaps(ctx):
    event = make_event(capacity=3, max_companions=3)
    make_registration(event)
    make_registration(event)                     # one seat left
    result = group_signup(event, 2)              # three people: all wait
    assert [r.status for r in members(result)] == ["waitlisted"] * 3
    assert result.waitlist_position == 1
    single = make_registration(event)            # a free seat, but nobody overtakes a waiting group
    assert single.status == "waitlisted"
    places = [svc.waitlist_position(r) for r in (*members(result), single)]
    assert places == [1, 2, 3, 4]
    assert len({r.waitlisted_at for r in members(result)}) == 1
    told = db.session.execute(select(OutboxMessage.body).where(
        OutboxMessage.kind == "registration_waitlisted").order_by(OutboxMessage.id)).scalars().all()
    assert "同行者を含め1〜3番目" in told[0] and "4番目" in told[1]


def test_promotion_is_strict_fifo_over_whole_groups(ctx):
    event = make_event(capacity=4, max_companions=3)
    first, second = make_registration(event), make_registration(event)
    third = make_registration(event)
    make_registration(event)                     # full
    group = group_signup(event, 2)               # 3 waiting, head of the queue
    single = make_registration(event)            # behind the group
    svc.cancel(first.id)
    db.session.commit()
    # One seat free: the group of three does not fit and the single person behind it does not move up.
    assert {r.status for r in members(group)} == {"waitlisted"} and single.status == "waitlisted"
    svc.cancel(second.id)
    db.session.commit()
    assert {r.status for r in members(group)} == {"waitlisted"}
    svc.cancel(third.id)
    db.session.commit()
    assert {r.status for r in members(group)} == {"confirmed"}
    assert single.status == "waitlisted" and svc.waitlist_position(single) == 1
    mails = db.session.execute(select(OutboxMessage.kind, OutboxMessage.body)
                               .where(OutboxMessage.kind == "registration_promoted")).all()
    assert len(mails) == 1 and all(c.manage_token in mails[0].body for c in group.companions)


def test_cancelling_one_companion_frees_one_seat_for_the_next_in_line(ctx):
    event = make_event(capacity=3, max_companions=2)
    group = group_signup(event, 2, email="lead-c@example.com")
    waiting = make_registration(event)
    svc.cancel(group.companions[0].id)
    db.session.commit()
    assert [r.status for r in members(group)] == ["confirmed", "cancelled", "confirmed"]
    assert waiting.status == "confirmed"
    cancel_mail = db.session.execute(select(OutboxMessage.to_addr).where(
        OutboxMessage.kind == "registration_cancelled")).scalars().all()
    assert cancel_mail == ["lead-c@example.com"]  # the companion has no address: the lead is told


def test_lead_cancels_the_whole_group_or_only_their_own_seat(ctx):
    event = make_event(capacity=10, max_companions=2)
    alone = group_signup(event, 2)
    svc.cancel(alone.registration.id)
    db.session.commit()
    assert [r.status for r in members(alone)] == ["cancelled", "confirmed", "confirmed"]
    together = group_signup(event, 2)
    svc.cancel(together.registration.id, group=True)
    db.session.commit()
    assert [r.status for r in members(together)] == ["cancelled"] * 3
    # A companion's cancellation never takes the others with it, even if asked for the group.
    third = group_signup(event, 1)
    svc.cancel(third.companions[0].id, group=True)
    db.session.commit()
    assert [r.status for r in members(third)] == ["confirmed", "cancelled"]


def test_companion_errors_are_reported_per_companion_and_field(ctx):
    event = make_event(capacity=10, max_companions=2, questions=[
        {"key": "allergy", "kind": "text", "label": "アレルギー", "required": True}])
    companions = [{"name": "同行 一", "furigana": "どうこう", "answers": {"allergy": "なし"}},
                  {"name": "", "furigana": "Doko", "answers": {}}]
    with pytest.raises(ValidationFailed) as info:
        sign_up(event.id, SignupRequest(person_input(), {"allergy": "なし"}, consent=True, companions=companions))
    assert set(info.value.fields) == {"companions.1.name", "companions.1.furigana", "companions.1.answers.allergy"}
    db.session.rollback()
    with pytest.raises(ValidationFailed) as info:
        sign_up(event.id, SignupRequest(person_input(), {"allergy": "なし"}, consent=True,
                                        companions=[companions[0]] * 3))
    assert "2名まで" in info.value.fields["companions"]
    db.session.rollback()
    no_companions = make_event(capacity=10)
    with pytest.raises(ValidationFailed) as info:
        sign_up(no_companions.id, SignupRequest(person_input(), consent=True, companions=[companions[0]]))
    assert "companions" in info.value.fields
    db.session.rollback()
    assert db.session.execute(select(Registration.id)).first() is None


def test_each_companion_answers_the_questions_for_themselves(ctx):
    event = make_event(capacity=10, max_companions=1, questions=[
        {"key": "size", "kind": "choice", "label": "軍手のサイズ", "choices": ["S", "M", "L"]}])
    result = sign_up(event.id, SignupRequest(person_input(), {"size": "L"}, consent=True, companions=[
        {"name": "子ども 一人", "furigana": "こども", "answers": {"size": "S"}}]))
    db.session.commit()
    assert svc.answers_by_key(result.registration) == {"size": "L"}
    assert svc.answers_by_key(result.companions[0]) == {"size": "S"}


def test_closed_event_refuses_the_group_and_writes_nothing(ctx):
    event = make_event(capacity=10, max_companions=2, status="cancelled")
    with pytest.raises(DomainError):
        sign_up(event.id, SignupRequest(person_input(), consent=True,
                                        companions=[{"name": "同行 一", "furigana": "どうこう"}]))
    db.session.rollback()
    assert db.session.execute(select(Registration.id)).first() is None


def test_preferences_given_for_a_non_matching_event_are_refused(ctx):
    event = make_event(capacity=10)
    with pytest.raises(ValidationFailed) as info:
        sign_up(event.id, SignupRequest(person_input(), consent=True, preferences=[1]))
    assert "preferences" in info.value.fields


def test_one_address_and_a_companion_each_appear_on_roster_badges_csv_and_check_in(ctx):
    # Issue 14 "done when": one address, two attendees, both names on everything printed or shown.
    import csv
    import io

    from eventapp.services import checkin, documents, exports
    from tests.pdf_support import flat, pdf_text

    event = make_event(capacity=10, max_companions=1)
    result = sign_up(event.id, SignupRequest(
        person_input(name="岩手 花子", furigana="いわて はなこ", email="family@example.com"), consent=True,
        companions=[{"name": "岩手 太郎", "furigana": "いわて たろう"}]))
    db.session.commit()
    lead, companion = result.registration, result.companions[0]

    roster = flat(pdf_text(documents.roster_pdf(event, "reception", "kana").pdf))
    badges = flat(pdf_text(documents.badges_pdf(event).pdf))
    content, _mimetype, _filename = exports.export(event, "reception", "csv")
    db.session.commit()
    names_in_csv = [row[1] for row in csv.reader(io.StringIO(content.decode("utf-8-sig")))][1:]
    for name in ("岩手花子", "岩手太郎"):
        assert name in roster and name in badges
    assert sorted(names_in_csv) == ["岩手 太郎", "岩手 花子"]

    shown = []
    for n, registration in enumerate((lead, companion)):
        res = checkin.check_in(event.id, registration.ticket_code, f"family-nonce-{n}")
        db.session.commit()
        assert res.result == "checked_in"
        shown.append(checkin.registration_summary(res.registration)["name"])
    assert shown == ["岩手 花子", "岩手 太郎"]


def test_max_companions_is_checked_by_the_service_and_the_database(ctx):
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError
    from werkzeug.datastructures import MultiDict

    from eventapp.services.events import update_event
    from eventapp.staff.forms import event_data, event_values

    event = make_event(capacity=10)
    assert event.max_companions == 0  # the default: nobody brings companions unless staff allow it
    with pytest.raises(ValidationFailed) as info:
        update_event(event.id, {"max_companions": 11})
    assert "max_companions" in info.value.fields
    db.session.rollback()
    data, errors = event_data(MultiDict({"max_companions": "3"}))  # the staff event form
    assert (data, errors) == ({"max_companions": 3}, {})
    update_event(event.id, data)
    db.session.commit()
    assert db.session.get(type(event), event.id).max_companions == 3
    assert event_values(event)["max_companions"] == "3"
    assert event_values(None)["max_companions"] == "0"  # a new event takes no companions until staff allow them
    with pytest.raises(IntegrityError):
        db.session.execute(text("UPDATE events SET max_companions = 11 WHERE id = :id"), {"id": event.id})
        db.session.flush()
    db.session.rollback()


def test_event_wide_mails_reach_the_lead_once_for_the_group(ctx):
    from eventapp.services.staff_events import cancel_event

    event = make_event(capacity=10, max_companions=2)
    group_signup(event, 2, email="once@example.com")
    db.session.execute(OutboxMessage.__table__.delete())
    cancel_event(event.id, reason="台風のため")
    db.session.commit()
    rows = db.session.execute(select(OutboxMessage.kind, OutboxMessage.to_addr)).all()
    assert [tuple(r) for r in rows] == [("event_cancelled", "once@example.com")]
    assert {r.status for r in db.session.execute(select(Registration)).scalars()} == {"cancelled"}


def test_a_moved_event_sends_the_group_one_updated_invite(ctx):
    from datetime import timedelta

    from eventapp.services.events import update_event

    event = make_event(capacity=10, max_companions=2)
    group_signup(event, 2, email="moved@example.com")
    db.session.execute(OutboxMessage.__table__.delete())
    update_event(event.id, {"starts_at": event.starts_at + timedelta(days=1),
                            "ends_at": event.ends_at + timedelta(days=1)})
    db.session.commit()
    rows = db.session.execute(select(OutboxMessage.kind, OutboxMessage.to_addr)).all()
    assert [tuple(r) for r in rows] == [("event_updated", "moved@example.com")]


def test_staff_confirming_one_member_confirms_the_waiting_group_together(ctx):
    """確定にする on a companion (or the lead) of a waiting group seats the whole group, with one mail to
    the lead listing the companions: staff cannot split a family by accident."""
    from eventapp.services import participants

    event = make_event(capacity=1, max_companions=2)
    make_registration(event)
    result = group_signup(event, 2, email="family@example.com")
    behind = make_registration(event)
    db.session.query(OutboxMessage).delete()
    assert participants.confirm_waitlisted(result.companions[1].id) is True
    db.session.commit()
    assert [db.session.get(Registration, r.id).status for r in members(result)] == ["confirmed"] * 3
    assert db.session.get(Registration, behind.id).status == "waitlisted"
    assert svc.waitlist_position(db.session.get(Registration, behind.id)) == 1
    (message,) = db.session.execute(select(OutboxMessage)).scalars().all()
    assert (message.kind, message.to_addr) == ("registration_confirmed_by_staff", "family@example.com")
    for companion in result.companions:
        assert companion.name in message.body and companion.manage_token in message.body
