"""Helpers for the security tests: a fingerprint of the whole database and real ids for every URL."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from eventapp.extensions import db

# Counters of the rate limiter change on every limited request by design; everything else must not.
VOLATILE_TABLES = {"rate_limit_counter"}


def fingerprint() -> dict[str, str]:
    """Table → hash of all its rows (ordered by primary key): any insert, update or delete shows."""
    result = {}
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            if table.name in VOLATILE_TABLES:
                continue
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
            digest = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
            result[table.name] = f"{len(rows)}:{digest[:16]}"
    return result


def methods(rule) -> list[str]:
    return sorted(m for m in rule.methods if m not in ("HEAD", "OPTIONS"))


def build(rule, values: dict) -> str:
    missing = [a for a in rule.arguments if a not in values]
    assert not missing, f"no test value for {missing} in {rule.rule}"
    return rule.build({a: values[a] for a in rule.arguments}, append_unknown=False)[1]
