"""Tests for engine.calendar: trading days, SPX/VIX expirations, SPXW history and listings."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.calendar import (
    Expiry,
    is_trading_day,
    listed_expiries,
    next_trading_day,
    previous_trading_day,
    spx_monthly_expiry,
    spxw_expiries,
    third_friday,
    trading_days,
    vix_expiry,
)

DATA_DIR = Path(os.environ.get("ALVH_DATA_DIR", "/work/shared/data"))
T = pd.Timestamp


# ---------------------------------------------------------------------------------------------
# trading days
# ---------------------------------------------------------------------------------------------


def test_trading_days_existing_behaviour():
    d = trading_days("2024-06-17", "2024-06-21")
    assert d.name == "date" and d.tz is None
    assert list(d) == [T("2024-06-17"), T("2024-06-18"), T("2024-06-20"), T("2024-06-21")]  # Juneteenth


@pytest.mark.parametrize("day,expected", [
    ("2020-03-20", True), ("2022-04-15", False), ("2024-06-19", False), ("2025-01-09", False),
    ("2018-12-05", False), ("2012-10-29", False), ("2023-11-24", True), ("2024-03-30", False),
])
def test_is_trading_day(day, expected):
    assert is_trading_day(day) is expected
    assert is_trading_day(T(day)) is expected
    assert is_trading_day(np.datetime64(day)) is expected


def test_previous_and_next_trading_day():
    assert previous_trading_day("2022-04-18") == T("2022-04-14")   # over Good Friday + weekend
    assert previous_trading_day("2022-04-14") == T("2022-04-13")   # strictly before
    assert next_trading_day("2022-04-14") == T("2022-04-18")
    assert next_trading_day("2024-06-18") == T("2024-06-20")
    assert previous_trading_day(T("2025-01-10 15:30")) == T("2025-01-08")  # 01-09 Carter funeral
    assert isinstance(previous_trading_day("2020-01-02"), pd.Timestamp)
    with pytest.raises(ValueError):
        previous_trading_day("1980-01-01")


# ---------------------------------------------------------------------------------------------
# SPX monthly and VIX expirations
# ---------------------------------------------------------------------------------------------


def test_spx_monthly_expiry():
    assert spx_monthly_expiry(2020, 3) == T("2020-03-20")
    assert spx_monthly_expiry(2022, 4) == T("2022-04-14")   # Good Friday 2022-04-15
    assert spx_monthly_expiry(2014, 4) == T("2014-04-17")   # Good Friday 2014-04-18
    assert spx_monthly_expiry(2026, 6) == T("2026-06-18")   # Juneteenth on the third Friday
    assert spx_monthly_expiry(2008, 11) == T("2008-11-21")
    assert third_friday(2022, 4) == T("2022-04-15")
    for y in range(1990, 2030):
        for m in range(1, 13):
            d = spx_monthly_expiry(y, m)
            assert 14 <= d.day <= 21 and d.weekday() in (3, 4) and is_trading_day(d)


def test_vix_expiry_known_dates():
    assert vix_expiry(2018, 2) == T("2018-02-14")
    assert vix_expiry(2020, 3) == T("2020-03-18")
    assert vix_expiry(2024, 8) == T("2024-08-21")


@pytest.mark.parametrize("year,month,expected", [
    (2014, 3, "2014-03-18"),   # Good Friday 2014-04-18 -> Tuesday
    (2008, 2, "2008-02-19"),   # Good Friday 2008-03-21
    (2022, 3, "2022-03-15"),   # Good Friday 2022-04-15
    (2024, 6, "2024-06-18"),   # the Wednesday itself is Juneteenth
    (2026, 5, "2026-05-19"),   # Juneteenth 2026 is the following third Friday
])
def test_vix_expiry_holiday_shifted(year, month, expected):
    assert vix_expiry(year, month) == T(expected)


def _vx_index() -> pd.DataFrame:
    path = DATA_DIR / "vx_futures" / "contracts_index.csv"
    if not path.exists():
        pytest.skip(f"{path} not available")
    return pd.read_csv(path, dtype=str)


def test_vix_expiry_matches_every_real_vx_expiry_since_2006():
    df = _vx_index()
    df = df[df["contract_month"] >= "2006-01"]
    assert len(df) >= 240
    mismatches = []
    for cm, ex in zip(df["contract_month"], df["expiry"]):
        y, m = map(int, cm.split("-"))
        if vix_expiry(y, m) != T(ex):
            mismatches.append((cm, ex, vix_expiry(y, m).date()))
    assert mismatches == []


# ---------------------------------------------------------------------------------------------
# SPXW history
# ---------------------------------------------------------------------------------------------


def _weekday_set(idx, wd):
    """Expiries on weekday ``wd`` that are not month-end (EOM/EOQ) dates."""
    return sorted(d for d in idx if d.weekday() == wd and next_trading_day(d).month == d.month)


def test_spxw_friday_weeklys_history():
    pm = spxw_expiries("2005-01-01", "2011-01-31")
    am = spxw_expiries("2005-01-01", "2011-01-31", include_am_weeklys=True).difference(pm)
    assert am[0] == T("2005-11-04")                     # first Weeklys (listed 2005-10-28), AM-settled
    assert am[-1] == T("2010-12-03")                    # last AM-settled Weekly
    assert T("2005-11-18") not in am                    # no Weeklys in standard-expiration week
    assert T("2010-12-10") in pm                        # first PM-settled "Week-End" SPX option
    assert T("2010-12-17") not in pm                    # third Friday: standard SPX only
    # before the PM Week-End series, the only PM-settled dates are the quarterly (SPXQ) expiries
    early = [d for d in pm if d < T("2010-12-10")]
    assert early and all(d.month in (3, 6, 9, 12) and next_trading_day(d).month != d.month for d in early)
    assert T("2007-03-30") in pm                        # first SPX Quarterly (SPXQ), PM-settled
    assert T("2007-02-28") not in pm                    # no End-of-Month series before 2014


def test_spxw_weekday_series_start_dates():
    idx = spxw_expiries("2016-01-01", "2022-06-30")
    assert _weekday_set(idx, 2)[0] == T("2016-03-02")       # Wednesdays (listed 2016-02-23)
    assert _weekday_set(idx, 0)[0] == T("2016-08-22")       # Mondays (listed 2016-08-15)
    tuesdays = _weekday_set(idx, 1)
    assert T("2016-09-06") in tuesdays                      # Monday Labor Day -> Tuesday expiry
    # before the Tuesday series, Tuesdays appear only after a Monday holiday (2022-01-18, 2022-02-22)
    assert next(d for d in tuesdays if d.year == 2022 and is_trading_day(d - pd.Timedelta(days=1))) \
        == T("2022-04-26")
    thursdays = _weekday_set(spxw_expiries("2022-01-01", "2022-12-31"), 3)
    assert T("2022-04-14") in thursdays                           # Good Friday shift of 04-15
    assert next(d for d in thursdays if is_trading_day(d + pd.Timedelta(days=1))) == T("2022-05-19")
    assert T("2022-03-31") in idx                                 # a Thursday EOQ existed before
    assert T("2014-07-31") in spxw_expiries("2014-07-01", "2014-08-31")   # first EOM
    assert T("2014-06-30") in spxw_expiries("2014-06-01", "2014-06-30")   # EOQ (SPXQ)
    assert T("2014-05-30") in spxw_expiries("2014-05-29", "2014-05-31")   # Friday Weekly
    assert T("2014-04-30") not in spxw_expiries("2014-04-29", "2014-04-30")  # Wed, before EOM series


def test_spxw_third_friday_and_holidays():
    assert T("2016-08-19") not in spxw_expiries("2016-08-01", "2016-08-31")  # SPX AM only
    assert T("2017-05-19") in spxw_expiries("2017-05-01", "2017-05-31")      # SPXPM -> SPXW
    # Good Friday 2021-04-02: the Friday Weekly expires on Thursday 2021-04-01
    idx = spxw_expiries("2021-03-29", "2021-04-09")
    assert T("2021-04-01") in idx and T("2021-04-02") not in idx
    # Wednesday holiday (2018-07-04) -> Tuesday
    assert T("2018-07-03") in spxw_expiries("2018-07-02", "2018-07-06")


def test_spxw_daily_since_may_2022():
    idx = set(spxw_expiries("2022-05-19", "2025-12-31"))
    assert idx == set(trading_days("2022-05-19", "2025-12-31"))


def test_spxw_expiries_are_trading_days_and_sorted():
    idx = spxw_expiries("2005-01-01", "2030-06-30", include_am_weeklys=True)
    assert idx.is_monotonic_increasing and idx.is_unique
    assert all(is_trading_day(d) for d in idx[::7])


# ---------------------------------------------------------------------------------------------
# listed_expiries
# ---------------------------------------------------------------------------------------------


def test_listed_expiries_matches_cboe_published_list_2016_08_17():
    # Cboe Options Hub blog 2016-08-17: S&P 500 expirations through September 2016
    # (Tue Sep 6 was to be listed on Aug 19, so it is not yet listed on Aug 17)
    got = [(e.date.strftime("%Y-%m-%d"), e.root) for e in listed_expiries("2016-08-17", 45)]
    expected = [("2016-08-17", "SPXW"), ("2016-08-19", "SPX"), ("2016-08-22", "SPXW"),
                ("2016-08-24", "SPXW"), ("2016-08-26", "SPXW"), ("2016-08-29", "SPXW"),
                ("2016-08-31", "SPXW"), ("2016-09-02", "SPXW"), ("2016-09-07", "SPXW"),
                ("2016-09-09", "SPXW"), ("2016-09-14", "SPXW"), ("2016-09-16", "SPX"),
                ("2016-09-23", "SPXW"), ("2016-09-30", "SPXW")]
    assert got == expected
    assert T("2016-09-06") in [e.date for e in listed_expiries("2016-08-22", 45)]


def test_listed_expiries_settlement_and_ordering():
    ex = listed_expiries("2020-03-20", 40)
    assert all(isinstance(e, Expiry) for e in ex)
    # the AM monthly expiring today is gone (settled at the open); the PM series is tradeable (0 DTE)
    assert Expiry(T("2020-03-20"), "SPX", "AM") not in ex
    assert Expiry(T("2020-03-20"), "SPXW", "PM") in ex
    assert Expiry(T("2020-04-17"), "SPX", "AM") in ex
    assert ex == sorted(ex)
    assert all(e.settlement == ("AM" if e.root == "SPX" else "PM") for e in ex)
    assert all(0 <= (e.date - T("2020-03-20")).days <= 40 for e in ex)
    assert listed_expiries("2020-03-18", 0) == [Expiry(T("2020-03-18"), "SPXW", "PM")]
    assert listed_expiries("2020-03-19", 0) == []


def test_listed_expiries_eras():
    # 1999: only the AM monthlies
    ex = listed_expiries("1999-06-01", 70)
    assert [e.date for e in ex] == [T("1999-06-18"), T("1999-07-16")]
    assert {e.root for e in ex} == {"SPX"}
    # 2008: AM monthlies, the next AM Weekly (listed one week ahead) and the PM quarterly
    ex = listed_expiries("2008-06-06", 30)
    assert Expiry(T("2008-06-13"), "SPXW", "AM") in ex
    assert Expiry(T("2008-06-20"), "SPX", "AM") in ex
    assert Expiry(T("2008-06-30"), "SPXW", "PM") in ex
    assert Expiry(T("2008-06-27"), "SPXW", "AM") not in ex   # listed only a week ahead
    # 2013: PM Friday Weeklys about five weeks ahead; Good Friday 2013-03-29 -> Thursday 03-28 (also EOQ)
    got = [(e.date, e.root) for e in listed_expiries("2013-03-07", 60)]
    assert got == [(T("2013-03-08"), "SPXW"), (T("2013-03-15"), "SPX"), (T("2013-03-22"), "SPXW"),
                   (T("2013-03-28"), "SPXW"), (T("2013-04-05"), "SPXW"), (T("2013-04-12"), "SPXW"),
                   (T("2013-04-19"), "SPX")]


def _chain_expiries(path: Path) -> set[tuple[pd.Timestamp, str]]:
    df = pd.read_csv(path, skiprows=3, usecols=[0, 1])
    exp = pd.to_datetime(df.iloc[:, 0], format="%a %b %d %Y")
    root = df.iloc[:, 1].str.extract(r"^([A-Z]+)\d")[0]
    return set(zip(exp, root))


def test_listed_expiries_against_real_chain_snapshots():
    files = sorted((DATA_DIR / "spx_option_chains").glob("spx_chain_*.csv"))
    if not files:
        pytest.skip("no SPX chain snapshots available")
    for f in files:
        day = T(re.search(r"(\d{4}-\d{2}-\d{2})", f.name).group(1))
        chain = _chain_expiries(f)
        for horizon, max_diff in ((21, 0), (400, 3)):
            ours = {(e.date, e.root) for e in listed_expiries(day, horizon) if e.date > day}
            theirs = {x for x in chain if day < x[0] <= day + pd.Timedelta(days=horizon)}
            assert len(ours ^ theirs) <= max_diff, (f.name, horizon, sorted(ours ^ theirs))
