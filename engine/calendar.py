"""Exchange calendar facts: trading days, SPX and VIX expirations.

Holidays come from exchange_calendars (XNYS); nothing here is a hand-kept holiday list.  The
product-history dates used for SPXW series (launch dates, listing horizons) are documented in
docs/pricing.md with their sources.

All dates are handled internally as integer day numbers (days since 1970-01-01) so that the hot
functions (``listed_expiries``, ``is_trading_day``, ``previous_trading_day``) avoid pandas overhead.
The supported range is 1990-01-01 .. 2030-12-31 (the XNYS calendar loaded below).
"""
from __future__ import annotations

import bisect
import datetime as _dt
import warnings
from dataclasses import dataclass
from functools import lru_cache

import exchange_calendars as xcals
import numpy as np
import pandas as pd

__all__ = [
    "Expiry",
    "is_trading_day",
    "listed_expiries",
    "next_trading_day",
    "previous_trading_day",
    "spx_monthly_expiry",
    "spxw_expiries",
    "third_friday",
    "trading_days",
    "vix_expiry",
]

_CAL_START = "1990-01-01"
_CAL_END = "2030-12-31"
_ORD_1970 = _dt.date(1970, 1, 1).toordinal()
_NS_PER_DAY = 86_400_000_000_000


@lru_cache(maxsize=1)
def _xnys() -> xcals.ExchangeCalendar:
    # SPX index options list on the same holiday schedule as NYSE for full-day closures.
    with warnings.catch_warnings():
        # exchange_calendars 4.x trips a pandas-3 deprecation warning while building the calendar
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        return xcals.get_calendar("XNYS", start=_CAL_START, end=_CAL_END)


def trading_days(start: str | pd.Timestamp, end: str | pd.Timestamp) -> pd.DatetimeIndex:
    """NYSE full or half trading days in [start, end], tz-naive midnight timestamps."""
    sessions = _xnys().sessions_in_range(pd.Timestamp(start), pd.Timestamp(end))
    return pd.DatetimeIndex(sessions.tz_localize(None) if sessions.tz is not None else sessions, name="date")


# ----------------------------------------------------------------------------------------------
# day-number helpers
# ----------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _sessions() -> tuple[list[int], frozenset[int]]:
    s = _xnys().sessions
    if s.tz is not None:
        s = s.tz_localize(None)
    days = (s.asi8 // _NS_PER_DAY).astype(np.int64).tolist()
    return days, frozenset(days)


@lru_cache(maxsize=4096)
def _parse_day(d: str) -> int:
    return pd.Timestamp(d).toordinal() - _ORD_1970


def _day(d) -> int:
    """Day number (days since 1970-01-01) of the calendar date of ``d`` (wall-clock date if tz-aware)."""
    if isinstance(d, _dt.date):  # includes datetime and pd.Timestamp
        return d.toordinal() - _ORD_1970
    if isinstance(d, str):
        return _parse_day(d)
    if isinstance(d, np.datetime64):
        return int(d.astype("datetime64[D]").astype(np.int64))
    return pd.Timestamp(d).toordinal() - _ORD_1970


def _ts(day: int) -> pd.Timestamp:
    return pd.Timestamp(day * _NS_PER_DAY)


def _check_range(day: int) -> None:
    days, _ = _sessions()
    if day < days[0] - 7 or day > days[-1] + 7:
        raise ValueError(f"date {_ts(day).date()} outside supported calendar range {_CAL_START}..{_CAL_END}")


def _is_session(day: int) -> bool:
    return day in _sessions()[1]


def _prev_session(day: int) -> int:
    """Last session strictly before ``day``."""
    days, _ = _sessions()
    i = bisect.bisect_left(days, day) - 1
    if i < 0:
        raise ValueError("no trading day before the start of the calendar")
    return days[i]


def _next_session(day: int) -> int:
    """First session strictly after ``day``."""
    days, _ = _sessions()
    i = bisect.bisect_right(days, day)
    if i >= len(days):
        raise ValueError("no trading day after the end of the calendar")
    return days[i]


def _on_or_before(day: int) -> int:
    return day if _is_session(day) else _prev_session(day)


def _on_or_after(day: int) -> int:
    return day if _is_session(day) else _next_session(day)


# ----------------------------------------------------------------------------------------------
# public trading-day functions
# ----------------------------------------------------------------------------------------------
def is_trading_day(d) -> bool:
    """True if ``d`` is an XNYS session (full or half day)."""
    day = _day(d)
    _check_range(day)
    return _is_session(day)


def previous_trading_day(d) -> pd.Timestamp:
    """The last trading day strictly before ``d``."""
    day = _day(d)
    _check_range(day)
    return _ts(_prev_session(day))


def next_trading_day(d) -> pd.Timestamp:
    """The first trading day strictly after ``d``."""
    day = _day(d)
    _check_range(day)
    return _ts(_next_session(day))


# ----------------------------------------------------------------------------------------------
# monthly expirations
# ----------------------------------------------------------------------------------------------
def _third_friday_day(year: int, month: int) -> int:
    first = _dt.date(year, month, 1)
    dom = 1 + (4 - first.weekday()) % 7 + 14
    return _dt.date(year, month, dom).toordinal() - _ORD_1970


def third_friday(year: int, month: int) -> pd.Timestamp:
    """The calendar third Friday of the month (not holiday-adjusted)."""
    return _ts(_third_friday_day(year, month))


@lru_cache(maxsize=2048)
def _spx_monthly_day(year: int, month: int) -> int:
    tf = _third_friday_day(year, month)
    _check_range(tf)
    return _on_or_before(tf)


def spx_monthly_expiry(year: int, month: int) -> pd.Timestamp:
    """Standard (AM-settled, class SPX) monthly expiry: the third Friday, or the preceding trading day
    when that Friday is an exchange holiday (e.g. Good Friday 2022-04-15 -> 2022-04-14).  This is the
    date of the Special Opening Quotation; the last trading day is the trading day before it."""
    return _ts(_spx_monthly_day(int(year), int(month)))


@lru_cache(maxsize=2048)
def _vix_day(year: int, month: int) -> int:
    ny, nm = (year + 1, 1) if month == 12 else (year, month + 1)
    tf = _third_friday_day(ny, nm)  # unadjusted third Friday of the following month
    wed = tf - 30
    _check_range(tf)
    if not _is_session(tf) or not _is_session(wed):
        return _prev_session(wed)
    return wed


def vix_expiry(year: int, month: int) -> pd.Timestamp:
    """Final settlement date of the VX future / VIX options of contract month (year, month): the
    Wednesday 30 calendar days before the third Friday of the following month; if that Wednesday or
    that Friday is an exchange holiday, the trading day before the Wednesday.  Checked against every
    real VX expiry 2006-2026 in tests/test_calendar.py."""
    return _ts(_vix_day(int(year), int(month)))


# ----------------------------------------------------------------------------------------------
# SPXW (PM-settled) series and listing model
# ----------------------------------------------------------------------------------------------
def _d(s: str) -> int:
    return _dt.date.fromisoformat(s).toordinal() - _ORD_1970


# Product-history dates (sources in docs/pricing.md).
_AM_WEEKLY_FIRST = _d("2005-11-04")      # Weeklys launched (listed) 2005-10-28, A.M.-settled
_AM_WEEKLY_LAST = _d("2010-12-03")       # last A.M.-settled SPX Weekly
_PM_WEEKLY_FIRST = _d("2010-12-10")      # first P.M.-settled SPX Week-End (listed 2010-12-02)
_SPXW_3RD_FRIDAY_FROM = _d("2017-05-01")  # SPXPM series renamed SPXW -> PM third-Friday SPXW
_WED_FIRST = _d("2016-03-02")            # listed 2016-02-23
_MON_FIRST = _d("2016-08-22")            # listed 2016-08-15
_TUE_FIRST = _d("2022-04-26")            # listed 2022-04-18
_THU_FIRST = _d("2022-05-19")            # listed 2022-05-11
_EOQ_FIRST = _d("2007-03-30")            # SPX Quarterlys (SPXQ, PM) listed 2007-02-21; SPXW root from 2014-07
_EOM_FIRST = _d("2014-07-31")            # End-of-Month SPXW listed 2014-07-07
_SCHEDULE_END = _d("2030-11-30")

# Launch listing dates (no series of that kind is listed before these).
_LAUNCH = {
    "am_weekly": _d("2005-10-28"),
    "fri": _d("2010-12-02"),
    "wed": _d("2016-02-23"),
    "mon": _d("2016-08-15"),
    "tue": _d("2022-04-18"),
    "thu": _d("2022-05-11"),
    "eoq": _d("2007-02-21"),
    "eom": _d("2014-07-07"),
    "spxw3f": _SPXW_3RD_FRIDAY_FROM,
}

# Listing horizon in calendar days (expiry - first listed day), by era of the expiry date:
# list of (era start day, horizon); the last era whose start <= expiry applies.
_HORIZON = {
    "am_weekly": [(_AM_WEEKLY_FIRST, 7)],                     # listed Friday, expire next Friday
    "fri": [(_PM_WEEKLY_FIRST, 8),                            # listed Thursday, expire Friday+8
            (_d("2012-05-01"), 36),                           # five consecutive weeks (May 2012)
            (_d("2014-01-01"), 43),                           # six weeks beyond the current (RG14-010)
            (_d("2022-01-01"), 50)],                          # seven weeks (2022-2024 chain snapshots)
    "wed": [(_WED_FIRST, 15), (_d("2016-06-01"), 29), (_d("2023-01-01"), 33)],
    "mon": [(_MON_FIRST, 17), (_d("2022-01-01"), 35), (_d("2023-01-01"), 39)],
    "tue": [(_TUE_FIRST, 15), (_d("2022-06-01"), 14), (_d("2023-01-01"), 34)],
    "thu": [(_THU_FIRST, 15), (_d("2022-06-01"), 22), (_d("2023-01-01"), 34)],
    "eom": [(_EOM_FIRST, 180)],
    "eoq": [(_EOQ_FIRST, 366)],
    "spxw3f": [(_SPXW_3RD_FRIDAY_FROM, 160)],                 # ~5 months (2022-2024 chain snapshots)
    "spx": [(0, 400)],                                        # 12 near-term months (LEAPS not modelled)
}


def _horizon(kind: str, expiry_day: int) -> int:
    h = _HORIZON[kind][0][1]
    for start, hh in _HORIZON[kind]:
        if expiry_day >= start:
            h = hh
    return h


def _listing_day(kind: str, expiry_day: int) -> int:
    return max(_LAUNCH.get(kind, -10**9), expiry_day - _horizon(kind, expiry_day))


@dataclass(frozen=True, slots=True, order=True)
class Expiry:
    """One listed SPX-complex expiration. ``root`` is 'SPX' (AM-settled standard monthly) or 'SPXW'
    (every other series; see docs/pricing.md for the historical symbols SPXQ and the 2005-2010
    AM-settled Weeklys, which are reported as root 'SPXW' with settlement 'AM').
    ``settlement`` is 'AM' (Special Opening Quotation on ``date``; last trade the session before) or
    'PM' (closing print on ``date``; tradeable on ``date``)."""

    date: pd.Timestamp
    root: str
    settlement: str


@lru_cache(maxsize=1)
def _schedule():
    """Master schedule: sorted lists (expiry_day, root, settlement, listing_day, Expiry)."""
    pm: dict[int, int] = {}   # PM date -> earliest listing day
    pm_kinds: dict[int, set[str]] = {}
    am_weekly: dict[int, int] = {}

    def add_pm(day: int, kind: str, nominal: int) -> None:
        lst = _listing_day(kind, nominal)
        if day not in pm or lst < pm[day]:
            pm[day] = lst
        pm_kinds.setdefault(day, set()).add(kind)

    start = _d("2005-10-24")
    # month-based series
    for year in range(2005, 2031):
        for month in range(1, 13):
            nxt = _dt.date(year + (month == 12), month % 12 + 1, 1).toordinal() - _ORD_1970
            if nxt - 1 > _SCHEDULE_END + 31:
                continue
            eom = _on_or_before(nxt - 1)  # last trading day of the month (nxt is the 1st of next month)
            if eom >= _EOM_FIRST:
                add_pm(eom, "eom", eom)
            if month in (3, 6, 9, 12) and eom >= _EOQ_FIRST:
                add_pm(eom, "eoq", eom)
            tf = _third_friday_day(year, month)
            if tf >= _SPXW_3RD_FRIDAY_FROM:
                add_pm(_on_or_before(tf), "spxw3f", tf)
    third_fridays = {_third_friday_day(y, m) for y in range(2005, 2032) for m in range(1, 13)}
    eoq_days = {d for d, k in pm_kinds.items() if "eoq" in k}
    # weekday-based series
    for nominal in range(start, _SCHEDULE_END + 1):
        wd = (nominal + 3) % 7  # 1970-01-01 was a Thursday -> Monday = 0
        if wd == 4:  # Friday
            if nominal in third_fridays and nominal < _SPXW_3RD_FRIDAY_FROM:
                continue  # no Weeklys in standard-expiration week before SPXW third Fridays
            day = _on_or_before(nominal)
            if _AM_WEEKLY_FIRST <= nominal <= _AM_WEEKLY_LAST:
                if day not in eoq_days:
                    am_weekly[day] = _listing_day("am_weekly", nominal)
            elif nominal >= _PM_WEEKLY_FIRST and nominal not in third_fridays:
                add_pm(day, "fri", nominal)
        elif wd == 0 and nominal >= _MON_FIRST:
            add_pm(_on_or_after(nominal), "mon", nominal)  # Monday holiday -> Tuesday (Cboe rule)
        elif wd == 1 and nominal >= _TUE_FIRST:
            add_pm(_on_or_before(nominal), "tue", nominal)
        elif wd == 2 and nominal >= _WED_FIRST:
            add_pm(_on_or_before(nominal), "wed", nominal)
        elif wd == 3 and nominal >= _THU_FIRST:
            add_pm(_on_or_before(nominal), "thu", nominal)

    rows: list[tuple[int, str, str, int]] = []
    for year in range(1990, 2031):
        for month in range(1, 13):
            d = _spx_monthly_day(year, month)
            if d <= _SCHEDULE_END:
                rows.append((d, "SPX", "AM", _listing_day("spx", d)))
    rows += [(d, "SPXW", "PM", lst) for d, lst in pm.items() if d <= _SCHEDULE_END]
    rows += [(d, "SPXW", "AM", lst) for d, lst in am_weekly.items()]
    rows.sort()
    exp_days = [r[0] for r in rows]
    list_days = [r[3] for r in rows]
    pm_flags = [r[2] == "PM" for r in rows]
    objs = [Expiry(_ts(r[0]), r[1], r[2]) for r in rows]
    return exp_days, list_days, pm_flags, objs


def spxw_expiries(start, end, *, include_am_weeklys: bool = False) -> pd.DatetimeIndex:
    """PM-settled SPX-complex expiry dates (other than the AM standard monthly) that existed in
    [start, end]: Friday Weeklys (PM from 2010-12-10; none in standard-expiration week before
    2017-05), SPX Quarterlys (last trading day of Mar/Jun/Sep/Dec, from 2007-03-30, root SPXQ until
    2014-07), End-of-Month (from 2014-07-31), Wednesday (2016-03-02), Monday (2016-08-22), Tuesday
    (2022-04-26), Thursday (2022-05-19), PM third-Friday SPXW (from 2017-05).  Holidays: the
    preceding trading day, except Monday series which move to the following trading day.

    include_am_weeklys=True adds the 2005-11-04..2010-12-03 AM-settled Friday Weeklys."""
    s, e = _day(start), _day(end)
    exp_days, _, pm_flags, objs = _schedule()
    lo = bisect.bisect_left(exp_days, s)
    hi = bisect.bisect_right(exp_days, e)
    out = sorted({
        exp_days[i] for i in range(lo, hi)
        if objs[i].root == "SPXW" and (pm_flags[i] or include_am_weeklys)
    })
    return pd.DatetimeIndex(np.asarray(out, dtype="datetime64[D]").astype("datetime64[ns]"), name="date")


@lru_cache(maxsize=131072)
def _listed(day: int, max_days: int) -> tuple[Expiry, ...]:
    exp_days, list_days, pm_flags, objs = _schedule()
    lo = bisect.bisect_left(exp_days, day)
    hi = bisect.bisect_right(exp_days, day + max_days)
    return tuple(
        objs[i] for i in range(lo, hi)
        if list_days[i] <= day and (pm_flags[i] or exp_days[i] > day)
    )


def listed_expiries(as_of, max_days: int) -> list[Expiry]:
    """Every SPX-complex expiry listed (tradeable) on ``as_of`` whose date is within ``max_days``
    calendar days: SPX monthlies (root 'SPX', 'AM') and SPXW series (root 'SPXW', 'PM'; 'AM' for the
    2005-2010 Weeklys).  Sorted by (date, root).  AM expiries are excluded on their own expiry date
    (they stopped trading the session before); PM expiries are included on their expiry date
    (0 DTE).  Listing horizons follow the era model in docs/pricing.md."""
    return list(_listed(_day(as_of), int(max_days)))
