"""Absolute links for mails, calendars and API payloads, built on PUBLIC_BASE_URL.

They work outside a request (CLI, cron) and always point at the canonical host, not at whatever
Host header a request came with.
"""

from __future__ import annotations

from flask import current_app


def external_url(endpoint: str, **values) -> str:
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    adapter = current_app.url_map.bind("localhost")
    return base + adapter.build(endpoint, values)
