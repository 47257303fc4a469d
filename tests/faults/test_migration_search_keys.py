"""0018 (scalepeople_search_keys) with data in the database: existing people and registrations get their
search keys (anonymised ones blank), PostgreSQL gets trigram indexes, and the round trip keeps the rows."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from eventapp.extensions import db
from tests.faults.support import app_for, scratch_database_url
from tests.faults.test_migrations import _pending_diff, _table_as_of_now

PEOPLE = [
    {"email": "katakana@example.com", "name": "佐藤　花子", "furigana": "サトウ ハナコ", "phone": "090-1234-5678"},
    {"email": "wide@example.com", "name": "ＡＢＣ 太郎", "furigana": "えーびーしー たろう", "phone": "+81 19-651-3111"},
    {"email": None, "name": "匿名", "furigana": "とくめい", "phone": ""},  # anonymised below
]


def test_backfill_and_indexes(tmp_path):
    from eventapp.models import Event, Person, Registration
    from eventapp.models.base import utcnow

    with scratch_database_url(tmp_path) as url:
        app = app_for(url)
        with app.app_context():
            upgrade(revision="announce_consents")
            now = utcnow()
            events, people, registrations = (_table_as_of_now(t) for t in (
                Event.__table__, Person.__table__, Registration.__table__))
            with db.engine.begin() as conn:
                event_id = conn.execute(events.insert().values(
                    slug="migr-keys", kind="fieldwork", title="移行テスト", starts_at=now,
                    ends_at=now + timedelta(hours=3), capacity=10, status="published", created_at=now,
                    updated_at=now)).inserted_primary_key[0]
                for n, person in enumerate(PEOPLE):
                    person_id = conn.execute(people.insert().values(
                        **person, prefecture="", iwate_relation="none", occupation="", skills="", created_at=now,
                        updated_at=now, anonymised_at=now if person["email"] is None else None,
                        calendar_token=None)).inserted_primary_key[0]
                    conn.execute(registrations.insert().values(
                        event_id=event_id, person_id=person_id, status="confirmed", confirmed_at=now,
                        name=person["name"], furigana=person["furigana"], phone=person["phone"], prefecture="",
                        iwate_relation="none", occupation="", skills="", manage_token=f"manage-token-{n:02d}" * 2,
                        ticket_code=f"E{event_id}-KEYS{n}-SIG", consent_version="2025-04", consent_at=now,
                        created_at=now, updated_at=now))

            def keys(table: str) -> list[tuple]:
                with db.engine.connect() as conn:
                    return [tuple(r) for r in conn.execute(sa.text(
                        f"SELECT search_name, search_phone FROM {table} ORDER BY id"))]

            expected = [("佐藤花子 さとうはなこ", "09012345678"), ("abc太郎 えーびーしーたろう", "0196513111"), ("", "")]
            upgrade()
            assert keys("people") == keys("registrations") == expected
            assert _pending_diff() == []
            indexes = {i["name"] for i in inspect(db.engine).get_indexes("people")}
            assert {"ix_people_search_name", "ix_people_search_phone", "ix_people_email_trgm"} <= indexes
            if db.engine.dialect.name == "postgresql":
                with db.engine.connect() as conn:
                    methods = dict(conn.execute(sa.text(
                        "SELECT c.relname, am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam "
                        "WHERE c.relname LIKE 'ix_%search%'")).all())
                covering = {"ix_people_search_name_id", "ix_registrations_search_name_person"}
                assert {n: m for n, m in methods.items() if n not in covering} == dict.fromkeys(
                    ["ix_people_search_name", "ix_people_search_phone", "ix_registrations_search_name",
                     "ix_registrations_search_phone"], "gin"), methods
                assert {methods[n] for n in covering} == {"btree"}

            downgrade(revision="announce_consents")
            assert "search_name" not in {c["name"] for c in inspect(db.engine).get_columns("people")}
            upgrade()
            assert keys("people") == keys("registrations") == expected
            db.session.remove()
            db.engine.dispose()  # so the scratch PostgreSQL database can be dropped
