"""Integers from URLs and query strings, bounded so no driver ever sees a number its column cannot hold.

SQLite raises OverflowError for Python ints beyond 64 bits and PostgreSQL's INTEGER ids end at 2**31 - 1:
`?page=9223372036854775807` or `?after=1e20` must be a 4xx, never a 500.
"""

from __future__ import annotations

from flask import abort, request

MAX_ID = 2**31 - 1  # ids are INTEGER columns (PostgreSQL); path ids above this are a 404 (BoundedIntConverter)


def query_int(name: str, default: int | None, *, minimum: int = 1, maximum: int = MAX_ID) -> int | None:
    """`request.args[name]` as an int: missing or not a number → `default` (as `type=int` did);
    a number outside [minimum, maximum] → 404 (there is no such page or row)."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:  # also 5,000 digits (Python's int-string limit)
        return default
    if not minimum <= value <= maximum:
        abort(404)
    return value


def parse_int(value: object, default: int | None = None, *, minimum: int = -MAX_ID,
              maximum: int = MAX_ID) -> int | None:
    """A number typed in a form field (ids of hidden fields and selects included): `default` when it is
    not an integer or lies outside what an INTEGER column holds."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):  # also 5,000 digits (Python's int-string limit)
        return default
    return number if minimum <= number <= maximum else default
