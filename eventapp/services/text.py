"""The one set of rules for text that staff type (event fields, venue, question labels, organisation and
user names, e-mail addresses, join URLs), used by the services and, through `marshmallow_validator`,
by the API schemas, so a field is refused the same way on the screen and in the API.

Single-line fields refuse control characters, CR/LF included: an organiser address
`org@example.jp\\r\\nBcc: x@y` once made every calendar of its event a 500 and every mail for it fail
(pen test, issue 21 item 6). Lengths come from the model's column (`column_limit`), so validation and
the database agree (item 1); long text (Text columns) has its limit next to the field.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

from email_validator import EmailNotValidError
from sqlalchemy import String
from sqlalchemy.orm import InstrumentedAttribute

# C0 and C1 controls, DEL, the Unicode line/paragraph separators, bidi overrides/isolates (which make
# a name read backwards) and lone surrogates (neither UTF-8 nor PostgreSQL can store them).
_SINGLE_LINE_BAD = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# Multi-line text keeps line feeds and tabs (CR/LF are folded to LF first).
_MULTILINE_BAD = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

# The same rules as JSON Schema patterns, so the API description says what the services accept
# (surrogates are left to the JSON layer, which refuses lone ones before these rules run).
_BAD_COMMON = r"\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
SINGLE_LINE_PATTERN = rf"^[^\x00-\x1f{_BAD_COMMON}]*$"
MULTILINE_PATTERN = rf"^[^\x00-\x08\x0b\x0c\x0e-\x1f{_BAD_COMMON}]*$"
# Single-line text with at least one visible character (a required title: blanks are stripped away).
VISIBLE_LINE_PATTERN = rf"^[^\x00-\x1f{_BAD_COMMON}]*[^\s\x00-\x1f{_BAD_COMMON}][^\x00-\x1f{_BAD_COMMON}]*$"

# An http(s) URL with a host (or nothing): narrower than is_http_url, never wider.
URL_PATTERN = r"^(https?://[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?([/?#][!-~]*)?)?$"

CONTROL_MESSAGE = "改行や制御文字は使えません。"
EMAIL_MESSAGE = "メールアドレスの形式が正しくありません。"
URL_MESSAGE = "URLは http:// または https:// で始まる形で入力してください。"
MAX_EMAIL = 254  # RFC 5321 path limit; every e-mail column is String(254)


def column_limit(column: InstrumentedAttribute) -> int:
    """The length of a String column: the validation limit of the field stored in it."""
    column_type = column.property.columns[0].type
    assert isinstance(column_type, String) and column_type.length, column
    return column_type.length


def length_message(limit: int) -> str:
    return f"{limit}文字以内で入力してください。"


def normalise(value: object, *, multiline: bool = False) -> str:
    """NFKC, stripped; multi-line text gets LF line ends. Nothing is removed silently."""
    if value is None:
        return ""
    text = unicodedata.normalize("NFKC", str(value))
    if multiline:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.strip()


def problem(text: str, *, limit: int | None, multiline: bool = False) -> str | None:
    """What is wrong with already normalised text, or None."""
    if (_MULTILINE_BAD if multiline else _SINGLE_LINE_BAD).search(text):
        return CONTROL_MESSAGE
    if limit is not None and len(text) > limit:
        return length_message(limit)
    return None


def check(errors: dict[str, str], field: str, value: object, *, limit: int | None,
          multiline: bool = False) -> str:
    """Normalise `value`; record a problem under `field` in `errors`. Returns the normalised text."""
    text = normalise(value, multiline=multiline)
    message = problem(text, limit=limit, multiline=multiline)
    if message and field not in errors:
        errors[field] = message
    return text


def check_email(errors: dict[str, str], field: str, value: object, *, required: bool = False) -> str:
    """An address as people.normalise_email (email_validator) accepts it, or "" when empty and optional."""
    from .people import normalise_email

    text = normalise(value)
    if not text:
        if required:
            errors.setdefault(field, "メールアドレスを入力してください。")
        return ""
    message = problem(text, limit=MAX_EMAIL)
    if message:
        errors.setdefault(field, message)
        return text
    try:
        return normalise_email(text)
    except EmailNotValidError:
        errors.setdefault(field, EMAIL_MESSAGE)
        return text


def is_http_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not re.search(r"\s", text)


def check_url(errors: dict[str, str], field: str, value: object, *, limit: int) -> str:
    """An http(s) URL or "" (a `javascript:` join URL would run in the participant's page)."""
    text = check(errors, field, value, limit=limit)
    if text and field not in errors and not is_http_url(text):
        errors[field] = URL_MESSAGE
    return text


def marshmallow_validator(*, limit: int | None, multiline: bool = False, kind: str = "text"):
    """The same rules as a marshmallow validator (API schemas). kind: text | email | url."""
    from marshmallow import ValidationError

    def validate(value: str) -> None:
        errors: dict[str, str] = {}
        if kind == "email":
            check_email(errors, "value", value)
        elif kind == "url":
            check_url(errors, "value", value, limit=limit or 0)
        else:
            check(errors, "value", value, limit=limit, multiline=multiline)
        if errors:
            raise ValidationError(errors["value"])

    validate.limit = limit  # read by tests/security/test_lengths.py
    # What the rule accepts as a JSON Schema pattern, for the API description (api.schemas.Text)
    validate.pattern = {"url": URL_PATTERN, "email": None}.get(
        kind, MULTILINE_PATTERN if multiline else SINGLE_LINE_PATTERN)
    return validate


def fit(text: str, limit: int, ellipsis: str = "…") -> str:
    """Derived text (a mail subject built from a title) shortened to its column, marked with …"""
    return text if len(text) <= limit else text[: limit - len(ellipsis)] + ellipsis


def single_line(text: object) -> str:
    """Stored text made safe for a one-line output (a mail header, a calendar property): control
    characters and line breaks become spaces. For rows stored before validation was this strict."""
    return re.sub(r"\s+", " ", _SINGLE_LINE_BAD.sub(" ", str(text or ""))).strip()


def denest_quotes(text: str) -> str:
    """Japanese quotes inside quotes as 『』: 「オンラインセミナー「地方複業」」 → 「オンラインセミナー『地方複業』」
    (a title quoted in a sentence or subject may carry its own 「」). Unbalanced text is left as typed."""
    if text.count("「") != text.count("」") or "「" not in text:
        return text
    out, depth = [], 0
    for char in text:
        if char == "「":
            out.append("『" if depth else char)
            depth += 1
        elif char == "」" and depth:
            depth -= 1
            out.append("』" if depth else char)
        else:
            out.append(char)
    return "".join(out)
