"""Migrations on an empty database: up to head, down to base, up again; and the models agree with them."""

from __future__ import annotations

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
