"""Check-in service: idempotency, forged codes, wrong event, status checks, undo, walk-in, offline sync."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from eventapp.extensions import db
from eventapp.models import CheckIn, OutboxMessage, Registration
from eventapp.models.base import utcnow
from eventapp.services import checkin as service
from eventapp.services import registration as registration_service
from eventapp.services.accounts import create_user
from eventapp.services.errors import DomainError, NotFound, ValidationFailed
from tests.factories import make_event, make_registration, person_input


def _user(name: str = "田中", role: str = "checkin"):
    user, _ = create_user(f"{name.encode().hex()[:8]}-{role}@example.jp", role, "password-123", name)
    db.session.commit()
    return user


def _count(**where) -> int:
    stmt = select(func.count()).select_from(CheckIn)
    for key, value in where.items():
        stmt = stmt.where(getattr(CheckIn, key) == value)
    return db.session.execute(stmt).scalar_one()


def _active_count() -> int:
    return db.session.execute(select(func.count()).select_from(CheckIn).where(
        CheckIn.undone_at.is_(None), CheckIn.duplicate_of_id.is_(None))).scalar_one()


def test_check_in_then_second_scan_reports_time_and_who(ctx):
    event = make_event()
    reg = make_registration(event, answers={})
    tanaka, sato = _user("田中"), _user("佐藤")
    first = service.check_in(event.id, reg.ticket_code, "nonce-0001", user=tanaka)
    db.session.commit()
    assert first.result == "checked_in"
    assert first.checkin.by_name == "田中"
    second = service.check_in(event.id, reg.ticket_code.lower(), "nonce-0002", user=sato)
    db.session.commit()
    assert second.result == "already_checked_in"
    assert second.checkin.id == first.checkin.id
    assert service.result_message(second).startswith("受付済み ")
    assert service.result_message(second).endswith("(田中)")
    assert _count() == 1


def test_same_nonce_returns_same_result_without_a_second_row(ctx):
    event = make_event()
    reg = make_registration(event)
    first = service.check_in(event.id, reg.ticket_code, "retry-nonce-1")
    db.session.commit()
    again = service.check_in(event.id, reg.ticket_code, "retry-nonce-1")
    db.session.commit()
    assert again.result == "checked_in"
    assert again.checkin.id == first.checkin.id
    assert _count() == 1


def test_nonce_reused_for_another_ticket_is_refused(ctx):
    event = make_event()
    a, b = make_registration(event), make_registration(event)
    service.check_in(event.id, a.ticket_code, "shared-nonce")
    db.session.commit()
    with pytest.raises(DomainError) as exc:
        service.check_in(event.id, b.ticket_code, "shared-nonce")
    assert exc.value.code == "nonce_reused"


def test_forged_and_altered_codes_are_rejected_before_lookup(ctx):
    event = make_event()
    reg = make_registration(event)
    last = reg.ticket_code[-1]
    altered = reg.ticket_code[:-1] + ("A" if last != "A" else "B")
    for code in (altered, f"E{event.id}-AAAAAAAAAAAAA-AAAAAAAAAAAAAAAA"):
        with pytest.raises(DomainError) as exc:
            service.check_in(event.id, code, "nonce-forged")
        assert exc.value.code == "invalid_signature"
    # Text not shaped like a code is not a forgery: it is simply not a ticket.
    for code in ("hello", "", "https://example.jp/"):
        with pytest.raises(DomainError) as exc:
            service.check_in(event.id, code, "nonce-forged")
        assert exc.value.code == "not_a_ticket"
    assert _count() == 0


def test_wrong_event_cancelled_waitlisted_and_unknown(ctx, app):
    event, other = make_event(capacity=1), make_event()
    confirmed = make_registration(event)
    waitlisted = make_registration(event)
    assert waitlisted.status == "waitlisted"
    elsewhere = make_registration(other)
    codes = {"wrong_event": elsewhere.ticket_code, "waitlisted": waitlisted.ticket_code}
    for expected, code in codes.items():
        with pytest.raises(DomainError) as exc:
            service.check_in(event.id, code, "nonce-status")
        assert exc.value.code == expected
        assert exc.value.status == 409

    from eventapp.services.registration import cancel
    cancel(confirmed.id, by="staff")
    db.session.commit()
    with pytest.raises(DomainError) as exc:
        service.check_in(event.id, confirmed.ticket_code, "nonce-cancel")
    assert exc.value.code == "cancelled"

    # A genuine signature for this event whose registration does not exist (e.g. deleted).
    from eventapp.services.tickets import make_ticket_code
    with pytest.raises(NotFound) as exc:
        service.check_in(event.id, make_ticket_code(event.id), "nonce-unknown")
    assert exc.value.code == "unknown_code" and exc.value.status == 404
    assert _count() == 0


def test_undo_then_check_in_again(ctx):
    event = make_event()
    reg = make_registration(event)
    user = _user()
    first = service.check_in(event.id, reg.ticket_code, "nonce-undo-1", user=user)
    db.session.commit()
    undone = service.undo(event.id, first.checkin.id, user=user)
    db.session.commit()
    assert undone.undone_at is not None and undone.undone_by_id == user.id
    with pytest.raises(DomainError) as exc:
        service.undo(event.id, first.checkin.id, user=user)
    assert exc.value.code == "already_undone"
    again = service.check_in(event.id, reg.ticket_code, "nonce-undo-2", user=user)
    db.session.commit()
    assert again.result == "checked_in" and again.checkin.id != first.checkin.id
    assert _count() == 2 and _active_count() == 1


def test_undo_of_another_events_checkin_is_not_found(ctx):
    event, other = make_event(), make_event()
    reg = make_registration(event)
    row = service.check_in(event.id, reg.ticket_code, "nonce-other-ev").checkin
    db.session.commit()
    with pytest.raises(NotFound):
        service.undo(other.id, row.id, user=_user())


def test_database_refuses_two_active_checkins_for_one_day(ctx):
    from sqlalchemy.exc import IntegrityError

    event = make_event()
    reg = make_registration(event)
    day = event.days[0]
    now = utcnow()
    db.session.add(CheckIn(registration_id=reg.id, event_day_id=day.id, checked_in_at=now, nonce="raw-1"))
    db.session.flush()
    db.session.add(CheckIn(registration_id=reg.id, event_day_id=day.id, checked_in_at=now, nonce="raw-2"))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_multi_day_event_records_each_day(ctx):
    from tests.factories import future
    start = future(days=20, hour=9)
    event = make_event(starts_at=start, ends_at=start + timedelta(days=1, hours=6))
    assert len(event.days) == 2
    reg = make_registration(event)
    day1, day2 = event.days
    assert service.check_in(event.id, reg.ticket_code, "nonce-day-1", day_id=day1.id).result == "checked_in"
    assert service.check_in(event.id, reg.ticket_code, "nonce-day-2", day_id=day2.id).result == "checked_in"
    assert service.check_in(event.id, reg.ticket_code, "nonce-day-3", day_id=day2.id).result == "already_checked_in"
    db.session.commit()
    assert _count(event_day_id=day1.id) == 1 and _count(event_day_id=day2.id) == 1


def test_walk_in_past_capacity_is_confirmed_and_checked_in(ctx):
    event = make_event(capacity=1)
    make_registration(event)
    res = service.walk_in(event.id, person_input(name="当日 太郎", furigana="とうじつ たろう"), {},
                          nonce="walkin-nonce-1", user=_user())
    db.session.commit()
    assert res.result == "checked_in" and res.over_capacity is True
    assert res.registration.status == "confirmed" and res.registration.source == "walkin"
    assert res.checkin.source == "walkin"
    # Retrying the same walk-in request does not register the person twice.
    again = service.walk_in(event.id, person_input(name="当日 太郎", furigana="とうじつ たろう"), {},
                            nonce="walkin-nonce-1")
    assert again.checkin.id == res.checkin.id
    assert db.session.execute(select(func.count()).select_from(Registration)
                              .where(Registration.event_id == event.id)).scalar_one() == 2


def test_walk_in_without_an_email_address_is_a_new_person_and_gets_no_mail(ctx):
    event, desk = make_event(), _user()
    before = db.session.execute(select(func.count()).select_from(OutboxMessage)).scalar_one()
    first = service.walk_in(event.id, {"name": "当日 一郎", "furigana": "とうじつ いちろう", "email": ""}, {},
                            nonce="walkin-noemail-1", user=desk)
    # A namesake without an address is another person, never merged into the first.
    second = service.walk_in(event.id, {"name": "当日 一郎", "furigana": "とうじつ いちろう"}, {},
                             nonce="walkin-noemail-2", user=desk)
    db.session.commit()
    assert first.result == second.result == "checked_in"
    assert first.registration.person.email is None and second.registration.person.email is None
    assert first.registration.person_id != second.registration.person_id
    assert db.session.execute(select(func.count()).select_from(OutboxMessage)).scalar_one() == before
    # The public sign-up still requires an address.
    with pytest.raises(ValidationFailed) as error:
        registration_service.register(event.id, {"name": "岩手 花子", "furigana": "いわて はなこ"}, {}, consent=True)
    assert "email" in error.value.fields


def test_batch_sync_first_scan_wins_and_duplicates_are_listed(ctx):
    event = make_event()
    a, b = make_registration(event), make_registration(event)
    now = utcnow()
    online = service.check_in(event.id, a.ticket_code, "online-later", scanned_at=now - timedelta(minutes=1))
    db.session.commit()
    results = service.sync_batch(event.id, [
        {"code": b.ticket_code, "nonce": "dev1-b-late", "scanned_at": now - timedelta(minutes=3)},
        {"code": b.ticket_code, "nonce": "dev1-b-early", "scanned_at": now - timedelta(minutes=5)},
        {"code": a.ticket_code, "nonce": "dev1-a-early", "scanned_at": now - timedelta(minutes=9)},
        {"code": f"E{event.id}-AAAAAAAAAAAAA-AAAAAAAAAAAAAAAA", "nonce": "dev1-forged", "scanned_at": now - timedelta(minutes=4)},
    ], device_id="dev1", now=now)
    db.session.commit()
    by_nonce = {r["nonce"]: r for r in results}
    assert [r["nonce"] for r in results] == ["dev1-b-late", "dev1-b-early", "dev1-a-early", "dev1-forged"]
    assert by_nonce["dev1-b-early"]["result"] == "checked_in"
    assert by_nonce["dev1-b-late"]["result"] == "duplicate"
    # The earlier offline scan of A beats the check-in another device uploaded before.
    assert by_nonce["dev1-a-early"]["result"] == "checked_in"
    assert by_nonce["dev1-a-early"]["duplicate_checkin_id"] == online.checkin.id
    assert by_nonce["dev1-forged"]["error"]["code"] == "invalid_signature"
    active = db.session.execute(select(CheckIn).where(CheckIn.undone_at.is_(None),
                                                      CheckIn.duplicate_of_id.is_(None))).scalars().all()
    assert {(c.registration_id, c.nonce) for c in active} == {(a.id, "dev1-a-early"), (b.id, "dev1-b-early")}
    assert {c.checked_in_at for c in active} == {now - timedelta(minutes=9), now - timedelta(minutes=5)}
    assert _count() == 4  # two winners, two duplicates kept for staff
    # Uploading the same queue again (the device did not get the answer) changes nothing.
    again = service.sync_batch(event.id, [
        {"code": b.ticket_code, "nonce": "dev1-b-late", "scanned_at": now - timedelta(minutes=3)},
        {"code": a.ticket_code, "nonce": "dev1-a-early", "scanned_at": now - timedelta(minutes=9)},
    ], now=now)
    db.session.commit()
    assert [r["result"] for r in again] == ["duplicate", "checked_in"]
    assert _count() == 4
    assert service.stats(event.id)["duplicates"] == 2


def test_scan_time_from_a_wrong_clock_is_refused(ctx):
    event = make_event()
    reg = make_registration(event)
    with pytest.raises(DomainError) as exc:
        service.check_in(event.id, reg.ticket_code, "nonce-clock", scanned_at=utcnow() + timedelta(hours=2))
    assert "scanned_at" in exc.value.fields


def test_roster_snapshot_has_hashes_not_codes(ctx):
    event = make_event()
    reg = make_registration(event, phone="090-1234-5678")
    service.check_in(event.id, reg.ticket_code, "nonce-roster")
    db.session.commit()
    snap = service.roster_snapshot(event.id)
    entry = snap["registrations"][0]
    assert entry["code_hash"] == service.code_hash(reg.ticket_code)
    assert reg.ticket_code not in str(snap)
    assert entry["phone_digits"] == "09012345678"
    assert entry["checkins"][0]["day"] == event.days[0].id
    assert len(snap["ticket_key"]) == 64


def test_check_in_and_undo_are_in_the_audit_log(ctx):
    from eventapp.models import AuditEntry

    event = make_event()
    reg = make_registration(event, name="北上 三郎", furigana="きたかみ さぶろう")
    user = _user()
    row = service.check_in(event.id, reg.ticket_code, "nonce-audit-1", user=user).checkin
    service.undo(event.id, row.id, user=user)
    db.session.commit()
    entries = db.session.execute(select(AuditEntry).where(AuditEntry.object_type == "checkin")
                                 .order_by(AuditEntry.id)).scalars().all()
    assert [(e.action, e.object_id, e.user_id) for e in entries] == [
        ("checkin", row.id, user.id), ("checkin_undo", row.id, user.id)]
    assert "北上 三郎" in entries[0].summary


def test_roster_snapshot_is_complete_in_a_fixed_number_of_statements(ctx):
    """Devices scan offline from the snapshot, so it has everyone; the statements do not grow with them."""
    from sqlalchemy import event as sa_event

    event = make_event(capacity=50, questions=[{"key": "allergy", "kind": "text", "label": "アレルギー",
                                                "important": True}])

    def statements_for_snapshot() -> tuple[list[str], dict]:
        seen = []
        listener = lambda _conn, _cur, statement, *_args: seen.append(statement)  # noqa: E731
        sa_event.listen(db.engine, "before_cursor_execute", listener)
        try:
            db.session.expire_all()
            snapshot = service.roster_snapshot(event.id)
        finally:
            sa_event.remove(db.engine, "before_cursor_execute", listener)
        return seen, snapshot

    for n in range(3):
        make_registration(event, answers={"allergy": f"そば{n}"})
    small, _ = statements_for_snapshot()
    for n in range(30):
        make_registration(event, answers={"allergy": f"えび{n}"})
    large, snapshot = statements_for_snapshot()
    assert len(snapshot["registrations"]) == 33
    assert all(p["important_answers"] for p in snapshot["registrations"])
    assert len(large) == len(small), (small, large)
    # Registrations, their answers and questions in one statement: no follow-up SELECT … FROM answers.
    assert not [s for s in large if "FROM answers" in s and "FROM registrations" not in s]
