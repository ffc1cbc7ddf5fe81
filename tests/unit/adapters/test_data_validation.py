"""Validation rules of adapters/data on small synthetic files (and one end-to-end copy of the real data).

Every error test asserts the file name AND the 1-based row number (header = row 1) in the message.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adapters.data import DataError, check_data, load_panel
from adapters.data import sources as S
from adapters.data.cache import source_files
from adapters.data.validation import Sink, validate_daily, validate_vx
from engine.calendar import trading_days

REAL = Path(os.environ.get("ALVH_DATA_DIR", "/work/shared/data"))
needs_real = pytest.mark.skipif(not (REAL / "spx_daily.csv").is_file(), reason="real data not available")

# 2020-03-02 .. 2020-03-31: 22 NYSE sessions
DAYS = trading_days("2020-03-02", "2020-03-31")


def _ohlc_rows(days=DAYS, base=20.0):
    rows = []
    for i, d in enumerate(days):
        c = base + i * 0.5
        rows.append([d.strftime("%Y-%m-%d"), f"{c - 0.2:.2f}", f"{c + 1:.2f}", f"{c - 1:.2f}", f"{c:.2f}"])
    return rows


def _write(path: Path, header: str, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "\n".join(",".join(r) for r in rows) + "\n")
    return path


def _vix(tmp_path: Path, rows) -> Path:
    return _write(tmp_path / "vix_daily.csv", "date,open,high,low,close", rows)


def _raises(tmp_path, spec=S.VIX) -> DataError:
    with pytest.raises(DataError) as ei:
        validate_daily(tmp_path, spec, Sink(collect=False))
    return ei.value


# ---------------------------------------------------------------------------------------------
# daily series
# ---------------------------------------------------------------------------------------------
def test_clean_file_passes_and_values_are_floats(tmp_path):
    _vix(tmp_path, _ohlc_rows())
    v = validate_daily(tmp_path, S.VIX, Sink(collect=False))
    assert v.frame.index.equals(DAYS)
    assert v.frame["close"].dtype == np.float64
    assert v.frame.loc["2020-03-03", "close"] == pytest.approx(20.5)
    assert v.rows.loc["2020-03-02"] == 2  # header is line 1


def test_nan_close_names_file_and_row(tmp_path):
    rows = _ohlc_rows()
    rows[3][4] = ""  # 2020-03-05 -> line 5
    _vix(tmp_path, rows)
    e = _raises(tmp_path)
    assert str(e) == "vix_daily.csv row 5 (2020-03-05): close is NaN"
    assert (e.file, e.row) == ("vix_daily.csv", 5)


def test_duplicate_date(tmp_path):
    rows = _ohlc_rows()
    rows.insert(6, list(rows[5]))  # repeat 2020-03-09; the duplicate is line 8
    _vix(tmp_path, rows)
    e = _raises(tmp_path)
    assert e.file == "vix_daily.csv" and e.row == 8
    assert "vix_daily.csv row 8 (2020-03-09)" in str(e) and "duplicate date" in str(e) and "row 7" in str(e)


def test_negative_price(tmp_path):
    rows = _ohlc_rows()
    rows[10][2] = "-1.5"  # high on line 12
    _vix(tmp_path, rows)
    e = _raises(tmp_path)
    assert str(e).startswith("vix_daily.csv row 12 (2020-03-16): high is -1.5")
    assert e.row == 12


def test_zero_price_is_an_error(tmp_path):
    rows = _ohlc_rows()
    rows[0][4] = "0"
    _vix(tmp_path, rows)
    e = _raises(tmp_path)
    assert e.row == 2 and "close is 0" in str(e)


def test_out_of_order_date(tmp_path):
    rows = _ohlc_rows()
    rows[8], rows[9] = rows[9], rows[8]  # lines 10 and 11 swapped -> line 11 goes backwards
    _vix(tmp_path, rows)
    e = _raises(tmp_path)
    assert e.file == "vix_daily.csv" and e.row == 11
    assert "out of order" in str(e) and "(2020-03-12)" in str(e)


def test_gap_names_missing_date_and_row_after_gap(tmp_path):
    rows = [r for r in _ohlc_rows() if r[0] != "2020-03-16"]
    _vix(tmp_path, rows)
    e = _raises(tmp_path)
    # 2020-03-13 is line 11, 2020-03-17 becomes line 12
    assert str(e) == "vix_daily.csv row 12 (2020-03-17): NYSE trading day 2020-03-16 is missing (gap before this row)"


def test_multi_day_gap_is_one_error(tmp_path):
    rows = [r for r in _ohlc_rows() if r[0] not in ("2020-03-16", "2020-03-17", "2020-03-18")]
    _vix(tmp_path, rows)
    sink = Sink(collect=True)
    validate_daily(tmp_path, S.VIX, sink)
    assert len(sink.errors) == 1
    assert sink.errors[0].row == 12 and "2020-03-16..2020-03-18 (3 days)" in str(sink.errors[0])


def test_known_gap_is_carried_forward_and_noted(tmp_path):
    rows = [r for r in _ohlc_rows() if r[0] != "2020-03-16"]
    _vix(tmp_path, rows)
    spec = dataclasses.replace(S.VIX, known_gaps=(S.KnownGap("2020-03-16", "test reason"),))
    sink = Sink(collect=False)
    v = validate_daily(tmp_path, spec, sink)
    prev_close = v.frame.loc["2020-03-13", "close"]
    assert (v.frame.loc["2020-03-16"] == prev_close).all()  # as-of: every price = last known close
    assert list(v.carried) == [pd.Timestamp("2020-03-16")]
    assert any("2020-03-16" in n and "test reason" in n for n in sink.notes)


def test_missing_file(tmp_path):
    e = _raises(tmp_path)
    assert e.file == "vix_daily.csv" and e.row is None and "file not found" in str(e)


def test_unparseable_date(tmp_path):
    rows = _ohlc_rows()
    rows[4][0] = "2020/03/06"
    _vix(tmp_path, rows)
    e = _raises(tmp_path)
    assert e.row == 6 and "'2020/03/06' is not a YYYY-MM-DD date" in str(e)


def test_non_numeric_value(tmp_path):
    rows = _ohlc_rows()
    rows[2][1] = "abc"
    _vix(tmp_path, rows)
    e = _raises(tmp_path)
    assert e.row == 4 and "open 'abc' is not a number" in str(e)


def test_missing_column_is_reported_on_header_row(tmp_path):
    _write(tmp_path / "vix_daily.csv", "date,open,high,low", [r[:4] for r in _ohlc_rows()])
    e = _raises(tmp_path)
    assert e.row == 1 and "'close'" in str(e)


def test_rows_on_nyse_closed_days_are_dropped_not_errors(tmp_path):
    rows = _ohlc_rows(trading_days("2022-05-23", "2022-06-03"))
    rows.insert(5, ["2022-05-30", "25", "26", "24", "25"])  # Memorial Day: VIX disseminated, NYSE closed
    _vix(tmp_path, rows)
    sink = Sink(collect=False)
    v = validate_daily(tmp_path, S.VIX, sink)
    assert pd.Timestamp("2022-05-30") not in v.frame.index
    assert any("1 rows on NYSE-closed days dropped" in n and "2022-05-30" in n for n in sink.notes)


def test_jump_is_a_warning_with_file_and_row(tmp_path):
    rows = _ohlc_rows()
    rows[7] = [rows[7][0], "60", "70", "50", "65"]  # 2020-03-11, line 9: 23.5 -> 65
    _vix(tmp_path, rows)
    sink = Sink(collect=False)
    validate_daily(tmp_path, S.VIX, sink)
    assert any(w.startswith("vix_daily.csv row 9 (2020-03-11): implausible jump") for w in sink.warnings)


def test_coverage_start_ignores_earlier_rows(tmp_path):
    # VVIX before 2007 is not used: NaNs and gaps there are not errors
    days = trading_days("2006-12-20", "2007-01-12")
    rows = [[d.strftime("%Y-%m-%d"), "" if d.year == 2006 else "80.5"] for d in days if d != pd.Timestamp("2006-12-27")]
    _write(tmp_path / "vvix_daily.csv", "date,vvix", rows)
    v = validate_daily(tmp_path, S.VVIX, Sink(collect=False))
    assert v.frame.index[0] == pd.Timestamp("2007-01-03")


# ---------------------------------------------------------------------------------------------
# FRED as-of rule
# ---------------------------------------------------------------------------------------------
def _dtb3(tmp_path, empty_dates=()):
    days = pd.bdate_range("2023-09-25", "2023-11-30")  # FRED lists business days incl. holidays
    rows = [[d.strftime("%Y-%m-%d"), "" if d.strftime("%Y-%m-%d") in empty_dates else "5.30"] for d in days]
    _write(tmp_path / "rates" / "dtb3_daily.csv", "date,dtb3", rows)
    return days


def test_fred_empty_on_trading_day_is_carried(tmp_path):
    _dtb3(tmp_path, empty_dates=("2023-10-09", "2023-11-23"))  # Columbus Day (NYSE open), Thanksgiving (closed)
    sink = Sink(collect=False)
    v = validate_daily(tmp_path, S.DTB3, sink)
    assert v.frame.loc["2023-10-09", "dtb3"] == 5.30
    assert pd.Timestamp("2023-11-23") not in v.frame.index
    assert list(v.carried) == [pd.Timestamp("2023-10-09")]
    assert any("rates/dtb3_daily.csv: 1 empty values" in n for n in sink.notes)


def test_fred_run_longer_than_five_days_is_an_error(tmp_path):
    empty = [d.strftime("%Y-%m-%d") for d in trading_days("2023-10-16", "2023-10-23")]  # 6 sessions
    days = _dtb3(tmp_path, empty_dates=empty)
    line = 2 + list(days).index(pd.Timestamp("2023-10-16"))
    with pytest.raises(DataError) as ei:
        validate_daily(tmp_path, S.DTB3, Sink(collect=False))
    e = ei.value
    assert e.file == "rates/dtb3_daily.csv" and e.row == line
    assert "6 consecutive NYSE trading days" in str(e)


# ---------------------------------------------------------------------------------------------
# VX futures
# ---------------------------------------------------------------------------------------------
VX_HEADER = ("trade_date,contract_month,expiry,futures_label,open,high,low,close,settle,change,total_volume,efp,"
             "open_interest,source")


def _vx_file(vdir: Path, month: str, expiry: str, days, settle0=20.0, edit=None):
    rows = []
    for i, d in enumerate(days):
        s = settle0 + i * 0.1
        r = [d.strftime("%Y-%m-%d"), month, expiry, "", f"{s:.2f}", f"{s + 0.5:.2f}", f"{s - 0.5:.2f}", f"{s:.2f}",
             f"{s:.2f}", "0", "100", "0", "1000", "test"]
        rows.append(r)
    if edit:
        edit(rows)
    return _write(vdir / f"VX_{month}.csv", VX_HEADER, rows)


def _vx_spec(**kw):
    return dataclasses.replace(S.VX, first_contract="2020-03", last_contract="2020-04", missing_contracts=(),
                               known_bad_values=(), **kw)


def _vx_ok(tmp_path, edit_mar=None):
    vdir = tmp_path / "vx_futures"
    _vx_file(vdir, "2020-03", "2020-03-18", trading_days("2020-02-18", "2020-03-18"), edit=edit_mar)
    _vx_file(vdir, "2020-04", "2020-04-15", trading_days("2020-02-18", "2020-04-15"), settle0=22.0)


def test_vx_clean_long_format(tmp_path):
    _vx_ok(tmp_path)
    v = validate_vx(tmp_path, _vx_spec(), Sink(collect=False))
    f = v.frame
    assert list(f.columns) == ["date", "expiry", "contract_month", "open", "high", "low", "close", "settle",
                               "volume", "open_interest"]
    assert f[["date", "expiry"]].equals(f.sort_values(["date", "expiry"])[["date", "expiry"]])
    assert (f["settle"] > 0).all()


def test_vx_nan_settle_names_file_and_row(tmp_path):
    def edit(rows):
        rows[4][8] = ""  # line 6
    _vx_ok(tmp_path, edit_mar=edit)
    with pytest.raises(DataError) as ei:
        validate_vx(tmp_path, _vx_spec(), Sink(collect=False))
    assert ei.value.file == "vx_futures/VX_2020-03.csv" and ei.value.row == 6
    assert "settle is NaN" in str(ei.value)


def test_vx_expiry_must_match_last_trade_date(tmp_path):
    def edit(rows):
        del rows[-1]  # final-settlement row missing; the Apr contract trades on, so this is not "data end"
    _vx_ok(tmp_path, edit_mar=edit)
    with pytest.raises(DataError) as ei:
        validate_vx(tmp_path, _vx_spec(), Sink(collect=False))
    e = ei.value
    n_lines = len(trading_days("2020-02-18", "2020-03-17")) + 1
    assert e.file == "vx_futures/VX_2020-03.csv" and e.row == n_lines
    assert "expiry column says 2020-03-18" in str(e)


def test_vx_gap_while_open_interest(tmp_path):
    def edit(rows):
        del rows[10]  # line 12 was removed, the next row becomes line 12
    _vx_ok(tmp_path, edit_mar=edit)
    with pytest.raises(DataError) as ei:
        validate_vx(tmp_path, _vx_spec(), Sink(collect=False))
    assert ei.value.file == "vx_futures/VX_2020-03.csv" and ei.value.row == 12
    assert "is missing" in str(ei.value)


def test_vx_missing_contract_file(tmp_path):
    vdir = tmp_path / "vx_futures"
    _vx_file(vdir, "2020-03", "2020-03-18", trading_days("2020-02-18", "2020-03-18"))
    with pytest.raises(DataError) as ei:
        validate_vx(tmp_path, _vx_spec(), Sink(collect=False))
    assert ei.value.file == "vx_futures/VX_2020-04.csv" and ei.value.row is None


def test_vx_malformed_row_is_mapped_to_its_file_and_line(tmp_path):
    def edit(rows):
        rows[2].append("extra")  # line 4 of VX_2020-03.csv has one field too many
    _vx_ok(tmp_path, edit_mar=edit)
    with pytest.raises(DataError) as ei:
        validate_vx(tmp_path, _vx_spec(), Sink(collect=False))
    assert ei.value.file == "vx_futures/VX_2020-03.csv" and ei.value.row == 4


def test_vx_file_with_reordered_columns_is_read_on_its_own(tmp_path):
    _vx_ok(tmp_path)
    p = tmp_path / "vx_futures" / "VX_2020-04.csv"
    df = pd.read_csv(p, dtype=str, keep_default_na=False)
    df[list(reversed(df.columns))].to_csv(p, index=False)
    f = validate_vx(tmp_path, _vx_spec(), Sink(collect=False)).frame
    apr = f[f["contract_month"] == "2020-04"].set_index("date")
    assert apr.loc["2020-02-18", "settle"] == pytest.approx(22.0)
    assert apr.index[-1] == pd.Timestamp("2020-04-15")


def test_vx_rescale_placeholders_and_cfe_only_days(tmp_path):
    vdir = tmp_path / "vx_futures"
    days = list(trading_days("2007-03-19", "2007-04-18"))
    days.insert(5, pd.Timestamp("2007-03-24"))  # a Saturday: not an NYSE session (stand-in for CFE-only days)

    def edit(rows):
        rows[0][4:9] = ["0", "0", "0", "0", "0"]  # placeholder: dropped
        rows[1][4:8] = ["0", "0", "0", "0"]  # no trade but a settle: kept with NaN prices
        rows[1][10] = "0"
    _vx_file(vdir, "2007-04", "2007-04-18", days, settle0=140.0, edit=edit)
    spec = dataclasses.replace(S.VX, first_contract="2007-04", last_contract="2007-04", missing_contracts=(),
                               known_bad_values=())
    sink = Sink(collect=False)
    f = validate_vx(tmp_path, spec, sink).frame
    assert pd.Timestamp("2007-03-19") not in set(f["date"])  # settle 0 dropped
    assert pd.Timestamp("2007-03-24") not in set(f["date"])  # NYSE closed
    r = f.set_index("date")
    assert r.loc["2007-03-20", "settle"] == pytest.approx(14.01)  # 140.1 / 10 (before 2007-03-26)
    assert np.isnan(r.loc["2007-03-20", "close"])
    assert r.loc["2007-03-26", "settle"] == pytest.approx(140.0 + 0.1 * 6)  # not rescaled from 2007-03-26
    assert any("divided by 10" in n for n in sink.notes)
    assert any("CFE sessions when NYSE was closed dropped" in n for n in sink.notes)


# ---------------------------------------------------------------------------------------------
# check_data collects, DataError basics
# ---------------------------------------------------------------------------------------------
def test_check_data_collects_all_errors(tmp_path):
    rows = _ohlc_rows()
    rows[3][4] = ""
    _vix(tmp_path, rows)
    rows = _ohlc_rows()
    rows[5][1] = "-2"
    _write(tmp_path / "vix9d_daily.csv", "date,open,high,low,close", rows)
    rep = check_data(tmp_path)
    assert not rep.ok
    msgs = [str(e) for e in rep.errors]
    assert "vix_daily.csv row 5 (2020-03-05): close is NaN" in msgs
    assert any(m.startswith("vix9d_daily.csv row 7 (2020-03-09): open is -2") for m in msgs)
    assert any(m.startswith("spx_daily.csv: file not found") for m in msgs)
    assert {"series", "file", "first", "last", "rows", "missing_trading_days"} <= set(rep.coverage.columns)


def test_data_error_is_picklable():
    e = DataError("vix_daily.csv", 7, "close is NaN", date="2020-03-16")
    e2 = pickle.loads(pickle.dumps(e))
    assert str(e2) == str(e) == "vix_daily.csv row 7 (2020-03-16): close is NaN"
    assert (e2.file, e2.row) == ("vix_daily.csv", 7)


# ---------------------------------------------------------------------------------------------
# end to end on a copy of the real data
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_copy(tmp_path_factory):
    if not (REAL / "spx_daily.csv").is_file():
        pytest.skip("real data not available")
    dst = tmp_path_factory.mktemp("datacopy")
    for rel in source_files(REAL):
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REAL / rel, dst / rel)
    return dst


def _fresh_copy(real_copy: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "data"
    shutil.copytree(real_copy, dst)
    return dst


@needs_real
def test_load_panel_reports_nan_in_real_file(real_copy, tmp_path):
    d = _fresh_copy(real_copy, tmp_path)
    p = d / "vix_daily.csv"
    lines = p.read_text().splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith("2020-03-16,"))
    lines[i] = "2020-03-16,57.830000,83.560000,57.830000,"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as ei:
        load_panel(d, cache_dir=tmp_path / "cache")
    assert str(ei.value) == f"vix_daily.csv row {i + 1} (2020-03-16): close is NaN"


@needs_real
def test_load_panel_missing_required_file(real_copy, tmp_path):
    d = _fresh_copy(real_copy, tmp_path)
    (d / "rates/dtb3_daily.csv").unlink()
    with pytest.raises(DataError) as ei:
        load_panel(d, cache_dir=tmp_path / "cache")
    assert ei.value.file == "rates/dtb3_daily.csv" and "file not found" in str(ei.value)


@needs_real
def test_missing_optional_files_leave_nan_columns_and_a_note(real_copy, tmp_path):
    d = _fresh_copy(real_copy, tmp_path)
    for rel in ("skew_daily.csv", "vix_etps/vxx_close_adjusted.csv", "events/fomc_dates_2015_2026.csv",
                "spx_daily_2016_2026.csv"):
        (d / rel).unlink()
    panel = load_panel(d, cache_dir=tmp_path / "cache")
    assert panel.daily["skew_close"].isna().all() and panel.daily["vxx_close"].isna().all()
    assert panel.daily["vix_close"].notna().all() and panel.daily["vixy_close"].notna().any()
    assert panel.daily.index[-1] == pd.Timestamp("2026-03-13")       # spx_daily.csv alone (no extension)
    assert panel.events["fomc"].max() < pd.Timestamp("2015-01-01")    # only the pre-2015 list is left
    assert any(n.startswith("skew_daily.csv: optional file not present") for n in panel.notes)
    rep = check_data(d)
    assert rep.ok, rep.errors[:3]


@needs_real
def test_a_close_only_spx_file_is_accepted_with_nan_opens(real_copy, tmp_path):
    d = _fresh_copy(real_copy, tmp_path)
    p = d / "spx_daily.csv"
    rows = [ln.split(",") for ln in p.read_text().splitlines()]
    p.write_text("\n".join([",".join(rows[0])] + [f"{r[0]},,,,{r[4]}," for r in rows[1:]]) + "\n")
    panel = load_panel(d, cache_dir=tmp_path / "cache")
    before = panel.daily.loc[:"2026-03-13"]
    assert before["spx_open"].isna().all() and before["spx_close"].notna().all()
    assert panel.daily.loc["2026-03-16", "spx_open"] > 0                  # the extension file has opens
    assert any("open is empty on every row" in n for n in panel.notes)
    # a column that is only partly empty is still an error
    rows = p.read_text().splitlines()
    rows[-1] = rows[-1].split(",")[0] + ",1.0,,,6600.0,"
    p.write_text("\n".join(rows) + "\n")
    rep = check_data(d)
    assert any(e.file == "spx_daily.csv" and "open is NaN" in str(e) for e in rep.errors)
