"""抽選 (issue 17, items 1–4): applications, the draw (fair, reproducible, never oversold, groups
all-or-nothing, priority first), its mails, promotion in drawn order, and races on both databases."""

from __future__ import annotations

import hashlib
import random
import threading
from collections import Counter
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from eventapp.database import write_intent
from eventapp.extensions import db
from eventapp.models import AuditEntry, Event, OutboxMessage, Registration
from eventapp.models.base import utcnow
from eventapp.services import lottery
from eventapp.services.checkin import find_registration
from eventapp.services.errors import DomainError, ValidationFailed
from eventapp.services.events import update_event
from eventapp.services.registration import SignupRequest, cancel, sign_up, waitlist_position
from eventapp.services.scheduled import passes, run_scheduled
from tests.factories import future, make_event, person_input


def lottery_event(**overrides) -> Event:
    overrides.setdefault("capacity", 3)
    starts = overrides.pop("starts_at", future(30))
    return make_event(allocation="lottery", lottery_draw_at=starts - timedelta(days=10), starts_at=starts,
                      ends_at=starts + timedelta(hours=5), max_companions=3, **overrides)


def apply(event: Event, companions: int = 0, **person) -> Registration:
    result = sign_up(event.id, SignupRequest(
        person=person_input(**person), consent=True,
        companions=[{"name": f"同行 者{n}", "furigana": "どうこう しゃ"} for n in range(companions)]))
    db.session.commit()
    return result.registration


def statuses(event_id: int) -> Counter:
    return Counter(db.session.execute(select(Registration.status).where(Registration.event_id == event_id)).scalars())


def messages(kind: str) -> list[OutboxMessage]:
    return list(db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == kind)
                                   .order_by(OutboxMessage.id)).scalars())


# ------------------------------------------------------------------ applications


def test_a_sign_up_before_the_draw_is_an_application_and_its_mail_gives_the_draw_date(ctx):
    event = lottery_event(capacity=1)
    first, second = apply(event), apply(event)  # more applicants than seats: nobody waits, nobody is seated
    assert (first.status, second.status) == ("applied", "applied")
    assert first.confirmed_at is None and first.waitlisted_at is None
    assert waitlist_position(first) is None
    draw_day = event.lottery_draw_at.astimezone(lottery_tz())
    [mail, _other] = messages("registration_applied")
    assert f"抽選結果は{draw_day.month}月{draw_day.day}日" in mail.body and "【抽選申込受付】" in mail.subject
    assert statuses(event.id) == {"applied": 2}
    from eventapp.services.capacity import counts_for
    assert counts_for(event.id).applied == 2 and counts_for(event.id).confirmed == 0


def test_the_application_mail_in_english(ctx):
    event = lottery_event()
    result = sign_up(event.id, SignupRequest(person=person_input(), consent=True, locale="en"))
    db.session.commit()
    assert result.registration.status == "applied"
    [mail] = messages("registration_applied")
    assert mail.subject.startswith("[Lottery entry received]")
    assert "We will tell you the result of the lottery on" in mail.body


def lottery_tz():
    from eventapp.formatting import JST
    return JST


def test_cancelling_an_application_before_the_draw_just_cancels(ctx):
    event = lottery_event(capacity=1)
    a, b = apply(event), apply(event)
    cancel(a.id)
    db.session.commit()
    assert db.session.get(Registration, a.id).status == "cancelled"
    assert db.session.get(Registration, b.id).status == "applied"  # nobody promoted: nothing was drawn
    result = lottery.draw(event.id, event.lottery_draw_at)
    db.session.commit()
    assert result.won == 1 and db.session.get(Registration, b.id).status == "confirmed"
    assert a.id not in event.lottery_record["applicants"]


def test_check_in_refuses_applications_and_not_selected(ctx):
    event = lottery_event(capacity=1, lottery_losers="not_selected")
    a = apply(event)
    with pytest.raises(DomainError) as exc:
        find_registration(event.id, a.ticket_code)
    assert exc.value.code == "applied" and "抽選" in exc.value.message
    b = apply(event)
    lottery.draw(event.id, event.lottery_draw_at, seed="00" * 32)
    db.session.commit()
    loser = next(r for r in (a, b) if db.session.get(Registration, r.id).status == "not_selected")
    with pytest.raises(DomainError) as exc:
        find_registration(event.id, loser.ticket_code)
    assert exc.value.code == "not_selected"


def test_event_rules_for_the_draw_time(ctx):
    event = make_event()
    with pytest.raises(ValidationFailed) as exc:
        update_event(event.id, {"allocation": "lottery"})
    assert "lottery_draw_at" in exc.value.fields
    db.session.rollback()
    with pytest.raises(ValidationFailed) as exc:
        update_event(event.id, {"allocation": "lottery", "lottery_draw_at": event.starts_at + timedelta(hours=1)})
    assert "lottery_draw_at" in exc.value.fields
    db.session.rollback()
    opens = event.starts_at - timedelta(days=5)
    with pytest.raises(ValidationFailed) as exc:
        update_event(event.id, {"allocation": "lottery", "registration_opens_at": opens,
                                "lottery_draw_at": opens - timedelta(hours=1)})
    assert "lottery_draw_at" in exc.value.fields
    db.session.rollback()
    with pytest.raises(ValidationFailed) as exc:
        update_event(event.id, {"allocation": "raffle"})
    assert "allocation" in exc.value.fields


def test_a_drawn_lottery_cannot_change_its_draw(ctx):
    event = lottery_event()
    apply(event)
    lottery.draw(event.id, event.lottery_draw_at)
    db.session.commit()
    with pytest.raises(ValidationFailed) as exc:
        update_event(event.id, {"lottery_draw_at": event.lottery_draw_at - timedelta(days=1)})
    assert "allocation" in exc.value.fields


# ------------------------------------------------------------------ the draw


def test_the_draw_seats_exactly_the_capacity_and_waitlists_the_rest_in_drawn_order(ctx):
    event = lottery_event(capacity=3)
    applicants = [apply(event) for _ in range(7)]
    result = lottery.draw(event.id, event.lottery_draw_at)
    db.session.commit()
    assert (result.won, result.waitlisted, result.not_selected) == (3, 4, 0)
    assert statuses(event.id) == {"confirmed": 3, "waitlisted": 4}
    db.session.refresh(event)
    assert event.lottery_drawn_at is not None and event.lottery_seed == result.seed and len(result.seed) == 64
    order = lottery.draw_order(result.seed, [a.id for a in applicants])
    waiting = [r.id for r in db.session.execute(
        select(Registration).where(Registration.event_id == event.id, Registration.status == "waitlisted")
        .order_by(Registration.waitlisted_at, Registration.id)).scalars()]
    assert set(order[:3]) == {r.id for r in applicants if db.session.get(Registration, r.id).status == "confirmed"}
    assert waiting == order[3:]  # the queue is the drawn order
    # Mails: the winners' confirmation (ticket + invite), the others their place.
    assert len(messages("registration_confirmed")) == 3
    waitlisted = messages("registration_waitlisted")
    assert len(waitlisted) == 4 and all("【抽選結果】" in m.subject for m in waitlisted)
    assert "キャンセル待ち1番目" in next(m for m in waitlisted if m.registration_id == waiting[0]).body
    # Audit: inputs and seed, enough to re-derive the result.
    entry = db.session.execute(select(AuditEntry).where(AuditEntry.action == "lottery_draw")).scalar_one()
    assert entry.details["seed"] == result.seed and sorted(entry.details["applicants"]) == [a.id for a in applicants]
    assert lottery.replay(event)[0] == entry.details["won"]


def test_a_winner_who_cancels_is_replaced_from_the_drawn_order(ctx):
    event = lottery_event(capacity=2)
    applicants = [apply(event) for _ in range(5)]
    result = lottery.draw(event.id)  # staff press the button now, before the draw time
    db.session.commit()
    order = lottery.draw_order(result.seed, [a.id for a in applicants])
    late = apply(event)  # after the draw: first come, behind the drawn queue
    assert late.status == "waitlisted" and waitlist_position(late) == 4
    cancel(order[0])
    db.session.commit()
    assert db.session.get(Registration, order[2]).status == "confirmed"  # the first of the drawn queue
    assert db.session.get(Registration, order[3]).status == "waitlisted"
    assert waitlist_position(db.session.get(Registration, order[3])) == 1


def test_not_selected_applicants_get_a_kind_note_with_next_events(ctx):
    other = make_event(title="次回の花巻ワークショップ", starts_at=future(60))
    event = lottery_event(capacity=1, lottery_losers="not_selected")
    apply(event), apply(event), apply(event)
    result = lottery.draw(event.id, event.lottery_draw_at)
    db.session.commit()
    assert (result.won, result.waitlisted, result.not_selected) == (1, 0, 2)
    assert statuses(event.id) == {"confirmed": 1, "not_selected": 2}
    notes = messages("lottery_not_selected")
    assert len(notes) == 2 and "お席をご用意できませんでした" in notes[0].body
    assert other.title in notes[0].body and f"/events/{other.slug}" in notes[0].body


def test_a_second_draw_is_refused(ctx):
    event = lottery_event()
    apply(event)
    lottery.draw(event.id, event.lottery_draw_at)
    db.session.commit()
    with pytest.raises(DomainError) as exc:
        lottery.draw(event.id, event.lottery_draw_at)
    assert exc.value.code == "already_drawn"
    assert db.session.execute(select(func.count()).select_from(AuditEntry)
                              .where(AuditEntry.action == "lottery_draw")).scalar_one() == 1


def test_a_first_come_event_cannot_be_drawn(ctx):
    event = make_event()
    with pytest.raises(DomainError) as exc:
        lottery.draw(event.id)
    assert exc.value.code == "not_lottery"


def test_companions_are_drawn_with_their_lead(ctx):
    event = lottery_event(capacity=3)
    group = apply(event, companions=2)
    singles = [apply(event) for _ in range(4)]
    lottery.draw(event.id, event.lottery_draw_at)
    db.session.commit()
    members = [group, *db.session.get(Registration, group.id).companions]
    assert len({db.session.get(Registration, m.id).status for m in members}) == 1
    assert statuses(event.id)["confirmed"] <= 3
    assert all(db.session.get(Registration, s.id).status in ("confirmed", "waitlisted") for s in singles)


def test_priority_applicants_are_drawn_first(ctx):
    event = lottery_event(capacity=2)
    others = [apply(event) for _ in range(6)]
    favoured = [apply(event) for _ in range(2)]
    for registration in favoured:
        registration.lottery_priority = True
    db.session.commit()
    lottery.draw(event.id, event.lottery_draw_at)
    db.session.commit()
    assert {db.session.get(Registration, r.id).status for r in favoured} == {"confirmed"}
    assert {db.session.get(Registration, r.id).status for r in others} == {"waitlisted"}
    assert sorted(event.lottery_record["priority"]) == sorted(r.id for r in favoured)


def test_the_scheduled_pass_draws_due_lotteries_once(ctx):
    assert ("lottery", lottery.draw_due_lotteries) in passes()
    due = lottery_event(capacity=1)
    later = lottery_event(capacity=1, starts_at=future(40))
    apply(due), apply(due), apply(later)
    now = due.lottery_draw_at + timedelta(minutes=1)
    assert run_scheduled(now)["lottery"] == 2
    assert statuses(due.id) == {"confirmed": 1, "waitlisted": 1}
    assert statuses(later.id) == {"applied": 1}  # its draw time has not come
    assert run_scheduled(now)["lottery"] == 0


def test_the_draw_pass_before_the_draw_time_leaves_applications_open(ctx):
    event = lottery_event(capacity=1)
    apply(event)
    assert lottery.draw_due_lotteries(event.lottery_draw_at - timedelta(seconds=1)) == 0
    db.session.commit()
    assert statuses(event.id) == {"applied": 1}


def test_past_the_draw_time_but_not_drawn_a_sign_up_still_applies(ctx):
    """Between the draw time and the pass that draws, nobody takes a seat ahead of the applicants."""
    event = lottery_event(capacity=1)
    apply(event)
    late = sign_up(event.id, SignupRequest(person=person_input(), consent=True,
                                           now=event.lottery_draw_at + timedelta(minutes=5))).registration
    db.session.commit()
    assert late.status == "applied"
    lottery.draw_due_lotteries(event.lottery_draw_at + timedelta(minutes=6))
    db.session.commit()
    assert late.id in db.session.get(Event, event.id).lottery_record["applicants"]


# ------------------------------------------------------------------ the pure draw: properties and statistics

groups_strategy = st.dictionaries(st.integers(1, 10_000), st.integers(1, 4), min_size=0, max_size=25)


@settings(max_examples=300, deadline=None)
@given(groups=groups_strategy, seats=st.integers(0, 30), seed=st.binary(min_size=32, max_size=32),
       priority_share=st.floats(0, 1), shuffle_seed=st.integers(0, 2**32))
def test_draw_properties(groups, seats, seed, priority_share, shuffle_seed):
    hex_seed = seed.hex()
    ids = list(groups)
    priority = set(ids[:int(len(ids) * priority_share)])
    order = lottery.draw_order(hex_seed, ids, priority)
    won, lost = lottery.pick(order, groups, seats)
    # Everyone is decided once; whole groups only (a group is one id with its size).
    assert sorted(won + lost) == sorted(ids)
    # Never oversold.
    assert sum(groups[g] for g in won) <= seats
    # Nothing left that would still fit: a group loses only when it did not fit at its turn.
    free = seats
    for gid in order:
        if gid in won:
            free -= groups[gid]
        else:
            assert groups[gid] > free
    # The priority round comes first.
    assert set(order[:len(priority)]) == priority
    # Reproducible from the seed, whatever order the inputs come in (application order does not matter).
    shuffled = ids[:]
    random.Random(shuffle_seed).shuffle(shuffled)
    assert lottery.draw_order(hex_seed, shuffled, list(priority)) == order


def _seeds(n: int) -> list[str]:
    # Fixed, distinct seeds: the test is not flaky, and HMAC-SHA256 over them behaves as random ones.
    return [hashlib.sha256(f"lottery-statistics-{i}".encode()).hexdigest() for i in range(n)]


def test_each_applicant_of_one_class_wins_equally_often():
    """4 applicants, 1 seat, 10,000 draws: each wins 25 % ± 2 % (about 4.6 standard deviations),
    whether it applied first or last."""
    draws = 10_000
    applicants = [101, 102, 103, 104]  # ids in application order
    wins = Counter()
    for seed in _seeds(draws):
        won, _lost = lottery.pick(lottery.draw_order(seed, applicants), dict.fromkeys(applicants, 1), 1)
        wins[won[0]] += 1
    for applicant in applicants:
        assert abs(wins[applicant] / draws - 0.25) < 0.02, wins


def test_priority_class_wins_first_and_equally_often_within_each_class():
    draws = 10_000
    favoured, others = [7, 8], [1, 2, 3, 4]
    wins = Counter()
    for seed in _seeds(draws):
        won, _lost = lottery.pick(lottery.draw_order(seed, others + favoured, favoured),
                                  dict.fromkeys(others + favoured, 1), 3)
        wins.update(won)
    assert wins[7] == wins[8] == draws  # the priority round fits in the seats: always seated
    for applicant in others:  # the one seat left: 25 % each
        assert abs(wins[applicant] / draws - 0.25) < 0.02, wins


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(0, 2), min_size=1, max_size=6), capacity=st.integers(0, 5))
def test_drawn_registrations_never_oversell_and_replay(ctx, sizes, capacity):
    """The same properties on the database: seats, groups and the stored replay."""
    event = lottery_event(capacity=capacity)
    leads = [apply(event, companions=n) for n in sizes]
    result = lottery.draw(event.id, event.lottery_draw_at)
    db.session.commit()
    counts = statuses(event.id)
    assert counts["confirmed"] <= capacity and counts["applied"] == 0
    assert counts["confirmed"] + counts["waitlisted"] == sum(sizes) + len(sizes)
    for lead in leads:
        lead = db.session.get(Registration, lead.id)
        assert {c.status for c in lead.companions} <= {lead.status}
    db.session.refresh(event)
    won, _lost = lottery.replay(event)
    assert won == event.lottery_record["won"] and result.won == counts["confirmed"]


# ------------------------------------------------------------------ races (both databases)


def _threads(app, *targets) -> list[BaseException]:
    barrier = threading.Barrier(len(targets))
    errors: list[BaseException] = []

    def run(target):
        with app.app_context():
            try:
                barrier.wait()
                with write_intent():
                    target()
                    db.session.commit()
            except BaseException as exc:  # noqa: BLE001 (reported by the caller)
                errors.append(exc)
                db.session.rollback()

    threads = [threading.Thread(target=run, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return errors


@pytest.mark.parametrize("round_no", range(4))
def test_applications_and_cancellations_during_the_draw(app, ctx, round_no):
    event = lottery_event(capacity=2)
    applicants = [apply(event) for _ in range(5)]
    event_id, leaving = event.id, applicants[round_no].id
    late: list[int] = []
    db.session.commit()

    def newcomer():
        late.append(sign_up(event_id, SignupRequest(person=person_input(), consent=True)).registration.id)

    errors = _threads(app, lambda: lottery.draw(event_id, utcnow()),
                      newcomer, lambda: cancel(leaving))
    assert errors == []
    db.session.expire_all()
    event = db.session.get(Event, event_id)
    counts = statuses(event_id)
    assert counts["applied"] == 0  # an application either went into the draw or came after it
    assert counts["confirmed"] == 2 and counts["cancelled"] == 1  # seats full, never oversold
    assert counts["waitlisted"] == 3
    record = event.lottery_record
    newcomer_row = db.session.get(Registration, late[0])
    if late[0] in record["applicants"]:
        assert newcomer_row.status in ("confirmed", "waitlisted")
    else:
        assert newcomer_row.status == "waitlisted" and waitlist_position(newcomer_row) == 3  # behind the drawn
    if leaving not in record["applicants"]:
        assert leaving not in record["won"]


def test_two_draws_at_once_draw_once(app, ctx):
    event = lottery_event(capacity=1)
    for _ in range(3):
        apply(event)
    event_id, now = event.id, event.lottery_draw_at + timedelta(minutes=1)
    db.session.commit()  # end this session's read: the threads' writes are then visible to it
    drawn: list[int] = []
    errors = _threads(app, lambda: drawn.append(lottery.draw_due_lotteries(now)),
                      lambda: drawn.append(lottery.draw_due_lotteries(now)))
    assert errors == []
    assert sorted(drawn) == [0, 3]
    assert statuses(event_id) == {"confirmed": 1, "waitlisted": 2}
    assert db.session.execute(select(func.count()).select_from(AuditEntry)
                              .where(AuditEntry.action == "lottery_draw")).scalar_one() == 1
    assert len(messages("registration_confirmed")) == 1


def test_attendees_of_a_linked_event_get_the_priority_round(ctx):
    """A matching session drawn by lottery: who came to the linked fieldwork (the access rules' links)
    is drawn first, without any staff flag."""
    from eventapp.services import matching
    from tests.services.test_matching import BEFORE_FIELDWORK, FIELDWORK_AT, MATCHING_AT, attend

    fieldwork = make_event(kind="fieldwork", starts_at=FIELDWORK_AT, slug="fw-lottery")
    came = make_registration_at(fieldwork, "came@example.com", BEFORE_FIELDWORK)
    make_registration_at(fieldwork, "stayed@example.com", BEFORE_FIELDWORK)  # signed up, never came
    attend(came)
    session = make_event(kind="matching_session", starts_at=MATCHING_AT, ends_at=MATCHING_AT + timedelta(hours=3),
                         slug="ms-lottery", fee_yen=0, capacity=1, allocation="lottery",
                         lottery_draw_at=MATCHING_AT - timedelta(days=10))
    matching.configure(session.id, access_rule="open", links=[("event", fieldwork.id)])
    db.session.commit()
    applied_at = MATCHING_AT - timedelta(days=20)
    others = [make_registration_at(session, f"other{n}@example.com", applied_at) for n in range(4)]
    returning = make_registration_at(session, "came@example.com", applied_at)
    assert returning.status == "applied"
    lottery.draw(session.id, MATCHING_AT - timedelta(days=10))
    db.session.commit()
    assert db.session.get(Registration, returning.id).status == "confirmed"
    assert {db.session.get(Registration, r.id).status for r in others} == {"waitlisted"}
    assert session.lottery_record["priority"] == [returning.id]


def make_registration_at(event: Event, email: str, now) -> Registration:
    result = sign_up(event.id, SignupRequest(person=person_input(email=email), consent=True, now=now))
    db.session.commit()
    return result.registration
