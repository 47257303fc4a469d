"""Reminder mails and the "waiting list has closed" mail: due times, kind defaults, exactly once (two
passes racing), nobody cancelled or waiting, re-armed when the event moves, and the CLI."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select

from eventapp.extensions import db
from eventapp.models import Answer, Event, OutboxMessage, Registration, ReminderSend
from eventapp.models.base import utcnow
from eventapp.services import mail, reminders
from eventapp.services import registration as registration_service
from eventapp.services.errors import ValidationFailed
from eventapp.services.events import update_event
from eventapp.services.registration import SignupRequest, sign_up
from eventapp.services.scheduled import passes, run_scheduled
from tests.factories import future, make_event, make_registration, person_input
from tests.services.test_mail import mail_config, smtp_server  # noqa: F401 (fixtures)

MINUTE = timedelta(minutes=1)


def queued(kind: str = "reminder") -> list[OutboxMessage]:
    db.session.expire_all()
    return list(db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == kind)
                                   .order_by(OutboxMessage.id)).scalars())


def run_pass(now) -> int:
    count = reminders.queue_due_reminders(now)
    db.session.commit()
    return count


def test_the_pass_is_wired_into_send_mail():
    assert ("reminders", reminders.queue_due_reminders) in passes()


def test_fieldwork_gets_its_kind_defaults_3_and_1_days_before_with_the_days_details(ctx):
    start = future(20, hour=9)
    event = make_event(kind="fieldwork", title="花巻ブドウ収穫", starts_at=start, ends_at=start + timedelta(hours=8),
                       meeting_at=start - timedelta(minutes=30), meeting_point="花巻駅東口", organiser_phone="090-1234-5678",
                       what_to_bring="長靴、軍手、雨具")
    people = [make_registration(event) for _ in range(2)]
    meeting = start - timedelta(minutes=30)  # reminders count back from 集合

    assert run_pass(meeting - timedelta(days=3) - MINUTE) == 0
    assert run_pass(meeting - timedelta(days=3) + MINUTE) == 2
    assert run_pass(meeting - timedelta(days=3) + 2 * MINUTE) == 0, "the same reminder is queued once"
    assert run_pass(meeting - timedelta(days=1) + MINUTE) == 2
    assert run_pass(meeting + MINUTE) == 0, "nothing once it has begun"

    mails = queued()
    assert sorted(m.to_addr for m in mails) == sorted([p.person.email for p in people] * 2)
    body, subject = mails[0].body, mails[0].subject
    assert subject.startswith("【リマインダー】花巻ブドウ収穫（") and "「" not in subject
    for expected in ("長靴、軍手、雨具", "花巻駅東口", "090-1234-5678", "服装・天候", "集合",
                     f"/events/{event.slug}/programme.pdf", mails[0].registration.manage_token):
        assert expected in body, expected
    assert mails[0].attachments == [] and mail.registration_attachments(mails[0]) == []  # no invite again
    rows = db.session.execute(select(ReminderSend.code, func.count()).group_by(ReminderSend.code)).all()
    assert sorted(rows) == [("1d", 2), ("3d", 2)]


def test_online_seminar_gets_1_day_and_1_hour_before_with_join_url_and_attendance_code(ctx):
    start = future(10, hour=19)
    event = make_event(kind="online_seminar", starts_at=start, ends_at=start + timedelta(hours=2),
                       online_url="https://meet.example.jp/abc")
    make_registration(event)
    assert run_pass(start - timedelta(days=1) + MINUTE) == 1
    assert run_pass(start - timedelta(hours=2)) == 0
    assert run_pass(start - timedelta(hours=1) + MINUTE) == 1
    last = queued()[-1].body
    assert "https://meet.example.jp/abc" in last and "出席コード" in last
    assert "受付用QRコード" not in last and "服装" not in last


def test_the_join_url_shows_in_a_reminder_once_revealed_by_the_pass_clock(ctx):
    start = future(10, hour=19)
    event = make_event(kind="online_seminar", starts_at=start, ends_at=start + timedelta(hours=2),
                       online_url="https://meet.example.jp/later", online_url_reveal_at=start - timedelta(hours=3))
    make_registration(event)
    assert run_pass(start - timedelta(days=1) + MINUTE) == 1
    assert run_pass(start - timedelta(hours=1) + MINUTE) == 1
    day_before, hour_before = (m.body for m in queued())
    assert "https://meet.example.jp/later" not in day_before and "でお知らせします" in day_before
    assert "https://meet.example.jp/later" in hour_before


@pytest.mark.parametrize("kind", ["onsite_seminar", "matching_session"])
def test_seminars_and_matching_sessions_get_one_reminder_the_day_before(ctx, kind):
    start = future(10, hour=13)
    event = make_event(kind=kind, starts_at=start, ends_at=start + timedelta(hours=3))
    make_registration(event)
    assert run_pass(start - timedelta(days=3) + MINUTE) == 0
    assert run_pass(start - timedelta(days=1) + MINUTE) == 1
    assert run_pass(start - timedelta(hours=1) + MINUTE) == 0
    assert "受付用QRコード" in queued()[0].body


def test_only_the_latest_due_reminder_goes_to_a_late_sign_up(ctx):
    start = future(10, hour=9)
    event = make_event(kind="fieldwork", starts_at=start, ends_at=start + timedelta(hours=8))
    make_registration(event)
    # Both the 3-day and the 1-day reminder are due: only the 1-day one, and the 3-day one never after.
    assert run_pass(start - timedelta(hours=20)) == 1
    assert [r.code for r in db.session.execute(select(ReminderSend)).scalars()] == ["1d"]
    assert run_pass(start - timedelta(hours=10)) == 0


def test_chosen_reminders_replace_the_defaults_and_an_empty_choice_sends_none(ctx):
    start = future(10, hour=13)
    chosen = make_event(kind="onsite_seminar", starts_at=start, ends_at=start + timedelta(hours=3))
    update_event(chosen.id, {"reminders": ["3h", "2d", "3h"]})  # any order; repeats collapse
    assert chosen.reminders == ["2d", "3h"]
    silent = make_event(kind="fieldwork", starts_at=start, ends_at=start + timedelta(hours=3), reminders=[])
    db.session.commit()
    make_registration(chosen)
    make_registration(silent)
    assert run_pass(start - timedelta(days=2) + MINUTE) == 1
    assert run_pass(start - timedelta(days=1) + MINUTE) == 0  # 1d is not chosen
    assert run_pass(start - timedelta(hours=3) + MINUTE) == 1
    assert {m.registration.event_id for m in queued()} == {chosen.id}
    update_event(chosen.id, {"reminders": None})
    assert reminders.event_reminders(chosen) == ("1d",)


@pytest.mark.parametrize("value", [["2w"], ["1d", 3], "1d", ["1w", "3d", "1d", "1h"]])
def test_unknown_or_too_many_reminders_are_refused(ctx, value):
    event = make_event()
    with pytest.raises(ValidationFailed) as failure:
        update_event(event.id, {"reminders": value})
    assert set(failure.value.fields) == {"reminders"}


def test_a_stored_unknown_code_is_skipped_not_fatal(ctx):
    start = future(10, hour=13)
    event = make_event(kind="onsite_seminar", starts_at=start, ends_at=start + timedelta(hours=3))
    event.reminders = ["fortnight", "1d"]
    db.session.commit()
    make_registration(event)
    assert run_pass(start - timedelta(days=1) + MINUTE) == 1


def test_nobody_cancelled_or_waiting_and_no_cancelled_event_gets_a_reminder(ctx):
    start = future(10, hour=13)
    event = make_event(kind="onsite_seminar", capacity=2, starts_at=start, ends_at=start + timedelta(hours=3),
                       roster_freeze_at=start - timedelta(days=5))  # frozen: a cancellation promotes nobody
    confirmed = make_registration(event)
    leaving = make_registration(event)
    waiting = make_registration(event)
    assert waiting.status == "waitlisted"
    registration_service.cancel(leaving.id, now=start - timedelta(days=4))  # after the freeze
    db.session.commit()
    assert db.session.get(Registration, waiting.id).status == "waitlisted"
    called_off = make_event(kind="onsite_seminar", starts_at=start, ends_at=start + timedelta(hours=3))
    make_registration(called_off)
    update_event(called_off.id, {"status": "cancelled"})
    db.session.commit()

    assert run_pass(start - timedelta(days=1) + MINUTE) == 2  # the reminder and the waiting-list mail
    assert [m.registration_id for m in queued()] == [confirmed.id]
    assert [m.registration_id for m in queued("waitlist_closed")] == [waiting.id]


def test_waitlisted_people_get_one_mail_when_the_roster_freezes(ctx, sent_mail):
    start = future(10, hour=13)
    freeze = start - timedelta(days=2)
    event = make_event(kind="onsite_seminar", title="盛岡セミナー", capacity=1, max_companions=1, starts_at=start,
                       ends_at=start + timedelta(hours=3), roster_freeze_at=freeze, reminders=[])
    make_registration(event)
    group = sign_up(event.id, SignupRequest(person_input(), consent=True,
                                            companions=[{"name": "同行 一郎", "furigana": "どうこう"}]))
    db.session.commit()
    assert group.registration.status == "waitlisted"

    assert run_pass(freeze - MINUTE) == 0
    assert run_pass(freeze + MINUTE) == 1, "one mail to the lead for the group"
    assert run_pass(freeze + 2 * MINUTE) == 0
    assert run_pass(start + MINUTE) == 0
    (message,) = queued("waitlist_closed")
    assert message.subject == "【キャンセル待ち終了】盛岡セミナー"
    assert "繰り上げを終了" in message.body and "同行者の方を含め" in message.body
    codes = db.session.execute(select(ReminderSend.registration_id).where(
        ReminderSend.code == "waitlist_closed")).scalars().all()
    assert sorted(codes) == sorted([group.registration.id, group.companions[0].id])


def test_without_a_roster_freeze_the_waiting_list_closes_at_the_start(ctx):
    start = future(10, hour=13)
    event = make_event(kind="onsite_seminar", capacity=0, starts_at=start, ends_at=start + timedelta(hours=3))
    make_registration(event)
    assert run_pass(start - MINUTE) == 0
    assert run_pass(start + MINUTE) == 1
    assert run_pass(start + timedelta(hours=3)) == 0  # over: nothing more


def test_a_group_gets_one_reminder_listing_its_companions(ctx):
    start = future(10, hour=13)
    event = make_event(kind="onsite_seminar", max_companions=2, starts_at=start, ends_at=start + timedelta(hours=3))
    group = sign_up(event.id, SignupRequest(person_input(), consent=True,
                                            companions=[{"name": "同行 花子", "furigana": "どうこう"}]))
    db.session.commit()
    assert run_pass(start - timedelta(days=1) + MINUTE) == 1
    (message,) = queued()
    assert message.registration_id == group.registration.id and "同行 花子" in message.body
    # The companion has its row: cancelling the lead alone does not mail the companion the same reminder.
    registration_service.cancel(group.registration.id)
    db.session.commit()
    assert run_pass(start - timedelta(days=1) + 2 * MINUTE) == 0


def test_moving_the_event_arms_its_reminders_again(ctx):
    start = future(10, hour=13)
    event = make_event(kind="onsite_seminar", starts_at=start, ends_at=start + timedelta(hours=3))
    make_registration(event)
    assert run_pass(start - timedelta(days=1) + MINUTE) == 1
    later = start + timedelta(days=7)
    update_event(event.id, {"starts_at": later, "ends_at": later + timedelta(hours=3)})
    db.session.commit()
    assert run_pass(start - timedelta(days=1) + 2 * MINUTE) == 0
    assert run_pass(later - timedelta(days=1) + MINUTE) == 1
    assert run_pass(later - timedelta(days=1) + 2 * MINUTE) == 0
    (first, second) = queued()
    assert first.body != second.body and "（" in second.subject
    armed = db.session.execute(select(ReminderSend.armed_for).order_by(ReminderSend.id)).scalars().all()
    assert armed == [start, later]


def _event_with_people(n: int):
    start = future(10, hour=13)
    event = make_event(kind="onsite_seminar", starts_at=start, ends_at=start + timedelta(hours=3))
    people = [make_registration(event) for _ in range(n)]
    return start, people


def test_two_passes_racing_queue_every_reminder_once_and_smtp_gets_each_once(app, ctx, mail_config, smtp_server):  # noqa: F811
    start, people = _event_with_people(6)
    now = start - timedelta(days=1) + MINUTE
    db.session.commit()
    barrier = threading.Barrier(2)
    counts: list[int] = []
    errors: list[BaseException] = []

    def one_pass() -> None:
        with app.app_context():  # its own session and connection
            try:
                barrier.wait()
                counts.append(run_pass(now))
            except BaseException as exc:  # noqa: BLE001 (reported below)
                errors.append(exc)
                db.session.rollback()

    threads = [threading.Thread(target=one_pass) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(counts) in ([0, 6], [1, 5], [2, 4], [3, 3]) and sum(counts) == 6
    assert len(queued()) == 6

    port, recorder = smtp_server
    mail_config.update(MAIL_BACKEND="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_USE_TLS=False,
                       MAIL_USERNAME="")
    mail.deliver_due()
    reminders_sent = [to for _, [to], message in recorder.messages if message["Subject"].startswith("【リマインダー】")]
    assert sorted(reminders_sent) == sorted(p.person.email for p in people)
    assert run_pass(now + MINUTE) == 0


def test_a_pass_that_read_before_another_committed_hits_the_unique_row(app, ctx, monkeypatch):
    """The stale pass finds the same work, and the unique key alone keeps it from queueing it again."""
    start, people = _event_with_people(3)
    now = start - timedelta(days=1) + MINUTE
    real_due = reminders._due
    seen: list = []

    def due_then_other_pass_wins(at):
        if seen:
            return seen[0]  # stale: what this pass read before the other committed
        seen.append(real_due(at))
        other: list[int] = []

        def other_pass() -> None:
            with app.app_context():
                other.append(run_pass(at))

        thread = threading.Thread(target=other_pass)
        monkeypatch.setattr(reminders, "_due", real_due)  # the other pass is a normal one
        thread.start()
        thread.join()
        monkeypatch.setattr(reminders, "_due", due_then_other_pass_wins)
        assert other == [3]
        return seen[0]

    monkeypatch.setattr(reminders, "_due", due_then_other_pass_wins)
    assert run_pass(now) == 0
    assert len(queued()) == 3
    assert db.session.execute(select(func.count()).select_from(ReminderSend)).scalar_one() == 3


def test_send_reminders_cli_queues_once_and_send_mail_runs_the_pass_too(app):
    with app.app_context():
        start = (utcnow() + timedelta(hours=12)).replace(second=0, microsecond=0)  # the 1d reminder is due
        event = make_event(kind="onsite_seminar", starts_at=start, ends_at=start + timedelta(hours=2))
        make_registration(event)
        make_registration(event)
        event_id = event.id
    runner = app.test_cli_runner()
    first = runner.invoke(args=["send-reminders"])
    assert first.exit_code == 0, first.output
    assert first.output.strip() == "queued 2 reminder mails (sent by send-mail)"
    again = runner.invoke(args=["send-reminders"])
    assert again.output.strip() == "queued 0 reminder mails (sent by send-mail)"
    with app.app_context():  # a late sign-up: the next send-mail queues its reminder and sends it
        make_registration(db.session.get(Event, event_id))
    sent = runner.invoke(args=["send-mail"])
    assert sent.exit_code == 0, sent.output
    assert "queued 1 scheduled" in sent.output
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.kind == "reminder", OutboxMessage.status == "sent")).scalar_one() == 3


def test_deleting_a_registration_removes_its_rows(ctx):
    start, (person,) = _event_with_people(1)
    run_pass(start - timedelta(days=1) + MINUTE)
    assert db.session.execute(select(func.count()).select_from(ReminderSend)).scalar_one() == 1
    db.session.execute(delete(Answer).where(Answer.registration_id == person.id))
    db.session.execute(delete(Registration).where(Registration.id == person.id))  # the database cascades
    db.session.commit()
    assert db.session.execute(select(func.count()).select_from(ReminderSend)).scalar_one() == 0


def test_a_copied_event_keeps_its_reminder_choice(ctx):
    from eventapp.services.staff_events import duplicate_event

    event = make_event(kind="fieldwork", reminders=["1w", "1d"])
    copy = duplicate_event(event.id, slug="copied-reminders", shift_days=7)
    assert copy.reminders == ["1w", "1d"]


def test_a_failed_pass_leaves_no_row_and_the_next_pass_queues_everything(ctx, monkeypatch):
    """Row and mail are one transaction: a pass that breaks half-way claims nothing."""
    start, people = _event_with_people(3)
    now = start - timedelta(days=1) + MINUTE
    real_queue = mail.queue_registration_mail
    calls: list[str] = []

    def breaks_on_the_second(kind, registration, **extra):
        calls.append(kind)
        if len(calls) == 2:
            raise RuntimeError("SMTP template exploded")
        return real_queue(kind, registration, **extra)

    monkeypatch.setattr(mail, "queue_registration_mail", breaks_on_the_second)
    assert run_scheduled(now)["reminders"] == 0  # logged, rolled back
    assert db.session.execute(select(func.count()).select_from(ReminderSend)).scalar_one() == 0
    assert queued() == []
    monkeypatch.setattr(mail, "queue_registration_mail", real_queue)
    assert run_scheduled(now)["reminders"] == 3
    assert sorted(m.registration_id for m in queued()) == sorted(p.id for p in people)


def test_the_watching_sender_queues_and_sends_due_reminders(app, sent_mail):
    with app.app_context():
        start = (utcnow() + timedelta(hours=12)).replace(second=0, microsecond=0)
        event = make_event(kind="onsite_seminar", title="見張りセミナー", starts_at=start,
                           ends_at=start + timedelta(hours=2))
        email = make_registration(event).person.email
    stop = threading.Event()
    thread = threading.Thread(target=lambda: _watch(app, stop))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not _reminders_in(sent_mail()) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)
    (reminder,) = _reminders_in(sent_mail())
    assert str(reminder["To"]) == email and "見張りセミナー" in reminder["Subject"]


def _watch(app, stop: threading.Event) -> None:
    with app.app_context():
        mail.watch(interval_s=0.05, stop=stop)


def _reminders_in(messages: list) -> list:
    return [m for m in messages if m["Subject"].startswith("【リマインダー】")]


def test_a_pass_queues_at_most_its_limit_in_whole_groups_and_the_next_one_the_rest(ctx):
    start = future(10, hour=13)
    event = make_event(kind="onsite_seminar", max_companions=2, starts_at=start, ends_at=start + timedelta(hours=3))
    make_registration(event)
    group = sign_up(event.id, SignupRequest(person_input(), consent=True, companions=[
        {"name": "同行 一郎", "furigana": "どうこう"}, {"name": "同行 二郎", "furigana": "どうこう"}]))
    db.session.commit()
    make_registration(event)
    now = start - timedelta(days=1) + MINUTE
    assert reminders.queue_due_reminders(now, limit=2) == 2
    db.session.commit()
    assert reminders.queue_due_reminders(now, limit=2) == 1
    db.session.commit()
    grouped = next(m for m in queued() if m.registration_id == group.registration.id)
    assert "同行 一郎" in grouped.body and "同行 二郎" in grouped.body
    assert db.session.execute(select(func.count()).select_from(ReminderSend)).scalar_one() == 5


def test_an_english_sign_up_gets_english_reminders_and_waitlist_news(ctx):
    start = future(20, hour=9)
    event = make_event(kind="fieldwork", title="花巻ブドウ収穫", starts_at=start, ends_at=start + timedelta(hours=8),
                       capacity=1, what_to_bring="長靴")
    english = make_registration(event)
    waiting = make_registration(event)
    english.locale = waiting.locale = "en"
    db.session.commit()
    assert run_pass(start - timedelta(days=1) + MINUTE) == 1  # the reminder
    assert run_pass(start + MINUTE) == 1  # no roster freeze: the waiting list closes at the start
    (reminder,) = queued()
    (closed,) = queued("waitlist_closed")
    assert reminder.subject.startswith("[Reminder] 花巻ブドウ収穫 (") and "リマインダー" not in reminder.subject
    assert "Clothing and weather" in reminder.body and "What to bring" in reminder.body
    assert closed.subject.startswith("[Waiting list closed] ") and "no more places" in closed.body
