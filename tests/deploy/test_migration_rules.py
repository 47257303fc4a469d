"""Rolling deploys: a migration must leave the schema usable by the previous release (expand → migrate →
contract, docs/operations.md#zero-downtime-upgrades). From the cut-off on, a migration whose upgrade() drops,
renames, makes a column NOT NULL or removes a server default fails here unless its file says why it needs a
stop of all app servers with a `# downtime: <reason>` comment. The older migrations that need downtime are
listed in docs/operations.md; the list is checked against this rule and against the real schema."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from eventapp import PROJECT_ROOT
from eventapp.extensions import db

MIGRATIONS = PROJECT_ROOT / "migrations"
CUTOFF = "event_calendar_alarms"  # the head when the rule came in; it and every later migration are checked
MARKER = re.compile(r"^\s*#\s*downtime:\s*\S", re.M)
ALWAYS_CONTRACT = {"drop_column", "drop_table", "rename_table", "drop_constraint"}
RAW_SQL_CONTRACT = re.compile(r"\b(DROP\s+(COLUMN|TABLE)|RENAME\b|SET\s+NOT\s+NULL|DROP\s+DEFAULT)", re.I)


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_const(node: ast.expr | None, value) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def contract_operations(source: str) -> list[str]:
    """What in `upgrade()` breaks the previous release running on the new schema (empty: expand-only)."""
    tree = ast.parse(source)
    upgrade = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade"), None)
    if upgrade is None:
        return []
    found = []
    for node in ast.walk(upgrade):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        line = f"line {node.lineno}: {name}"
        if name in ALWAYS_CONTRACT:
            found.append(line)
        elif name == "alter_column":
            if _kw(node, "new_column_name") is not None:
                found.append(f"{line} (rename)")
            if _is_const(_kw(node, "nullable"), False):
                found.append(f"{line} (NOT NULL)")
            if any(k.arg == "server_default" and _is_const(k.value, None) for k in node.keywords):
                found.append(f"{line} (server default removed: the old release does not write the column)")
        elif name == "add_column":
            column = next((a for a in node.args if isinstance(a, ast.Call)), None)
            if column is not None and _is_const(_kw(column, "nullable"), False) \
                    and _kw(column, "server_default") is None:
                found.append(f"{line} (NOT NULL without server_default)")
        elif name == "execute":
            sql = " ".join(a.value for a in ast.walk(node) if isinstance(a, ast.Constant) and isinstance(a.value, str))
            if RAW_SQL_CONTRACT.search(sql):
                found.append(f"{line} (raw SQL: {RAW_SQL_CONTRACT.search(sql).group(0)})")
    return found


def _scripts() -> list:
    """Base → head."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return list(reversed(list(ScriptDirectory.from_config(config).walk_revisions())))


def _after_cutoff(scripts: list) -> list:
    revisions = [s.revision for s in scripts]
    assert CUTOFF in revisions
    return scripts[revisions.index(CUTOFF):]


def _documented_downtime() -> set[str]:
    doc = (PROJECT_ROOT / "docs/operations.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| `00") and "**downtime**" in line]
    return {re.match(r"\| `(\w+\.py)`", row).group(1) for row in rows}


def test_rule_flags_contract_steps_and_allows_expand_steps():
    assert contract_operations("def upgrade():\n    op.drop_column('events', 'x')\n")
    assert contract_operations("def upgrade():\n    with op.batch_alter_table('e') as b:\n"
                               "        b.alter_column('x', nullable=False)\n")
    assert contract_operations("def upgrade():\n    b.alter_column('x', new_column_name='y')\n")
    assert contract_operations("def upgrade():\n    b.alter_column('x', server_default=None)\n")
    assert contract_operations("def upgrade():\n    b.add_column(sa.Column('x', sa.Integer(), nullable=False))\n")
    assert contract_operations("def upgrade():\n    op.execute('ALTER TABLE e DROP COLUMN x')\n")
    expand = ("def upgrade():\n    b.add_column(sa.Column('x', sa.Integer(), nullable=True))\n"
              "    b.add_column(sa.Column('y', sa.Integer(), nullable=False, server_default='0'))\n"
              "    op.create_table('t', sa.Column('id', sa.Integer(), nullable=False))\n"
              "    op.execute('UPDATE e SET x = 1')\n"
              "def downgrade():\n    op.drop_column('e', 'x')\n")  # downgrades are never part of a rollout
    assert contract_operations(expand) == []


def test_migrations_since_cutoff_are_expand_only_or_say_why_not():
    for script in _after_cutoff(_scripts()):
        source = Path(script.path).read_text()
        found = contract_operations(source)
        assert not found or MARKER.search(source), (
            f"{Path(script.path).name} breaks the running release during a rolling deploy: {found}. Split it into "
            "expand (this release) and contract (the next one), or add `# downtime: <reason>` and announce a "
            "stop (docs/operations.md#zero-downtime-upgrades).")


def test_documented_downtime_list_matches_the_rule():
    flagged = {Path(s.path).name for s in _scripts() if contract_operations(Path(s.path).read_text())}
    before_cutoff = {Path(s.path).name for s in _scripts()} - {Path(s.path).name for s in _after_cutoff(_scripts())}
    assert flagged & before_cutoff == _documented_downtime()
    assert _documented_downtime(), "the table in docs/operations.md lists the downtime migrations"


def _schema() -> dict[str, dict[str, dict]]:
    inspector = inspect(db.engine)
    return {t: {c["name"]: c for c in inspector.get_columns(t)} for t in inspector.get_table_names()}


def _breaking_changes(before: dict, after: dict) -> list[str]:
    """What an INSERT or SELECT of the previous release (knowing only `before`) would trip over."""
    out = [f"table {t} dropped" for t in before if t not in after]
    for table, columns in before.items():
        new = after.get(table, {})
        out += [f"{table}.{c} dropped" for c in columns if c not in new]
        out += [f"{table}.{c} NOT NULL without default" for c, col in new.items()
                if c not in columns and not col["nullable"] and col.get("default") is None]
        out += [f"{table}.{c} became NOT NULL" for c, col in new.items()
                if c in columns and columns[c]["nullable"] and not col["nullable"]]
    return out


@pytest.mark.timeout(600)
def test_each_migration_against_the_schema_before_it(tmp_path):
    """Upgrade one revision at a time (SQLite, or PostgreSQL with TEST_DATABASE_URL) and compare the schema: the
    migrations that break the previous release are exactly the documented ones (and marked later ones); this
    also catches breaking changes the source rule cannot see (raw SQL it does not recognise)."""
    from flask_migrate import upgrade

    from tests.faults.support import app_for, scratch_database_url

    breaking = {}
    with scratch_database_url(tmp_path) as url:
        app = app_for(url)
        with app.app_context():
            before: dict = {}
            for script in _scripts():
                upgrade(revision=script.revision)
                after = _schema()
                if changes := _breaking_changes(before, after):
                    breaking[Path(script.path).name] = changes
                before = after
            db.session.remove()
            db.engine.dispose()
    # After the cut-off a breaking migration must carry the marker (then the release notes say why).
    marked = {Path(s.path).name for s in _after_cutoff(_scripts()) if MARKER.search(Path(s.path).read_text())}
    assert set(breaking) - marked == _documented_downtime(), breaking
