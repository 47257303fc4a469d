"""Ticket codes (the exact string a QR ticket encodes) and manage tokens.

A ticket code is `E<event id>-<random id>-<signature>`: upper-case base32 so it fits QR
alphanumeric mode and survives a keyboard-wedge scanner. The signature is an HMAC-SHA256 over
the event id and random id, with a key derived per event from the app secret, so a forged or
altered code is detected without a database lookup (and a check-in device can verify codes of
its own event offline with that event's key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import re
import secrets

import segno
from flask import current_app

from .errors import DomainError

_CODE_RE = re.compile(r"^E([0-9]{1,10})-([A-Z2-7]{13})-([A-Z2-7]{16})$")


class InvalidTicket(DomainError):
    def __init__(self) -> None:
        super().__init__("invalid_signature", "この受付コードは無効です(改ざんまたは偽造の可能性があります)。")


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=")


def event_ticket_key(event_id: int, secret: str | None = None) -> bytes:
    secret = secret if secret is not None else current_app.config["SECRET_KEY"]
    return hmac.new(secret.encode(), f"eventapp-ticket:{event_id}".encode(), hashlib.sha256).digest()


def _signature(event_id: int, ident: str, key: bytes) -> str:
    mac = hmac.new(key, f"E{event_id}-{ident}".encode(), hashlib.sha256).digest()
    return _b32(mac[:10])


def make_ticket_code(event_id: int) -> str:
    ident = _b32(secrets.token_bytes(8))
    return f"E{event_id}-{ident}-{_signature(event_id, ident, event_ticket_key(event_id))}"


def verify_ticket_code(code: str) -> int:
    """Return the event id a genuine code belongs to; raise InvalidTicket otherwise."""
    match = _CODE_RE.match((code or "").strip().upper())
    if not match:
        raise InvalidTicket()
    event_id, ident, signature = int(match.group(1)), match.group(2), match.group(3)
    expected = _signature(event_id, ident, event_ticket_key(event_id))
    if not hmac.compare_digest(expected, signature):
        raise InvalidTicket()
    return event_id


def make_manage_token() -> str:
    """192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)


def qr_svg(data: str, *, scale: int = 6) -> str:
    """An inline SVG QR code (no external request, crisp at any size)."""
    buffer = io.BytesIO()
    qr = segno.make(data, error="m")
    qr.save(buffer, kind="svg", scale=scale, border=2, xmldecl=False, svgns=True, title="QR", nl=False)
    # width/height keep the printed size (PDF); the viewBox lets CSS scale it on a phone screen
    # (without it the code stays small in the corner of a larger box).
    width, height = qr.symbol_size(scale=scale, border=2)
    return buffer.getvalue().decode("utf-8").replace("<svg ", f'<svg viewBox="0 0 {width} {height}" ', 1)


def qr_png(data: str, *, scale: int = 8) -> bytes:
    buffer = io.BytesIO()
    segno.make(data, error="m").save(buffer, kind="png", scale=scale, border=2)
    return buffer.getvalue()
