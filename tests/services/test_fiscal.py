"""Fiscal-year (年度) boundaries are decided in JST."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from eventapp.formatting import JST
from eventapp.services.fiscal import fiscal_year, fiscal_year_bounds, fiscal_year_label


def test_last_minute_of_march_jst_belongs_to_the_previous_year():
    assert fiscal_year(datetime(2025, 3, 31, 23, 59, 59, tzinfo=JST)) == 2024


def test_first_minute_of_april_jst_starts_the_new_year():
    assert fiscal_year(datetime(2025, 4, 1, 0, 0, tzinfo=JST)) == 2025


def test_utc_afternoon_of_31_march_is_already_april_in_japan():
    assert fiscal_year(datetime(2025, 3, 31, 14, 59, tzinfo=UTC)) == 2024
    assert fiscal_year(datetime(2025, 3, 31, 15, 0, tzinfo=UTC)) == 2025


def test_dates_and_january():
    assert fiscal_year(date(2026, 1, 15)) == 2025
    assert fiscal_year(date(2025, 12, 31)) == 2025


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError):
        fiscal_year(datetime(2025, 4, 1))


def test_bounds_are_half_open_in_jst():
    start, end = fiscal_year_bounds(2025)
    assert start == datetime(2025, 3, 31, 15, 0, tzinfo=UTC)
    assert end == datetime(2026, 3, 31, 15, 0, tzinfo=UTC)
    assert fiscal_year(start) == 2025
    assert fiscal_year_label(2025) == "2025年度"
