"""Consistent copies of the SQLite database while the app keeps running (SQLite's online backup API).

PostgreSQL has its own tools (pg_dump / pg_restore); this module refuses it rather than copy files.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from .errors import DomainError


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size_bytes: int
    integrity: str


def backup_sqlite(engine: Engine, destination: Path, *, overwrite: bool = False) -> BackupResult:
    """Copy the database behind `engine` to `destination` as one snapshot.

    The copy is written next to the destination first and renamed at the end, so a crash never
    leaves a half-written file under the final name.
    """
    if engine.dialect.name != "sqlite":
        raise DomainError(
            "backup_not_sqlite",
            "backup copies SQLite databases only. For PostgreSQL use pg_dump, e.g. "
            "`pg_dump --format=custom --file=eventapp.dump \"$DATABASE_URL\"` "
            "(restore with pg_restore; see README, 'Backup and restore').",
        )
    source_path = engine.url.database
    if source_path in (None, "", ":memory:"):
        raise DomainError("backup_memory_db", "an in-memory database cannot be backed up.")
    destination = Path(destination)
    if destination.resolve() == Path(source_path).resolve():
        raise DomainError("backup_same_file", "the backup path is the database itself.")
    if destination.exists() and not overwrite:
        raise DomainError("backup_exists", f"{destination} already exists (use --overwrite to replace it).")
    if not destination.parent.is_dir():
        raise DomainError("backup_no_dir", f"directory {destination.parent} does not exist.")

    partial = destination.with_name(destination.name + ".partial")
    partial.unlink(missing_ok=True)
    source = sqlite3.connect(source_path, timeout=30)
    target = sqlite3.connect(partial)
    try:
        # pages=-1 copies everything in one step under one read transaction: a single snapshot.
        # In WAL mode that read does not block the app's writers.
        source.backup(target, pages=-1)
        integrity = target.execute("PRAGMA integrity_check").fetchone()[0]
        # A standalone file: no -wal/-shm needed next to it.
        target.execute("PRAGMA journal_mode=DELETE")
    finally:
        target.close()
        source.close()
    if integrity != "ok":
        partial.unlink(missing_ok=True)
        raise DomainError("backup_corrupt", f"integrity check of the copy failed: {integrity}")
    os.replace(partial, destination)
    return BackupResult(path=destination, size_bytes=destination.stat().st_size, integrity=integrity)
