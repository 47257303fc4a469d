"""database.try_cluster_lock: a cron job runs once per cluster (issue 22, item 2)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from eventapp import database
from eventapp.extensions import db


def test_a_second_holder_is_refused_until_the_first_transaction_ends(ctx):
    if db.engine.dialect.name != "postgresql":
        assert database.try_cluster_lock("send-surveys") is True  # SQLite: one machine, its write lock
        pytest.skip("advisory locks are PostgreSQL's")
    other = Session(db.engine)  # another server's connection
    try:
        assert database.try_cluster_lock("send-surveys") is True
        assert database.try_cluster_lock("send-surveys", other) is False
        assert database.try_cluster_lock("purge-expired", other) is True  # another job's lock is free
        other.rollback()
        db.session.commit()  # the first holder's transaction ends, and its lock with it
        assert database.try_cluster_lock("send-surveys", other) is True
    finally:
        other.rollback()
        other.close()
