"""MarketPanel built from the real data in /work/shared/data (or $ALVH_DATA_DIR): known published values,
calendar hygiene, as-of rules, rescales, the cache and data-dir resolution."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adapters.data import DataError, MarketPanel, check_data, load_panel, resolve_data_dir
from adapters.data import panel as panel_mod
from adapters.data.cache import source_files
from adapters.data.panel import DAILY_COLUMNS, VX_COLUMNS
from engine.calendar import trading_days

REAL = Path(os.environ.get("ALVH_DATA_DIR", "/work/shared/data"))
pytestmark = pytest.mark.skipif(not (REAL / "spx_daily.csv").is_file(), reason="real data not available")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("panel-cache")


@pytest.fixture(scope="module")
def panel(cache_dir) -> MarketPanel:
    return load_panel(REAL, cache_dir=cache_dir)


# ---------------------------------------------------------------------------------------------
# shape and calendar
# ---------------------------------------------------------------------------------------------
def test_daily_frame_shape_and_dtypes(panel):
    d = panel.daily
    assert tuple(d.columns) == DAILY_COLUMNS
    assert (d.dtypes == np.float64).all()
    assert d.index.name == "date" and d.index.is_monotonic_increasing and d.index.is_unique
    assert d.index[0] == pd.Timestamp("1990-01-02")
    assert d.index.equals(trading_days(d.index[0], d.index[-1]))
    assert d["spx_close"].notna().all()  # SPX defines the panel's span


def test_no_holiday_rows(panel):
    for day in ("2022-05-30", "2004-06-11", "2025-01-09", "2018-12-05", "2015-04-03"):
        assert pd.Timestamp(day) not in panel.daily.index
        assert not (panel.vx["date"] == pd.Timestamp(day)).any()


# ---------------------------------------------------------------------------------------------
# known values (SOURCES.md sanity table and spot values)
# ---------------------------------------------------------------------------------------------
def test_known_index_values(panel):
    d = panel.daily
    assert d.loc["2020-03-16", "vix_close"] == pytest.approx(82.69)
    assert d.loc["2008-11-20", "vix_close"] == pytest.approx(80.86)
    assert d.loc["2024-08-05", "vix_high"] == pytest.approx(65.73)
    assert d.loc["2020-03-23", "spx_close"] == pytest.approx(2237.40)
    assert d.loc["2022-10-12", "spx_close"] == pytest.approx(3577.03)
    assert d.loc["2020-03-16", "vix3m_close"] == pytest.approx(67.70)
    assert d.loc["2020-03-16", "vix9d_close"] == pytest.approx(106.66)
    assert d.loc["2008-11-20", "vix6m_close"] == pytest.approx(61.47)
    assert d.loc["2020-03-16", "vvix_close"] == pytest.approx(207.59)
    assert d.loc["2024-08-05", "skew_close"] == pytest.approx(145.30)


def test_spx_extension_after_primary_source(panel):
    # spx_daily.csv ends 2026-03-13 (its partial 2026-03-16 row was dropped); the second source continues
    assert panel.daily.loc["2026-03-16", "spx_close"] == pytest.approx(6699.38)
    assert panel.daily.index[-1] == pd.Timestamp("2026-08-21")


def test_rate_tbill_is_converted_from_discount_yield(panel):
    r = panel.daily.loc["2023-10-02", "rate_tbill"]
    d = 0.0535
    assert r == pytest.approx(-np.log(1 - d * 91 / 360) * 365 / 91, abs=1e-12)
    assert 0.0545 < r < 0.0548  # above the 5.35 % discount quote
    assert panel.daily.loc["2023-10-02", "dff"] == pytest.approx(0.0533)


def test_fred_holiday_carry(panel):
    # Columbus Day 2023-10-09: NYSE open, DTB3 empty -> carried from 2023-10-06 (5.36 %)
    d = panel.daily
    assert d.loc["2023-10-09", "rate_tbill"] == d.loc["2023-10-06", "rate_tbill"]
    assert d.loc["2023-10-06", "rate_tbill"] == pytest.approx(-np.log(1 - 0.0536 * 91 / 360) * 365 / 91)


def test_vvix_nan_in_2006(panel):
    v = panel.daily["vvix_close"]
    assert v.loc["2006"].isna().all()
    assert v.first_valid_index() == pd.Timestamp("2007-01-03")
    assert v.loc["2007":].notna().loc[:"2026-07-22"].all()


def test_known_gaps_are_carried_as_of(panel):
    d = panel.daily
    assert d.loc["1999-12-31", "vix_close"] == d.loc["1999-12-30", "vix_close"]
    assert d.loc["1999-12-31", "vix_open"] == d.loc["1999-12-30", "vix_close"]
    assert d.loc["2000-09-29", "skew_close"] == d.loc["2000-09-19", "skew_close"]
    assert any("1999-12-31" in n for n in panel.notes)


def test_vix3m_backfilled_from_vxv(panel):
    d = panel.daily
    assert d.loc["2008-11-20", "vix3m_close"] == pytest.approx(69.24)  # Yahoo ^VXV
    assert d["vix3m_close"].first_valid_index() == pd.Timestamp("2006-07-17")
    assert d.loc["2009-09-18", "vix3m_close"] == pytest.approx(26.54)  # CBOE VIX3M from its first day


def test_etps(panel):
    d = panel.daily
    assert d["vxx_a_close"].first_valid_index() == pd.Timestamp("2009-01-30")
    assert d["vxx_a_close"].last_valid_index() == pd.Timestamp("2017-01-03")
    assert d.loc["2016-12-30", "vxx_a_close"] == pytest.approx(25.51)  # adj_close == close at the end
    assert d["vxx_close"].first_valid_index() == pd.Timestamp("2018-01-25")
    assert d.loc["2018-02-06", "svxy_close"] / d.loc["2018-02-05", "svxy_close"] == pytest.approx(0.17, abs=0.01)


# ---------------------------------------------------------------------------------------------
# VX futures
# ---------------------------------------------------------------------------------------------
def _vx_row(panel, date, month):
    vx = panel.vx
    r = vx[(vx["date"] == pd.Timestamp(date)) & (vx["contract_month"] == month)]
    assert len(r) == 1
    return r.iloc[0]


def test_vx_long_format(panel):
    vx = panel.vx
    assert tuple(vx.columns) == VX_COLUMNS
    assert not vx.duplicated(["date", "expiry"]).any()
    order = np.lexsort((vx["expiry"].to_numpy(), vx["date"].to_numpy()))
    assert (order == np.arange(len(vx))).all()  # sorted by (date, expiry)
    assert (vx["settle"] > 0).all()
    assert vx["date"].isin(panel.daily.index).all()
    assert (vx["date"] <= vx["expiry"]).all()


def test_vx_known_settles(panel):
    r = _vx_row(panel, "2020-03-16", "2020-03")
    assert r["settle"] == pytest.approx(72.625)
    assert r["close"] == pytest.approx(72.05) and r["open_interest"] == 75724
    assert r["expiry"] == pd.Timestamp("2020-03-18")
    assert _vx_row(panel, "2024-08-05", "2024-08")["settle"] == pytest.approx(32.0986)


def test_vx_pre_2007_rescaled_by_10(panel):
    # VX_2006-01.csv 2005-11-22: close 132.80, settle 131.90 in the file (old 10x scale)
    r = _vx_row(panel, "2005-11-22", "2006-01")
    assert r["settle"] == pytest.approx(13.19)
    assert r["close"] == pytest.approx(13.28)
    # continuity across the 2007-03-26 switch: the front month moves by < 10 %, not by 10x
    a = _vx_row(panel, "2007-03-23", "2007-04")["settle"]
    b = _vx_row(panel, "2007-03-26", "2007-04")["settle"]
    assert abs(np.log(b / a)) < 0.1


def test_vx_placeholders_and_bad_prints(panel):
    vx = panel.vx
    # VX_2006-01.csv 2005-11-18 is an all-zero placeholder row: dropped
    assert not ((vx["date"] == pd.Timestamp("2005-11-18")) & (vx["contract_month"] == "2006-01")).any()
    # 2005-11-23: no trade (prices 0) but a settle -> kept with NaN prices
    r = _vx_row(panel, "2005-11-23", "2006-01")
    assert np.isnan(r["close"]) and r["settle"] == pytest.approx(13.13)
    # the CFE 1.00 settle glitch of 2008-04-21 is not in the data
    assert vx.loc[vx["date"] == pd.Timestamp("2008-04-21"), "settle"].min() > 20
    assert _vx_row(panel, "2008-04-21", "2009-02")["settle"] == pytest.approx(23.55)  # previous settle (as-of)


def test_vx_matrix(panel):
    dates, expiries, settle = panel.vx_matrix()
    assert dates.equals(panel.daily.index)
    assert expiries.dtype == np.dtype("datetime64[D]") and (np.diff(expiries.astype("int64")) > 0).all()
    assert settle.shape == (len(dates), len(expiries)) and settle.dtype == np.float64
    i = dates.get_loc(pd.Timestamp("2020-03-16"))
    j = int(np.searchsorted(expiries, np.datetime64("2020-03-18")))
    assert settle[i, j] == pytest.approx(72.625)
    assert np.isnan(settle[i, int(np.searchsorted(expiries, np.datetime64("2008-03-19")))])
    assert np.isfinite(settle).sum() == len(panel.vx)
    assert panel.vx_matrix()[2] is settle  # cached


def test_slice(panel):
    s = panel.slice("2020-01-01", "2020-12-31")
    assert s.daily.index[0] == pd.Timestamp("2020-01-02") and s.daily.index[-1] == pd.Timestamp("2020-12-31")
    assert s.vx["date"].between("2020-01-02", "2020-12-31").all() and len(s.vx) > 0
    _, _, settle = s.vx_matrix()
    assert settle.shape[0] == len(s.daily) and np.isfinite(settle).sum() == len(s.vx)
    assert s.fingerprint == panel.fingerprint and s.events["fomc"].equals(panel.events["fomc"])


# ---------------------------------------------------------------------------------------------
# events and notes
# ---------------------------------------------------------------------------------------------
def test_events(panel):
    fomc, cpi = panel.events["fomc"], panel.events["cpi"]
    assert fomc.is_monotonic_increasing and fomc.is_unique and cpi.is_monotonic_increasing and cpi.is_unique
    assert pd.Timestamp("2026-04-29") in fomc and pd.Timestamp("2026-05-06") not in fomc  # prefer mayherprog
    assert pd.Timestamp("2001-09-17") in fomc and pd.Timestamp("2020-03-15") in fomc  # unscheduled
    assert pd.Timestamp("2025-12-18") in cpi
    assert pd.Timestamp("2025-11-12") not in cpi and pd.Timestamp("2025-12-12") not in cpi
    assert pd.Timestamp("2010-02-19") in cpi


def test_notes_explain_adjustments(panel):
    text = "\n".join(panel.notes)
    assert "divided by 10" in text
    assert "NYSE-closed days dropped" in text
    assert "2026-03" in text  # missing VX contract
    assert "-ln(1 - d*91/360)*365/91" in text


# ---------------------------------------------------------------------------------------------
# cache
# ---------------------------------------------------------------------------------------------
def test_cached_load_reads_no_csv_and_is_identical(panel, cache_dir, monkeypatch):
    def no_csv(*a, **k):
        raise AssertionError("the cached load re-read a CSV file")

    monkeypatch.setattr(pd, "read_csv", no_csv)
    again = load_panel(REAL, cache_dir=cache_dir)
    pd.testing.assert_frame_equal(again.daily, panel.daily)
    pd.testing.assert_frame_equal(again.vx, panel.vx)
    assert again.notes == panel.notes and again.fingerprint == panel.fingerprint
    assert all(again.events[k].equals(panel.events[k]) for k in panel.events)


def test_cache_invalidation_on_source_change(tmp_path, monkeypatch):
    data = tmp_path / "data"
    for rel in source_files(REAL):
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REAL / rel, data / rel)
    cdir = tmp_path / "cache"
    first = load_panel(data, cache_dir=cdir, start="2026-01-01")
    assert first.daily.loc["2026-03-13", "spx_close"] == pytest.approx(6632.19)

    real_build = panel_mod.build_panel
    calls = []

    def counting_build(*a, **k):
        calls.append(1)
        return real_build(*a, **k)

    monkeypatch.setattr(panel_mod, "build_panel", counting_build)

    # touched but unchanged: re-hashed, same fingerprint, served from the cache
    p = data / "spx_daily.csv"
    os.utime(p, ns=(time.time_ns(), time.time_ns() + 10**9))
    same = load_panel(data, cache_dir=cdir, start="2026-01-01")
    assert calls == [] and same.fingerprint == first.fingerprint

    # content changed: new fingerprint, rebuilt
    text = p.read_text()
    assert "2026-03-13,6673.49,6733.3,6623.92,6632.19," in text
    p.write_text(text.replace("2026-03-13,6673.49,6733.3,6623.92,6632.19,", "2026-03-13,6673.49,6733.3,6623.92,6632.20,"))
    rebuilt = load_panel(data, cache_dir=cdir, start="2026-01-01")
    assert calls == [1]
    assert rebuilt.fingerprint != first.fingerprint
    assert rebuilt.daily.loc["2026-03-13", "spx_close"] == pytest.approx(6632.20)
    assert len(list(cdir.glob("panel-*.meta.json"))) == 1  # the stale entry was pruned
    assert len(list(cdir.glob("panel-*.parquet"))) == 2


# ---------------------------------------------------------------------------------------------
# check_data and resolve_data_dir
# ---------------------------------------------------------------------------------------------
def test_check_data_on_real_data():
    rep = check_data(REAL)
    assert rep.ok, [str(e) for e in rep.errors]
    cov = rep.coverage.set_index("series")
    assert cov.loc["vix", "missing_trading_days"] == 4
    assert cov.loc["skew", "missing_trading_days"] == 16
    assert cov.loc["vvix", "first"] == pd.Timestamp("2007-01-03")
    assert any("vix_daily.csv: 47 rows" in w for w in rep.warnings)


def test_resolve_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("ALVH_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir(str(REAL)) == REAL
    monkeypatch.setenv("ALVH_DATA_DIR", str(REAL))
    assert resolve_data_dir(None) == REAL
    monkeypatch.delenv("ALVH_DATA_DIR")
    with pytest.raises(DataError) as ei:
        resolve_data_dir(None)
    msg = str(ei.value)
    assert ei.value.row is None and str(tmp_path / "home") in ei.value.file
    assert "--data-dir" in msg and "ALVH_DATA_DIR" in msg and "alvh data fetch" in msg
    with pytest.raises(DataError) as ei:
        resolve_data_dir(str(tmp_path / "nowhere"))
    assert "nowhere" in ei.value.file
    fetched = tmp_path / "home" / ".cache" / "alvh" / "data"
    fetched.mkdir(parents=True)
    (fetched / "spx_daily.csv").write_text("date,open,high,low,close,volume\n")
    assert resolve_data_dir(None) == fetched
