"""Japanese fiscal years (年度): April to March, decided in JST whatever zone the instant is in."""

from __future__ import annotations

from datetime import date, datetime

from ..formatting import JST


def fiscal_year(value: datetime | date) -> int:
    """The 年度 of an instant: 2025-04-01 00:00 JST → 2025, 2025-03-31 23:59 JST → 2024.

    Aware datetimes are converted to JST first (2025-03-31 15:00 UTC is already 1 April in JST);
    naive datetimes are refused because their day is ambiguous.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware datetime (JST or UTC)")
        value = value.astimezone(JST).date()
    return value.year if value.month >= 4 else value.year - 1


def fiscal_year_bounds(year: int) -> tuple[datetime, datetime]:
    """[start, end) of 年度 `year` as aware JST datetimes: 1 April 00:00 to the next 1 April 00:00."""
    return datetime(year, 4, 1, tzinfo=JST), datetime(year + 1, 4, 1, tzinfo=JST)


def fiscal_year_label(year: int) -> str:
    """`2025年度` — 令和 labels are left to print material."""
    return f"{year}年度"
