"""Migrations on an empty database: up to head, down to base, up again; and the models agree with them."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from eventapp.extensions import db
from tests.faults.support import app_for, scratch_database_url


def _tables() -> set[str]:
    return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def _pending_diff() -> list:
    with db.engine.connect() as conn:
        # The same comparison `flask db migrate` makes (types included), so an empty list means
        # autogenerate would write an empty migration.
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def test_upgrade_downgrade_upgrade_and_models_match(tmp_path):
    model_tables = set(db.metadata.tables)
    with scratch_database_url(tmp_path) as url:
        app = app_for(url)
        with app.app_context():
            assert _tables() == set()
            upgrade()
            assert _tables() == model_tables
            assert _pending_diff() == []

            downgrade(revision="base")
            assert _tables() == set(), "downgrade to base left tables behind"

            upgrade()
            assert _tables() == model_tables
            assert _pending_diff() == []
            db.session.remove()
            db.engine.dispose()  # so the scratch PostgreSQL database can be dropped


def _table_as_of_now(model_table: sa.Table) -> sa.Table:
    """The model's table restricted to the columns the database has at its current revision (an
    older one in the test below), with the models' types and Python defaults."""
    present = {c["name"] for c in inspect(db.engine).get_columns(model_table.name)}
    return sa.Table(model_table.name, sa.MetaData(),
                    *(c._copy() for c in model_table.columns if c.name in present))


PEOPLE = [
    {"email": "victim@example.com", "name": "岩手 花子", "furigana": "いわて はなこ", "phone": "090-1111-2222",
     "prefecture": "東京都", "iwate_relation": "origin", "occupation": "看護師", "skills": "救急対応"},
    {"email": "other@example.com", "name": "盛岡 太郎", "furigana": "もりおか たろう", "phone": "",
     "prefecture": "岩手県", "iwate_relation": "connected", "occupation": "", "skills": ""},
]


def test_attendee_migration_copies_people_onto_registrations_and_survives_a_round_trip(tmp_path):
    """0009 (registration_attendee) with data in the database: every registration takes its person's
    details; downgrading one step and upgrading again loses no registration and copies them again."""
    from eventapp.models import ATTENDEE_FIELDS, Event, Person, Registration
    from eventapp.models.base import utcnow

    with scratch_database_url(tmp_path) as url:
        app = app_for(url)
        with app.app_context():
            upgrade(revision="rate_limit_counters")
            assert "name" not in {c["name"] for c in inspect(db.engine).get_columns("registrations")}
            now = utcnow()
            events, people, registrations = (_table_as_of_now(t) for t in (
                Event.__table__, Person.__table__, Registration.__table__))
            with db.engine.begin() as conn:
                event_ids = [conn.execute(events.insert().values(
                    slug=f"migr-{n}", kind="fieldwork", title=f"移行テスト {n}", starts_at=now, ends_at=now + timedelta(hours=3),
                    capacity=10, status="published", created_at=now, updated_at=now)).inserted_primary_key[0]
                    for n in (1, 2)]
                person_ids = [conn.execute(people.insert().values(
                    **p, created_at=now, updated_at=now)).inserted_primary_key[0] for p in PEOPLE]
                # The victim twice (two events), the other person once; one of them cancelled.
                for n, (event_id, person_id, status) in enumerate([
                        (event_ids[0], person_ids[0], "confirmed"), (event_ids[1], person_ids[0], "cancelled"),
                        (event_ids[0], person_ids[1], "confirmed")]):
                    conn.execute(registrations.insert().values(
                        event_id=event_id, person_id=person_id, status=status, confirmed_at=now,
                        cancelled_at=now if status == "cancelled" else None, manage_token=f"manage-token-{n:02d}" * 2,
                        ticket_code=f"E{event_id}-MIGR{n}-SIG", consent_version="2025-04", consent_at=now,
                        created_at=now, updated_at=now))
                # An answer hangs off a registration (ON DELETE CASCADE): SQLite's batch mode
                # recreates the table, which must not take the answers with it.
                conn.execute(sa.text("INSERT INTO answers (registration_id, question_label, value) "
                                     "SELECT id, '食事の配慮', 'そばアレルギー' FROM registrations"))

            def registration_rows() -> list[tuple]:
                with db.engine.connect() as conn:
                    return [tuple(row) for row in conn.execute(sa.text(
                        "SELECT r.id, event_id, person_id, status, manage_token, ticket_code, a.value "
                        "FROM registrations r LEFT JOIN answers a ON a.registration_id = r.id ORDER BY r.id"))]

            before = registration_rows()
            assert len(before) == 3

            def assert_attendees_copied() -> None:
                db.session.expire_all()
                regs = db.session.execute(sa.select(Registration).order_by(Registration.id)).scalars().all()
                assert [r.person.email for r in regs] == ["victim@example.com", "victim@example.com",
                                                          "other@example.com"]
                for registration in regs:
                    expected = next(p for p in PEOPLE if p["email"] == registration.person.email)
                    assert registration.attendee == {f: expected[f] for f in ATTENDEE_FIELDS}
                db.session.remove()

            upgrade()
            assert registration_rows() == before
            assert_attendees_copied()
            assert _pending_diff() == []

            # One step back over the attendee migration (later migrations are undone on the way).
            downgrade(revision="rate_limit_counters")
            assert "name" not in {c["name"] for c in inspect(db.engine).get_columns("registrations")}
            assert registration_rows() == before, "downgrade lost or changed registrations"
            with db.engine.connect() as conn:
                kept = conn.execute(sa.text("SELECT email, name, phone FROM people ORDER BY id")).all()
            assert [tuple(r) for r in kept] == [(p["email"], p["name"], p["phone"]) for p in PEOPLE]

            upgrade()
            assert registration_rows() == before
            assert_attendees_copied()
            db.session.remove()
            db.engine.dispose()  # so the scratch PostgreSQL database can be dropped
