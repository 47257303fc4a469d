"""出席コード lockout per registration (issue 21, item 11): after 10 wrong codes a registration's code
entry rests for 15 minutes (counted in the database, logged and audited); the right code is refused
during the lock and accepted after it; other registrations are not affected."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from eventapp.extensions import db
from eventapp.models import Attendance, AttendanceCodeAttempts, AuditEntry
from eventapp.services import attendance
from eventapp.services.errors import DomainError
from tests.conftest import csrf_token_from, jst, make_event, make_registration

SEMINAR_AT = jst(2030, 8, 25, 19)


@pytest.fixture
def seminar(ctx):
    event = make_event(kind="online_seminar", starts_at=SEMINAR_AT, slug="lock-sem", online_url="https://x.test/")
    victim = make_registration(event, email="victim@example.com", now=jst(2030, 8, 1))
    other = make_registration(event, email="other@example.com", now=jst(2030, 8, 1))
    code = attendance.new_attendance_code(event.id)
    db.session.commit()
    wrong = "000000" if code != "000000" else "111111"
    return event, victim, other, code, wrong


def _try(registration, code, now):
    try:
        attendance.enter_code(registration, code, now=now)
    except attendance.CodeRefused as exc:
        db.session.commit()  # as the view does: the wrong try is kept
        return exc.code
    db.session.commit()
    return "ok"


def test_ten_wrong_codes_lock_the_entry_for_fifteen_minutes(seminar, caplog):
    event, victim, other, code, wrong = seminar
    t = event.starts_at + timedelta(minutes=5)
    with caplog.at_level(logging.WARNING, logger="eventapp.services.attendance"):
        answers = [_try(victim, wrong, t + timedelta(seconds=i)) for i in range(10)]
    assert answers == ["wrong_code"] * 9 + ["code_locked"]
    assert any("locked for registration" in r.message for r in caplog.records)
    assert db.session.query(AuditEntry).filter_by(action="attendance_lock", object_id=victim.id).count() == 1
    row = db.session.get(AttendanceCodeAttempts, victim.id)
    assert row.locked_until == t + timedelta(seconds=9) + attendance.CODE_LOCK

    # During the lock even the right code is refused, with a clear message.
    with pytest.raises(DomainError) as exc:
        attendance.enter_code(victim, code, now=t + timedelta(minutes=14))
    assert exc.value.code == "code_locked" and "一時的に停止" in exc.value.message and exc.value.status == 429
    db.session.rollback()
    assert db.session.query(Attendance).filter_by(registration_id=victim.id).count() == 0

    # Per registration: another participant of the same seminar is not locked.
    assert _try(other, code, t + timedelta(minutes=1)) == "ok"

    # After the lock the right code works and the counter is gone.
    assert _try(victim, code, t + timedelta(minutes=16)) == "ok"
    assert db.session.query(Attendance).filter_by(registration_id=victim.id).count() == 1
    assert db.session.get(AttendanceCodeAttempts, victim.id) is None


def test_after_a_lock_a_fresh_series_of_ten_tries(seminar):
    event, victim, _other, _code, wrong = seminar
    t = event.starts_at + timedelta(minutes=5)
    for i in range(10):
        _try(victim, wrong, t + timedelta(seconds=i))
    later = t + timedelta(minutes=20)
    answers = [_try(victim, wrong, later + timedelta(seconds=i)) for i in range(10)]
    assert answers == ["wrong_code"] * 9 + ["code_locked"]


def test_a_hundred_guesses_over_http_do_not_get_in(app, client, seminar):
    """The attack of the report: many wrong codes through the manage page, then the right one."""
    event, victim, _other, code, wrong = seminar
    token = victim.manage_token
    # The seminar is running now for the page (its entry window is checked against the real clock).
    event.starts_at = attendance.utcnow() - timedelta(minutes=10)
    event.ends_at = attendance.utcnow() + timedelta(hours=1)
    db.session.commit()
    page = client.get(f"/r/{token}")
    csrf = csrf_token_from(page.get_data(as_text=True))
    for _ in range(12):
        client.post(f"/r/{token}/attendance", data={"code": wrong, "csrf_token": csrf})
    response = client.post(f"/r/{token}/attendance", data={"code": code, "csrf_token": csrf}, follow_redirects=True)
    assert "入力を一時的に停止しています" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.query(Attendance).filter_by(registration_id=victim.id).count() == 0
    assert db.session.get(AttendanceCodeAttempts, victim.id).locked_until is not None
