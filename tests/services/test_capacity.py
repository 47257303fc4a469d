"""lock_event: the row lock, and the caller's earlier copy of the event kept only while it is current."""

from __future__ import annotations

from sqlalchemy import event as sa_event
from sqlalchemy import select, update

from eventapp.extensions import db
from eventapp.models import Event
from eventapp.services.capacity import lock_event
from tests.factories import make_event


def _statements(run) -> tuple[object, list[str]]:
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        seen.append(" ".join(statement.split()))

    sa_event.listen(db.engine, "before_cursor_execute", record)
    try:
        return run(), seen
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", record)


def test_an_unchanged_event_is_locked_with_one_small_statement_and_kept(ctx):
    event_id = make_event(capacity=10).id
    db.session.commit()
    loaded = db.session.execute(select(Event).where(Event.id == event_id)).scalar_one()
    locked, statements = _statements(lambda: lock_event(event_id, loaded=loaded))
    assert locked is loaded and locked.capacity == 10
    assert len(statements) == 1 and statements[0].startswith("SELECT events.updated_at FROM events")
    if db.engine.dialect.name == "postgresql":
        assert statements[0].endswith("FOR UPDATE")


def test_an_event_changed_since_it_was_loaded_is_read_again_under_the_lock(ctx):
    event_id = make_event(capacity=10).id
    db.session.commit()
    loaded = db.session.execute(select(Event).where(Event.id == event_id)).scalar_one()
    # Another request raises the capacity meanwhile (a Core UPDATE: the loaded copy is not told).
    table = Event.__table__
    db.session.execute(update(table).where(table.c.id == event_id).values(capacity=12))
    locked, statements = _statements(lambda: lock_event(event_id, loaded=loaded))
    assert locked.capacity == 12  # what the seat decision must use
    assert len(statements) == 2  # the row lock, then every column again
