"""Staff event workflows: duplicate, publish, cancel, days and questions, capacity changes."""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from eventapp.extensions import db
from eventapp.models import AuditEntry, Event, OutboxMessage, Registration
from eventapp.services import staff_events
from eventapp.services.errors import DomainError, ValidationFailed
from tests.conftest import future, jst, make_event, make_registration


def test_duplicate_copies_programme_and_questions_with_dates_shifted(ctx):
    event = make_event(
        starts_at=jst(2030, 10, 5, 9), ends_at=jst(2030, 10, 6, 15),
        registration_closes_at=jst(2030, 9, 27, 23, 59),
        days=[{"starts_at": jst(2030, 10, 5, 9), "ends_at": jst(2030, 10, 5, 20), "title": "1日目",
               "items": [{"starts_at": time(9, 30), "title": "集合", "place": "花巻駅"}]},
              {"starts_at": jst(2030, 10, 6, 8), "ends_at": jst(2030, 10, 6, 15)}],
        questions=[{"key": "bus", "kind": "yesno", "label": "送迎バス"},
                   {"key": "old", "kind": "text", "label": "削除済み"}],
    )
    make_registration(event)
    event.questions[1].is_active = False
    db.session.commit()

    copy = staff_events.duplicate_event(event.id, slug="hanamaki-2031", new_start=jst(2031, 10, 4, 9))
    db.session.commit()
    shift = timedelta(days=364)
    assert copy.status == "draft" and copy.title == event.title
    assert copy.starts_at == event.starts_at + shift and copy.ends_at == event.ends_at + shift
    assert copy.registration_closes_at == jst(2031, 9, 26, 23, 59)
    assert [(d.starts_at, d.title) for d in copy.days] == [(jst(2031, 10, 4, 9), "1日目"), (jst(2031, 10, 5, 8), "")]
    assert [(i.title, i.place) for i in copy.days[0].items] == [("集合", "花巻駅")]
    assert [q.key for q in copy.questions] == ["bus"]  # removed questions are not copied
    assert db.session.query(Registration).filter_by(event_id=copy.id).count() == 0
    entry = db.session.query(AuditEntry).filter_by(action="duplicate").one()
    assert entry.object_id == copy.id and entry.details["source_id"] == event.id


def test_duplicate_needs_a_free_slug_and_a_shift(ctx):
    event = make_event()
    with pytest.raises(ValidationFailed) as exc:
        staff_events.duplicate_event(event.id, slug=event.slug, shift_days=7)
    assert "既に使われています" in exc.value.fields["slug"]
    with pytest.raises(ValidationFailed):
        staff_events.duplicate_event(event.id, slug="new-one")


def test_publishing_fills_free_seats_and_cancelled_cannot_be_republished(ctx):
    event = make_event(capacity=1)
    first, second = make_registration(event), make_registration(event)
    staff_events.set_status(event.id, "draft")
    db.session.commit()
    event.capacity = 2  # raised while unpublished: no one is promoted yet
    db.session.commit()
    assert db.session.get(Registration, second.id).status == "waitlisted"
    staff_events.set_status(event.id, "published")
    db.session.commit()
    assert db.session.get(Registration, second.id).status == "confirmed"
    assert first.status == "confirmed"
    staff_events.cancel_event(event.id)
    db.session.commit()
    with pytest.raises(DomainError):
        staff_events.set_status(event.id, "published")


def test_cancel_event_cancels_and_notifies_every_active_registrant(ctx):
    event = make_event(capacity=1)
    confirmed, waiting = make_registration(event), make_registration(event)
    gone = make_registration(event)
    from eventapp.services.registration import cancel
    cancel(gone.id)
    db.session.commit()

    cancelled = staff_events.cancel_event(event.id, reason="台風のため")
    db.session.commit()
    assert {r.id for r in cancelled} == {confirmed.id, waiting.id}
    assert db.session.get(Event, event.id).status == "cancelled"
    assert all(db.session.get(Registration, r.id).cancelled_by == "event" for r in cancelled)
    mails = db.session.query(OutboxMessage).filter_by(kind="event_cancelled").all()
    assert sorted(m.to_addr for m in mails) == sorted([confirmed.person.email, waiting.person.email])
    assert "台風のため" in mails[0].body and confirmed.name in {m.body.split(" 様")[0] for m in mails}
    with pytest.raises(DomainError) as exc:
        staff_events.cancel_event(event.id)
    assert exc.value.code == "already_cancelled"


def test_raising_capacity_promotes_fifo_unless_frozen(ctx):
    event = make_event(capacity=1)
    make_registration(event)
    w1, w2, w3 = (make_registration(event) for _ in range(3))
    _, promoted = staff_events.change_event(event.id, {"capacity": 3})
    db.session.commit()
    assert promoted == 2
    statuses = [db.session.get(Registration, r.id).status for r in (w1, w2, w3)]
    assert statuses == ["confirmed", "confirmed", "waitlisted"]
    entry = db.session.query(AuditEntry).filter_by(action="update").one()
    assert entry.details["changed"]["capacity"] == [1, 3] and entry.details["promoted"] == 2

    frozen = make_event(capacity=1, roster_freeze_at=future(-1), registration_closes_at=future(1))
    make_registration(frozen)
    waiting = make_registration(frozen)
    staff_events.change_event(frozen.id, {"capacity": 5})
    db.session.commit()
    assert db.session.get(Registration, waiting.id).status == "waitlisted"


def test_update_days_edits_in_place_and_validates(ctx):
    event = make_event(starts_at=jst(2030, 10, 4, 9), ends_at=jst(2030, 10, 5, 15))
    day_ids = [d.id for d in event.days]
    assert len(day_ids) == 2
    rows = [{"id": day_ids[0], "starts_at": jst(2030, 10, 4, 9), "ends_at": jst(2030, 10, 4, 18), "title": "花巻",
             "items": [{"starts_at": time(10), "ends_at": time(12), "title": "収穫", "place": "農園"}]},
            {"id": day_ids[1], "remove": True},
            {"starts_at": jst(2030, 10, 6, 9), "ends_at": jst(2030, 10, 6, 12), "title": "追加日", "items": []}]
    staff_events.update_days(event.id, rows)
    db.session.commit()
    db.session.expire_all()
    days = db.session.get(Event, event.id).days
    assert days[0].id == day_ids[0]  # kept, so check-ins referring to it survive
    assert [d.title for d in days] == ["花巻", "追加日"]
    assert days[0].items[0].title == "収穫"

    with pytest.raises(ValidationFailed) as exc:
        staff_events.update_days(event.id, [{"id": days[0].id, "starts_at": jst(2030, 10, 4, 9),
                                             "ends_at": jst(2030, 10, 4, 8), "items": []}])
    assert "終了時刻は開始時刻より後" in exc.value.fields["days.0"]


def test_update_questions_reorders_adds_and_deactivates_keeping_answers(ctx):
    event = make_event(questions=[{"key": "bus", "kind": "yesno", "label": "バス"},
                                  {"key": "dietary", "kind": "text", "label": "食事"}])
    registration = make_registration(event, answers={"bus": "yes", "dietary": "卵アレルギー"})
    bus, dietary = event.questions
    staff_events.update_questions(event.id, [
        {"id": bus.id, "label": "送迎バス", "kind": "yesno", "position": 2},
        {"id": dietary.id, "remove": True},
        {"label": "宿泊", "kind": "choice", "choices": ["和室", "洋室"], "key": "lodging", "position": 1},
    ])
    db.session.commit()
    db.session.expire_all()
    event = db.session.get(Event, event.id)
    assert [(q.key, q.label) for q in event.active_questions] == [("lodging", "宿泊"), ("bus", "送迎バス")]
    assert not db.session.get(type(dietary), dietary.id).is_active
    answers = {a.question_label: a.value for a in db.session.get(Registration, registration.id).answers}
    assert answers["食事"] == "卵アレルギー"

    with pytest.raises(ValidationFailed) as exc:
        staff_events.update_questions(event.id, [{"label": "色", "kind": "choice", "choices": ["赤"]}])
    assert "選択肢を2つ以上" in exc.value.fields["questions.0"]


def test_moving_a_day_bumps_sequence_and_sends_updated_invites(ctx):
    event = make_event(starts_at=jst(2030, 10, 4, 9), ends_at=jst(2030, 10, 4, 15))
    confirmed = make_registration(event)
    sequence = event.sequence
    day = event.days[0]
    staff_events.update_days(event.id, [{"id": day.id, "starts_at": jst(2030, 10, 4, 10),
                                         "ends_at": jst(2030, 10, 4, 16), "items": []}])
    db.session.commit()
    assert db.session.get(Event, event.id).sequence == sequence + 1
    updates = db.session.query(OutboxMessage).filter_by(kind="event_updated").all()
    assert [m.registration_id for m in updates] == [confirmed.id]
    # The invite is built when the mail is sent (services.mail.build_email).
    from eventapp.services.mail import build_email
    assert any(part.get_content_type() == "text/calendar" for part in build_email(updates[0]).walk())


def test_moving_the_event_moves_its_days(ctx):
    from eventapp.services.events import update_event

    one_day = make_event(starts_at=jst(2030, 10, 4, 9), ends_at=jst(2030, 10, 4, 15))
    update_event(one_day.id, {"starts_at": jst(2030, 10, 11, 10), "ends_at": jst(2030, 10, 11, 17)})
    two_days = make_event(
        starts_at=jst(2030, 11, 8, 13), ends_at=jst(2030, 11, 9, 12),
        days=[{"starts_at": jst(2030, 11, 8, 13), "ends_at": jst(2030, 11, 8, 21)},
              {"starts_at": jst(2030, 11, 9, 8), "ends_at": jst(2030, 11, 9, 12)}])
    update_event(two_days.id, {"starts_at": jst(2030, 11, 15, 13), "ends_at": jst(2030, 11, 16, 12)})
    db.session.commit()
    assert [(d.starts_at, d.ends_at) for d in one_day.days] == [(jst(2030, 10, 11, 10), jst(2030, 10, 11, 17))]
    assert [(d.starts_at, d.ends_at) for d in two_days.days] == [
        (jst(2030, 11, 15, 13), jst(2030, 11, 15, 21)), (jst(2030, 11, 16, 8), jst(2030, 11, 16, 12))]


def test_replacing_days_keeps_check_ins_and_refuses_to_drop_an_attended_day(ctx):
    import uuid

    from eventapp.models import CheckIn
    from eventapp.services.checkin import check_in
    from eventapp.services.events import update_event

    event = make_event(starts_at=future(days=5, hour=9), ends_at=future(days=6, hour=17),
                       days=[{"starts_at": future(days=5, hour=9), "ends_at": future(days=5, hour=20)},
                             {"starts_at": future(days=6, hour=8), "ends_at": future(days=6, hour=17)}])
    registration = make_registration(event)
    first, second = event.days
    check_in(event.id, registration.ticket_code, uuid.uuid4().hex, day_id=second.id)
    db.session.commit()

    # New hours for both days (as the API's PATCH sends them): the rows, and so the check-in, stay.
    update_event(event.id, {"days": [
        {"starts_at": first.starts_at, "ends_at": first.ends_at - timedelta(hours=1), "title": "1日目"},
        {"starts_at": second.starts_at, "ends_at": second.ends_at - timedelta(hours=1), "title": "2日目"}]})
    db.session.commit()
    assert [d.id for d in event.days] == [first.id, second.id]
    assert db.session.query(CheckIn).filter_by(event_day_id=second.id).count() == 1

    with pytest.raises(ValidationFailed) as exc:
        update_event(event.id, {"days": [{"starts_at": first.starts_at, "ends_at": first.ends_at}]})
    assert "チェックイン" in exc.value.fields["days"]
    db.session.rollback()
    with pytest.raises(ValidationFailed):
        staff_events.update_days(event.id, [{"id": first.id, "starts_at": first.starts_at,
                                             "ends_at": first.ends_at, "items": []},
                                            {"id": second.id, "remove": True}])
    db.session.rollback()
    assert db.session.query(CheckIn).count() == 1


def test_an_over_confirmed_event_still_saves_only_a_lower_capacity_is_refused(ctx):
    from eventapp.services import participants

    event = make_event(capacity=1)
    make_registration(event)
    participants.confirm_waitlisted(make_registration(event).id)  # 2 confirmed, capacity 1
    db.session.commit()
    # The staff form sends every field, capacity included (unchanged): that must save.
    staff_events.change_event(event.id, {"title": "花巻フィールドワーク(増席)", "capacity": 1})
    staff_events.change_event(event.id, {"capacity": 2})  # raising is fine
    db.session.commit()
    assert (event.title, event.capacity) == ("花巻フィールドワーク(増席)", 2)
    with pytest.raises(ValidationFailed) as exc:
        staff_events.change_event(event.id, {"capacity": 1})  # lowering below the 2 confirmed
    assert "参加確定者数(2名)" in exc.value.fields["capacity"]


def test_a_new_two_day_event_gets_daytime_days(ctx):
    event = make_event(starts_at=jst(2030, 10, 4, 10), ends_at=jst(2030, 10, 5, 15))
    assert [(d.starts_at, d.ends_at) for d in event.days] == [
        (jst(2030, 10, 4, 10), jst(2030, 10, 4, 18)), (jst(2030, 10, 5, 9), jst(2030, 10, 5, 15))]
    three = make_event(starts_at=jst(2030, 10, 4, 19), ends_at=jst(2030, 10, 6, 12))
    assert [(d.starts_at, d.ends_at) for d in three.days] == [
        (jst(2030, 10, 4, 19), jst(2030, 10, 5, 0)), (jst(2030, 10, 5, 9), jst(2030, 10, 5, 18)),
        (jst(2030, 10, 6, 9), jst(2030, 10, 6, 12))]
    evening = make_event(starts_at=jst(2030, 10, 4, 19), ends_at=jst(2030, 10, 5, 1))  # a mixer past midnight
    assert [(d.starts_at, d.ends_at) for d in evening.days] == [(jst(2030, 10, 4, 19), jst(2030, 10, 5, 1))]


def test_editing_days_moves_the_events_start_and_end(ctx, sent_mail):
    event = make_event(starts_at=jst(2030, 10, 4, 10), ends_at=jst(2030, 10, 5, 15))
    first, second = (d.id for d in event.days)
    staff_events.update_days(event.id, [
        {"id": first, "starts_at": jst(2030, 10, 4, 12), "ends_at": jst(2030, 10, 4, 18), "items": []},
        {"id": second, "starts_at": jst(2030, 10, 5, 9), "ends_at": jst(2030, 10, 5, 16), "items": []}])
    db.session.commit()
    db.session.expire_all()
    event = db.session.get(Event, event.id)
    assert (event.starts_at, event.ends_at) == (jst(2030, 10, 4, 12), jst(2030, 10, 5, 16))
    assert event.sequence == 1


def test_programme_day_headings_do_not_repeat_the_day_number(ctx):
    from eventapp.services import documents
    from tests.pdf_support import flat, pdf_text

    event = make_event(starts_at=jst(2030, 10, 4, 10), ends_at=jst(2030, 10, 5, 15), days=[
        {"starts_at": jst(2030, 10, 4, 10), "ends_at": jst(2030, 10, 4, 18), "title": "1日目 花巻",
         "items": [{"starts_at": time(10), "title": "収穫"}]},
        {"starts_at": jst(2030, 10, 5, 9), "ends_at": jst(2030, 10, 5, 15), "title": "2日目",
         "items": [{"starts_at": time(9), "title": "発表"}]}])
    text = flat(pdf_text(documents.programme_pdf(event).pdf))
    assert "1日目" in text and text.count("1日目") == 1 and text.count("2日目") == 1, text
    assert "花巻" in text
