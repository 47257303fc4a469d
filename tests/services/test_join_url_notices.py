"""At an online seminar's join-URL reveal time, everyone confirmed before it gets one mail with the URL."""

from __future__ import annotations

import threading
from datetime import timedelta

from icalendar import Calendar
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import OutboxMessage, Registration
from eventapp.models.base import utcnow
from eventapp.services import mail
from eventapp.services import registration as registration_service
from eventapp.services.join_url_notices import queue_join_url_mails
from eventapp.services.scheduled import run_scheduled
from tests.factories import future, make_event, make_registration

ZOOM = "https://zoom.example.jp/j/555?pwd=at-the-reveal"


def seminar(**overrides):
    start = future(days=2, hour=19)
    data = {"kind": "online_seminar", "title": "地方複業のはじめかた", "starts_at": start,
            "ends_at": start + timedelta(hours=1), "online_url": ZOOM, "venue_name": "", "venue_address": "",
            "capacity": 3, "online_url_reveal_at": start - timedelta(hours=1),
            "reminders": []}  # the reminder pass runs beside this one: no reminder mails in these counts
    data.update(overrides)
    return make_event(**data)


def join_mails() -> list[OutboxMessage]:
    db.session.rollback()
    return db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == "join_url_revealed")
                              .order_by(OutboxMessage.id)).scalars().all()


def test_people_confirmed_before_the_reveal_get_the_url_once_at_the_reveal_time(ctx):
    event = seminar()
    early = make_registration(event)
    confirmation = db.session.execute(select(OutboxMessage).where(
        OutboxMessage.registration_id == early.id)).scalar_one()
    assert ZOOM not in confirmation.body  # told the URL comes later
    reveal = event.online_url_reveal_at

    assert queue_join_url_mails(reveal - timedelta(minutes=1)) == 0
    assert queue_join_url_mails(reveal + timedelta(minutes=1)) == 1
    db.session.commit()
    (message,) = join_mails()
    assert message.registration_id == early.id and message.to_addr == early.person.email
    assert "参加URL" in message.subject and "地方複業のはじめかた" in message.subject
    assert ZOOM in message.body and "出席コード" in message.body
    assert f"/r/{early.manage_token}" in message.body
    # Run again (cron every minute, or a retry): nothing more.
    assert queue_join_url_mails(reveal + timedelta(minutes=2)) == 0
    db.session.commit()
    assert len(join_mails()) == 1


def test_nobody_else_gets_it(ctx):
    event = seminar(capacity=2)
    reveal = event.online_url_reveal_at
    confirmed = make_registration(event)
    cancelled = make_registration(event)
    waitlisted = make_registration(event)
    assert waitlisted.status == "waitlisted"
    registration_service.cancel(cancelled.id)
    db.session.commit()
    db.session.refresh(waitlisted)
    assert waitlisted.status == "confirmed"  # promoted from the waiting list before the reveal: due too
    third = make_registration(event)
    assert third.status == "waitlisted"
    no_reveal_time = make_registration(seminar(online_url_reveal_at=None))
    onsite = make_registration(make_event(kind="onsite_seminar"))
    drafted = seminar()
    make_registration(drafted)
    drafted.status = "draft"
    db.session.commit()

    assert queue_join_url_mails(reveal + timedelta(minutes=1)) == 2
    db.session.commit()
    assert {m.registration_id for m in join_mails()} == {confirmed.id, waitlisted.id}
    assert no_reveal_time.join_url_mailed_at is None and onsite.join_url_mailed_at is None
    # After the seminar has ended nobody is mailed any more.
    late = seminar()
    make_registration(late)
    assert queue_join_url_mails(late.ends_at + timedelta(minutes=1)) == 0


def test_confirmed_after_the_reveal_had_the_url_in_the_confirmation(ctx):
    start = future(days=1, hour=19)
    event = seminar(starts_at=start, ends_at=start + timedelta(hours=1),
                    online_url_reveal_at=utcnow() - timedelta(minutes=5))
    late = make_registration(event)
    confirmation = db.session.execute(select(OutboxMessage).where(
        OutboxMessage.registration_id == late.id)).scalar_one()
    assert ZOOM in confirmation.body
    assert queue_join_url_mails(utcnow()) == 0


def test_sent_mail_carries_the_url_and_a_calendar_invite_with_it(ctx, sent_mail):
    # Real clock: signed up an hour ago, the URL was revealed five minutes ago.
    start = future(days=1, hour=19)
    event = seminar(starts_at=start, ends_at=start + timedelta(hours=1),
                    online_url_reveal_at=utcnow() - timedelta(minutes=5))
    make_registration(event, now=utcnow() - timedelta(hours=1))
    assert run_scheduled(utcnow()) == {"lottery": 0, "join_url": 1, "reminders": 0}
    assert mail.deliver_due(limit=10) == (2, 0)
    (email,) = [m for m in sent_mail() if "参加URL" in str(m["Subject"])]
    assert ZOOM in email.get_body(("plain",)).get_content()
    (invite,) = [part for part in email.iter_attachments() if part.get_content_type() == "text/calendar"]
    (vevent,) = Calendar.from_ical(invite.get_content()).walk("VEVENT")
    assert ZOOM in str(vevent["DESCRIPTION"]) or ZOOM in str(vevent.get("LOCATION", "")) or ZOOM in str(
        vevent.get("URL", ""))


def test_two_passes_at_once_mail_each_person_once(app):
    with app.app_context():
        event = seminar(capacity=10)
        people = [make_registration(event).id for _ in range(6)]
        reveal = event.online_url_reveal_at
    barrier = threading.Barrier(2)
    counts: list[int] = []

    def sender() -> None:
        with app.app_context():
            barrier.wait()
            counts.append(run_scheduled(reveal + timedelta(minutes=1))["join_url"])
            db.session.remove()

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with app.app_context():
        assert sorted(counts)[1] > 0 and sum(counts) == 6
        assert sorted(m.registration_id for m in join_mails()) == sorted(people)
        assert all(r.join_url_mailed_at is not None for r in db.session.execute(
            select(Registration).where(Registration.id.in_(people))).scalars())
