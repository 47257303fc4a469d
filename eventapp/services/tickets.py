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
import unicodedata

import segno
from flask import current_app

from .errors import DomainError

_CODE_RE = re.compile(r"^E([0-9]{1,10})-([A-Z2-7]{13})-([A-Z2-7]{16})$")


# Scanner/typed text: the code anywhere inside it (a URL, a scanner's prefix), not glued to other letters.
_CODE_IN_TEXT_RE = re.compile(r"(?<![0-9A-Z])E[0-9]{1,10}-[A-Z2-7]{13}-[A-Z2-7]{16}(?![0-9A-Z])")
# Dashes a Japanese IME or a keyboard layout produces for "-" (NFKC keeps these as they are).
_DASHES = str.maketrans({c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc\ufe63\uff0d\u2043"})
# A symbology identifier some scanners send first: "]Q1" (QR), "]C0", ...
_AIM_PREFIX_RE = re.compile(r"^\][A-Za-z][0-9A-Za-z]")
_QUOTES = "\"'`\u300c\u300d\u300e\u300f\u201c\u201d\u2018\u2019"
# The participant's manage page (/r/<token>), which some people show instead of the QR code.
_MANAGE_URL_RE = re.compile(r"/r/([A-Za-z0-9_-]{16,64})(?:[/?#]|$)")


class NotATicket(DomainError):
    def __init__(self) -> None:
        super().__init__("not_a_ticket", "チケットのQRコードではありません。", status=422)


def _clean_input(text: str | None) -> str:
    """NFKC (full-width → ASCII), dashes → "-", control characters, whitespace and quotes removed."""
    value = unicodedata.normalize("NFKC", text or "").translate(_DASHES)
    value = "".join(ch for ch in value if not unicodedata.category(ch).startswith("C"))
    value = value.strip().strip(_QUOTES).strip()
    return _AIM_PREFIX_RE.sub("", value).strip()


def normalize_ticket_input(text: str | None) -> str:
    """The ticket code in what a scanner or a person typed (IME full-width, lower case, a
    scanner's prefix or trailing CR/LF/TAB, quotes, a URL containing it); raise NotATicket when
    the text holds nothing shaped like a code. The signature is not checked here."""
    match = _CODE_IN_TEXT_RE.search(_clean_input(text).upper())
    if not match:
        raise NotATicket()
    return match.group(0)


def manage_token_in(text: str | None) -> str | None:
    """The manage token of a participant's manage-page URL inside the text, if there is one."""
    match = _MANAGE_URL_RE.search(_clean_input(text))
    return match.group(1) if match else None


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
    """Return the event id a genuine code belongs to; raise NotATicket for text not shaped like a
    code and InvalidTicket for a well-formed code whose signature fails."""
    match = _CODE_RE.match(normalize_ticket_input(code))
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
