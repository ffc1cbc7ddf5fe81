"""Expiry dates the fake server lists, on the engine's calendar (engine/calendar.py), as ``datetime.date``."""

from __future__ import annotations

import datetime as dt

from engine import calendar as engine_calendar

MONTH_CODES = "FGHJKMNQUVXZ"  # futures month letters, January..December (VXF4 = January 2024)


def third_friday(year: int, month: int) -> dt.date:
    """The calendar third Friday (not holiday-adjusted): the SPX AM monthly date the server lists."""
    return engine_calendar.third_friday(year, month).date()


def add_months(year: int, month: int, n: int) -> tuple[int, int]:
    m = month - 1 + n
    return year + m // 12, m % 12 + 1


def vx_expiry(year: int, month: int) -> dt.date:
    """VX future / VIX option settlement: the Wednesday 30 days before the next month's 3rd Friday,
    moved to the trading day before when that Wednesday or Friday is an exchange holiday (the dates
    the product trades; supported 1990..2030)."""
    return engine_calendar.vix_expiry(year, month).date()


def parse_yyyymmdd(s: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(s[:8], "%Y%m%d").date()
    except (ValueError, TypeError):
        return None
