"""The yearly report over a history larger than a statement's parameter limit (PostgreSQL protocol:
65,535): the report used to fetch every earlier attended registration id and send them back as IN (…),
which the server refused. Built with bulk inserts so it stays a few seconds; part of `make test` on both
databases (no marker excludes it)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, insert
from sqlalchemy import event as sa_event

from eventapp.extensions import db
from eventapp.models import Attendance, CheckIn, Person, Registration
from eventapp.services import reports
from tests.conftest import jst, make_event
from tests.staff_support import make_user

PEOPLE = 3_000               # each signed up for every earlier event
NO_SHOWS = 10                # people 2,991–3,000 never came
EARLIER_EVENTS = 22          # 11 in FY2027, 11 in FY2028: 22 × 2,990 = 65,780 earlier attended registrations,
#                              more than 65,535 (one parameter each would not fit in one statement)
RETURNING, NEW = 300, 200    # FY2030 sign-ups: 300 earlier attendees and 200 first-timers (+ the 10 no-shows)
LATER = jst(2032, 1, 1)


def _people(first: int, count: int, at) -> list[dict]:
    return [{"id": n, "email": f"p{n}@example.com", "name": f"岩手 太郎{n}", "furigana": "いわて たろう",
             "iwate_relation": "none", "created_at": at, "updated_at": at, "calendar_token": f"cal{n}"}
            for n in range(first, first + count)]


def _registrations(event, person_ids, first_id: int) -> list[dict]:
    at = event.starts_at - timedelta(days=7)
    return [{"id": first_id + i, "event_id": event.id, "person_id": pid, "status": "confirmed",
             "name": f"岩手 太郎{pid}", "furigana": "いわて たろう", "iwate_relation": "none", "confirmed_at": at,
             "manage_token": f"m{event.id}-{pid}", "ticket_code": f"t{event.id}-{pid}", "consent_version": "1",
             "consent_at": at, "created_at": at, "updated_at": at}
            for i, pid in enumerate(person_ids)]


def _checkins(day_id: int, registration_ids, at, **extra) -> list[dict]:
    return [{"registration_id": rid, "event_day_id": day_id, "checked_in_at": at, "recorded_at": at,
             "nonce": f"n{rid}", **extra} for rid in registration_ids]


@pytest.fixture
def long_history(ctx):
    earlier = [make_event(kind=("fieldwork", "onsite_seminar")[k % 2], slug=f"old-{k}", capacity=5_000,
                          starts_at=jst(2027 + k // 11, 4, 10, 13) + timedelta(days=30 * (k % 11))) for k in range(EARLIER_EVENTS)]
    this_year = make_event(kind="onsite_seminar", starts_at=jst(2030, 9, 1, 13), slug="sem-2030", capacity=1_000)
    staff = make_user()
    db.session.execute(insert(Person), _people(1, PEOPLE + NEW, earlier[0].starts_at - timedelta(days=30)))
    everyone = list(range(1, PEOPLE + 1))
    next_id = 1
    for k, event in enumerate(earlier):
        db.session.execute(insert(Registration), _registrations(event, everyone, next_id))
        came = range(next_id, next_id + PEOPLE - NO_SHOWS)
        if k == 0:  # scanned at the door
            db.session.execute(insert(CheckIn), _checkins(event.days[0].id, came, event.starts_at))
        else:       # marked by staff
            db.session.execute(insert(Attendance), [{"registration_id": rid, "source": "staff",
                                                     "recorded_at": event.ends_at} for rid in came])
        next_id += PEOPLE

    # FY2030: of the 300 returning attendees 250 come, the 10 earlier no-shows all come, 140 new people come;
    # one more new person's scan was undone (not attended).
    returning, never_came = list(range(1, RETURNING + 1)), list(range(PEOPLE - NO_SHOWS + 1, PEOPLE + 1))
    new = list(range(PEOPLE + 1, PEOPLE + NEW + 1))
    db.session.execute(insert(Registration), _registrations(this_year, returning + never_came + new, next_id))
    came = ([next_id + i for i in range(250)] + [next_id + RETURNING + i for i in range(NO_SHOWS)]
            + [next_id + RETURNING + NO_SHOWS + i for i in range(140)])
    at = this_year.starts_at
    db.session.execute(insert(CheckIn), _checkins(this_year.days[0].id, came, at) + _checkins(
        this_year.days[0].id, [next_id + RETURNING + NO_SHOWS + 140], at, undone_at=at + timedelta(minutes=1),
        undone_by_id=staff.id))
    db.session.commit()
    yield
    # Emptied here, children first: the suite's generic clean-up deletes table by table, and SQLite's
    # foreign key checks make that slow at this size.
    db.session.rollback()
    for model in (CheckIn, Attendance, Registration, Person):
        db.session.execute(delete(model))
    db.session.commit()


def test_the_report_counts_a_history_beyond_the_parameter_limit(long_history, app):
    largest = []

    def watch(_conn, _cursor, _statement, parameters, _context, executemany):
        if not executemany:
            largest.append(len(parameters or ()))

    engine = db.engine
    sa_event.listen(engine, "before_cursor_execute", watch)
    try:
        report = reports.year_report(2030, now=LATER)
        csv_text = reports.report_csv(report).decode("utf-8-sig")
    finally:
        sa_event.remove(engine, "before_cursor_execute", watch)

    assert report.events_by_kind["onsite_seminar"] == 1
    signed_up = RETURNING + NO_SHOWS + NEW
    assert (report.signups, report.confirmed, report.cancelled) == (signed_up, signed_up, 0)
    assert (report.attended, report.ended_confirmed) == (400, signed_up)
    assert report.participants == 400 and report.repeat_in_year == 0
    # Came back: 250 of the 2,990 earlier attendees; the new people and the earlier no-shows are not repeats.
    assert report.repeat_across_years == 250
    assert report.funnel["seminar"] == 400 and report.funnel_through["fieldwork"] == 0
    assert "前年度以前にも参加した人,250" in csv_text
    # Every statement stays small: no id list from one query sent back as parameters of the next.
    assert max(largest) < 50, largest

    fy2028 = reports.year_report(2028, now=LATER)
    assert fy2028.events_total == 11 and fy2028.attended == 11 * (PEOPLE - NO_SHOWS)
    assert (fy2028.participants, fy2028.repeat_in_year, fy2028.repeat_across_years) == (2_990, 2_990, 2_990)
    assert (fy2028.funnel["seminar"], fy2028.funnel["fieldwork"], fy2028.funnel_through["fieldwork"]) == (
        2_990, 2_990, 2_990)
