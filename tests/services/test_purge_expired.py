"""purge-expired at scale (issue 23 item 3): batches with a commit each, resumable, dry run, the
outbox and mail files of anonymised people wiped, old sent mail pruned."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from eventapp.extensions import db
from eventapp.models import AuditEntry, OutboxMessage, Person, Registration
from eventapp.models.base import utcnow
from eventapp.services import mail, privacy
from tests.conftest import make_event, make_registration


def _expired_people(n: int) -> list[Registration]:
    """n people whose only event ended 400 days ago (signed up while it was upcoming)."""
    event = make_event(title="昔のイベント")
    registrations = [make_registration(event, email=f"old{i}@example.jp", name=f"古い 人{i}",
                                       phone=f"090-0000-{i:04d}") for i in range(n)]
    long_ago = utcnow() - timedelta(days=400)
    event.starts_at, event.ends_at = long_ago, long_ago + timedelta(hours=3)
    db.session.commit()
    return registrations


def _staff_message(registration: Registration, to_addr: str, *, link: bool) -> None:
    person = registration.person
    mail.queue("staff_message", to_addr, "staff_message",
               {"subject": f"ご連絡 {registration.name} 様", "body": f"{registration.name} 様へのご案内",
                "event": registration.event, "person": person, "registration": registration},
               registration=registration if link else None)


def _count(model, *where) -> int:
    return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def test_batches_of_two_commit_three_times_for_five_people(ctx):
    registrations = _expired_people(5)
    recent = make_registration(make_event(), email="recent@example.jp")
    commits: list[int] = []

    def commit() -> None:
        db.session.commit()
        commits.append(_count(Person, Person.anonymised_at.is_not(None)))

    assert privacy.purge_expired(365, batch_size=2, commit=commit) == 5
    assert commits == [2, 4, 5]  # each batch committed on its own
    db.session.expire_all()
    people = db.session.execute(select(Person).where(Person.id.in_([r.person_id for r in registrations]))).scalars()
    assert {(p.name, p.email, p.phone, p.search_name, p.calendar_token) for p in people} == {
        ("匿名", None, "", "", None)}
    assert db.session.get(Person, recent.person_id).email == "recent@example.jp"
    audit = db.session.execute(select(AuditEntry.object_id, AuditEntry.actor)
                               .where(AuditEntry.action == "anonymise")).all()
    assert sorted(audit) == sorted((r.person_id, "purge-expired") for r in registrations)  # one row per person
    assert privacy.purge_expired(365, batch_size=2, commit=commit) == 0  # nothing new on a re-run


def test_a_stopped_run_resumes_where_it_was(ctx):
    _expired_people(5)

    def stop_after_first_batch() -> None:
        db.session.commit()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        privacy.purge_expired(365, batch_size=2, commit=stop_after_first_batch)
    db.session.rollback()
    assert _count(Person, Person.anonymised_at.is_not(None)) == 2
    assert privacy.purge_expired(365, batch_size=2, commit=db.session.commit) == 3
    assert _count(Person, Person.anonymised_at.is_(None)) == 0
    assert _count(AuditEntry, AuditEntry.action == "anonymise") == 5


def test_cli_batch_size_and_dry_run(ctx, app):
    registrations = _expired_people(5)
    before = db.session.execute(select(Person.id, Person.name, Person.email).order_by(Person.id)).all()
    outbox_before = _count(OutboxMessage)
    assert outbox_before == 5  # the confirmations, still pending

    dry = app.test_cli_runner().invoke(args=["purge-expired", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    ids = ", ".join(str(r.person_id) for r in registrations)
    assert f"would anonymise 5 people (retention 365 days) with 5 registrations and 5 mails; first ids: {ids}" \
        in dry.output
    assert "would delete 0 sent mails older than 90 days" in dry.output
    db.session.expire_all()
    assert db.session.execute(select(Person.id, Person.name, Person.email).order_by(Person.id)).all() == before
    assert _count(AuditEntry) == 0 and _count(OutboxMessage) == outbox_before

    result = app.test_cli_runner().invoke(args=["purge-expired", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "anonymised 5 people (retention 365 days)" in result.output
    assert "committed 3 batches of at most 2 people" in result.output
    assert _count(Person, Person.anonymised_at.is_(None)) == 0


def test_an_anonymised_persons_mail_keeps_no_name_or_address(ctx, mail_dir):
    gone = make_registration(make_event(), email="gone@example.jp", name="消える 花子", furigana="きえる はなこ")
    make_registration(make_event(), email="kept@example.jp", name="残る 太郎", furigana="のこる たろう")
    assert mail.deliver_due() == (2, 0)  # both confirmations sent, one .eml file each
    assert len(list(mail_dir.glob("*.eml"))) == 2
    # Another mail to the same address not linked to a registration (sent), and one still waiting.
    _staff_message(gone, "gone@example.jp", link=False)
    db.session.commit()
    assert mail.deliver_due() == (1, 0)
    _staff_message(gone, "gone@example.jp", link=True)
    db.session.commit()
    theirs = select(OutboxMessage.status).where((OutboxMessage.registration_id == gone.id)
                                                | (OutboxMessage.to_addr == "gone@example.jp"))
    assert sorted(db.session.execute(theirs).scalars()) == ["pending", "sent", "sent"]
    assert len(list(mail_dir.glob("*.eml"))) == 3

    privacy.anonymise_person(gone.person_id, reason="ご本人の請求")
    db.session.commit()

    rows = db.session.execute(select(OutboxMessage)).scalars().all()
    for row in rows:
        text = " ".join([row.to_addr, row.subject, row.body, str(row.attachments), row.last_error])
        assert "gone@example.jp" not in text and "消える" not in text and "きえる" not in text
    assert {r.to_addr for r in rows} == {"kept@example.jp"}  # their mails, sent or not, are deleted
    assert any(r.to_addr == "kept@example.jp" and "残る" in r.body for r in rows)  # others untouched
    files = list(mail_dir.glob("*.eml"))
    assert len(files) == 1 and "kept@example.jp" in files[0].read_text()


def test_purge_wipes_the_outbox_and_mail_files_of_the_people_it_anonymises(ctx, mail_dir):
    _expired_people(3)
    make_registration(make_event(), email="recent@example.jp")
    assert mail.deliver_due() == (4, 0)
    assert privacy.purge_expired(365, batch_size=2, commit=db.session.commit) == 3
    bodies = " ".join(m.to_addr + m.subject + m.body for m in db.session.execute(select(OutboxMessage)).scalars())
    assert "old0@example.jp" not in bodies and "古い" not in bodies and "recent@example.jp" in bodies
    assert [p.name for p in mail_dir.glob("*.eml") if "old" in p.read_text()] == []
    assert len(list(mail_dir.glob("*.eml"))) == 1


def test_sent_mail_older_than_the_retention_is_pruned_and_pending_kept(ctx, app, mail_dir):
    event = make_event()
    first, second, third = (make_registration(event, email=f"mail{i}@example.jp") for i in range(3))
    _staff_message(first, "mail0@example.jp", link=True)
    db.session.commit()
    assert mail.deliver_due() == (4, 0)
    recent_sent = db.session.execute(select(OutboxMessage.id).where(OutboxMessage.kind == "staff_message")).scalar_one()
    table = OutboxMessage.__table__
    old = utcnow() - timedelta(days=91)
    confirmation = table.c.kind != "staff_message"
    db.session.execute(update(table).where(table.c.registration_id == first.id, confirmation).values(sent_at=old))
    db.session.execute(update(table).where(table.c.registration_id == second.id)
                       .values(status="failed", sent_at=None, created_at=old))
    db.session.execute(update(table).where(table.c.registration_id == third.id)  # old but never sent
                       .values(status="pending", sent_at=None, created_at=old, next_attempt_at=utcnow() + timedelta(days=1)))
    # An old file of the file backend (its row long gone) goes too.
    (mail_dir / "20200101T000000-999999-confirmation.eml").write_text("old")
    db.session.commit()

    assert mail.prune_mail(90, dry_run=True) == 2
    result = app.test_cli_runner().invoke(args=["purge-expired"])
    assert result.exit_code == 0, result.output
    assert "deleted 2 sent mails older than 90 days" in result.output
    left = {(m.id, m.registration_id, m.status) for m in db.session.execute(select(OutboxMessage)).scalars()}
    pending = db.session.execute(select(OutboxMessage.id).where(OutboxMessage.registration_id == third.id)).scalar_one()
    assert left == {(recent_sent, first.id, "sent"), (pending, third.id, "pending")}
    assert not (mail_dir / "20200101T000000-999999-confirmation.eml").exists()
    assert len(list(mail_dir.glob("*.eml"))) == 4  # this run's files are recent
    # With no retention at all, the recent sent mail goes too; pending mail never does.
    assert "deleted 1 sent mails older than 0 days" in app.test_cli_runner().invoke(
        args=["purge-expired", "--mail-days", "0"]).output
    assert [m.status for m in db.session.execute(select(OutboxMessage)).scalars()] == ["pending"]


def test_a_survey_request_stays_as_a_blank_record_so_nobody_is_asked_twice(ctx):
    """surveys.send_requests reads the sent survey_request rows: they are blanked, not deleted."""
    registrations = _expired_people(1)
    table = OutboxMessage.__table__
    db.session.execute(update(table).values(kind="survey_request", status="sent", sent_at=utcnow()))
    db.session.commit()
    assert privacy.purge_expired(365, commit=db.session.commit) == 1
    row = db.session.execute(select(OutboxMessage)).scalar_one()
    assert (row.kind, row.status, row.registration_id, row.to_addr, row.subject, row.body) == (
        "survey_request", "sent", registrations[0].id, "", "", "")
    # Retention does the same to a record of someone not anonymised.
    other = make_registration(make_event(), email="asked@example.jp")
    db.session.execute(update(table).where(table.c.registration_id == other.id).values(
        kind="survey_request", status="sent", sent_at=utcnow() - timedelta(days=100)))
    db.session.commit()
    assert mail.prune_mail(90, commit=db.session.commit) == 1
    rows = {(r.registration_id, r.to_addr, r.body) for r in db.session.execute(select(OutboxMessage)).scalars()}
    assert rows == {(registrations[0].id, "", ""), (other.id, "", "")}
    assert mail.prune_mail(90, dry_run=True) == 0  # blank records are not counted again
