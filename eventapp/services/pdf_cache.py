"""Public PDFs (the programme, しおり) rendered once per version and shared by all workers on disk.

A render costs ~100 ms of CPU; eight anonymous clients fetching `programme.pdf` in a loop took the
whole site down to seconds per page. The file is kept under PDF_CACHE_DIR (instance/pdf-cache) and
named by a digest of everything the document is drawn from: every column of the event (so `updated_at`
and `sequence`), its days and programme items, the language, the print templates and the settings
it prints. A change to any of them is a new name, so a stale file is never served; older versions of
the same event are removed when a new one is written. Writes go to a temporary file and are renamed
into place (a reader never sees half a PDF), and a lock file per version makes concurrent misses of
several workers render once.

Private documents (a participant's ticket) are never put here.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from flask import current_app

from ..models import Event
from . import documents

LANGUAGE = "ja"  # documents are always Japanese (documents.render_document)


@dataclass(frozen=True)
class CachedPdf:
    path: Path
    etag: str
    last_modified: datetime

    def read(self) -> bytes:
        return self.path.read_bytes()


@lru_cache(maxsize=1)
def template_version() -> str:
    """A digest of the print templates and stylesheets: a deploy that changes them renders anew."""
    digest = hashlib.sha256()
    for path in sorted(documents.PDF_TEMPLATE_DIR.glob("*")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _plain(value: object) -> object:
    return value.isoformat() if hasattr(value, "isoformat") else value


def programme_etag(event: Event) -> str:
    """The version of an event's programme: the cache file's name and the response's ETag."""
    config = current_app.config
    source = {
        "event": {c.name: _plain(getattr(event, c.name)) for c in Event.__table__.columns},
        "days": [[_plain(d.starts_at), _plain(d.ends_at), d.title,
                  [[_plain(i.starts_at), _plain(i.ends_at), i.title, i.place] for i in d.items]]
                 for d in event.days],
        "language": LANGUAGE, "templates": template_version(),
        "settings": [config["ORGANISER_NAME"], config["PUBLIC_BASE_URL"]],
    }
    return hashlib.sha256(json.dumps(source, sort_keys=True, default=str).encode()).hexdigest()[:32]


def cache_dir() -> Path:
    path = Path(current_app.config.get("PDF_CACHE_DIR") or Path(current_app.instance_path) / "pdf-cache")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cached(path: Path, etag: str) -> CachedPdf:
    modified = datetime.fromtimestamp(int(path.stat().st_mtime), UTC)
    return CachedPdf(path=path, etag=etag, last_modified=modified)


def programme(event: Event, *, before_render: Callable[[], None] | None = None,
              etag: str | None = None) -> CachedPdf:
    """The event's programme from the shared cache, rendered first if this version has none yet.

    `before_render` runs only on a miss (the view counts renders against the client's rate limit there;
    it may raise to refuse)."""
    etag = etag or programme_etag(event)
    directory = cache_dir()
    path = directory / f"programme-{event.id}-{etag}.pdf"
    if path.exists():
        return _cached(path, etag)
    if before_render is not None:
        before_render()
    with _locked(directory / f"programme-{event.id}-{etag}.lock"):
        if not path.exists():  # another worker may have rendered it while this one waited
            _write_atomic(path, documents.programme_pdf(event).pdf)
            _prune(directory, event.id, keep=etag)
    return _cached(path, etag)


@contextlib.contextmanager
def _locked(lock_path: Path):
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pdf")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _prune(directory: Path, event_id: int, *, keep: str) -> None:
    """Older versions of this event's programme (and their lock files) are never asked for again."""
    for old in directory.glob(f"programme-{event_id}-*"):
        if keep not in old.name:
            with contextlib.suppress(OSError):
                old.unlink()
