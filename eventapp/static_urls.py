"""Versioned static URLs: `url_for('static', filename='css/app.css')` → `/static/css/app.css?v=<hash>`.

The query is the first 12 hex digits of the file's SHA-256, so nginx (deploy/nginx/eventapp.conf) may
serve /static/ with a year-long `immutable` cache: a changed file gets a new URL with the next release,
and browsers never keep an old stylesheet next to new HTML. The hash is kept per file and recomputed
only when the file's mtime or size changes (a `stat` per url_for; edits in development show at once).
Files that do not exist get no query (Flask answers 404 as before).
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from flask import Flask

VERSION_ARG = "v"
_cache: dict[str, tuple[int, int, str]] = {}
_lock = threading.Lock()


def file_version(folder: str | os.PathLike, filename: str) -> str | None:
    """The cache-busting version of `folder/filename`, or None if it is not a file inside folder."""
    root = Path(folder).resolve()
    path = (root / filename).resolve()
    if not path.is_relative_to(root):
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    key = str(path)
    cached = _cache.get(key)
    if cached and cached[0] == st.st_mtime_ns and cached[1] == st.st_size:
        return cached[2]
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except OSError:  # a directory, or unreadable
        return None
    with _lock:
        _cache[key] = (st.st_mtime_ns, st.st_size, digest)
    return digest


def init_app(app: Flask) -> None:
    @app.url_defaults
    def _static_version(endpoint: str, values: dict) -> None:
        if endpoint != "static" or VERSION_ARG in values or not values.get("filename"):
            return
        if app.static_folder and (version := file_version(app.static_folder, values["filename"])):
            values[VERSION_ARG] = version
