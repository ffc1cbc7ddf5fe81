"""Every option-quote file of SOURCES.md section 10 read into ChainSnapshots: row counts, snapshots, underlying and
one known quote per file (values copied from the raw file by hand), documented quirks, and malformed copies."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adapters.data import DataError
from adapters.data.chain_layouts import detect_layout, list_option_files, load_option_file
from adapters.data.validation import Sink, check_option_files

REAL = Path(os.environ.get("ALVH_DATA_DIR", "/work/shared/data"))
needs_real = pytest.mark.skipif(not (REAL / "spx_option_chains" / "more").is_dir(), reason="real data not available")

M = "spx_option_chains/more/"
# file -> (layout, underlying, snapshots, quotes over all snapshots, first trade date, underlying last of the first)
FILES = {
    M + "spx_chain_2010-09-17_ifrogs.csv": ("R", "SPX", 1, 481, "2010-09-17", 1125.59),
    M + "spx_chain_2018-10-15_cboe_quotedata_2018layout.csv": ("C", "SPX", 1, 2 * 7171, "2018-10-15", 2750.79),
    M + "spx_chain_2018-10-16_cboe_quotedata_2018layout.csv": ("C", "SPX", 1, 2 * 7120, "2018-10-16", 2809.92),
    M + "spx_chain_2018-10-17_cboe_quotedata_2018layout.csv": ("C", "SPX", 1, 2 * 7120, "2018-10-17", 2809.21),
    M + "spx_chain_2018-10-18_cboe_quotedata_2018layout.csv": ("C", "SPX", 1, 2 * 6951, "2018-10-18", 2768.78),
    M + "spx_chain_2018-10-19_cboe_quotedata_2018layout.csv": ("C", "SPX", 1, 2 * 7054, "2018-10-19", 2767.78),
    M + "spx_chain_2019-05-17_cboe_quotedata.csv": ("A", "SPX", 1, 2 * 6313, "2019-05-17", 2859.53),
    M + "spx_chain_2020-09-04_cboe_quotedata.dat": ("A", "SPX", 1, 2 * 9369, "2020-09-04", 3426.96),
    M + "spx_chain_2022-01-07_cboe_delayed_quotes.csv": ("B", "SPX", 1, 2 * 2757, "2022-01-07", 4677.03),
    M + "spx_eod_2004-01-02_cboe_datashop.csv": ("D", "SPX", 1, 534, "2004-01-02", 1108.49),
    M + "spx_ivols_2023-02-15_gatheral.csv": ("G", "SPX", 1, 7423, "2023-02-15", 4146.741883271338),
    # SOURCES.md says 14,437 rows; the file holds 14,438 data rows (the csv module agrees), 40 sessions
    M + "spxw_eod_2018-01-02_2018-02-28_daily.csv": ("V", "SPX", 40, 14438, "2018-01-02", 2695.79),
    "spy_option_chains/spy_chain_2020-06-22_cboe_quotedata.dat": ("A", "SPY", 1, 2 * 4759, "2020-06-22", 310.68),
    "spy_option_chains/spy_chain_2020-06-26_cboe_quotedata.dat": ("A", "SPY", 1, 2 * 4660, "2020-06-26", 300.01),
    "spy_option_chains/spy_chain_2020-07-02_cboe_quotedata.dat": ("A", "SPY", 1, 2 * 4676, "2020-07-02", 312.18),
    "vix_option_chains/vix_chain_2019-08-29_0928ET_cboe_quotedata.dat": ("A", "VIX", 1, 2 * 380, "2019-08-29", 18.34),
    "vix_option_chains/vix_ivols_2023-02-15_gatheral.csv": ("G", "VIX", 1, 637, "2023-02-15", 20.1951741855249),
    "vix_option_chains/vix_options_intervals_2021-04-26_cboe_datashop_sample.csv": ("E", "VIX", 14, 15064, "2021-04-26", 17.84),
}
# file -> (trade date, symbol, bid, ask) of one quote, read from the raw file
KNOWN = {
    M + "spx_chain_2010-09-17_ifrogs.csv": ("2010-09-17", "SPX101015P01100000", 14.5, 16.0),
    M + "spx_chain_2018-10-15_cboe_quotedata_2018layout.csv": ("2018-10-15", "SPXW181015P01700000", 0.0, 0.05),
    M + "spx_chain_2018-10-16_cboe_quotedata_2018layout.csv": ("2018-10-16", "SPX181116P02750000", 26.10, 26.80),
    M + "spx_chain_2018-10-17_cboe_quotedata_2018layout.csv": ("2018-10-17", "SPXW181017C01800000", 998.20, 1021.30),
    M + "spx_chain_2018-10-18_cboe_quotedata_2018layout.csv": ("2018-10-18", "SPX181019C00850000", 1915.90, 1928.00),
    M + "spx_chain_2018-10-19_cboe_quotedata_2018layout.csv": ("2018-10-19", "SPXW181019C00800000", 1958.30, 1978.40),
    M + "spx_chain_2019-05-17_cboe_quotedata.csv": ("2019-05-17", "SPXW190603P01700000", 0.0, 0.1),
    M + "spx_chain_2020-09-04_cboe_quotedata.dat": ("2020-09-04", "SPX201218P03400000", 195.8, 198.1),
    M + "spx_chain_2022-01-07_cboe_delayed_quotes.csv": ("2022-01-07", "SPXW220121P04600000", 28.9, 29.3),
    M + "spx_eod_2004-01-02_cboe_datashop.csv": ("2004-01-02", "SPT040116P01100000", 9.60, 10.20),
    M + "spxw_eod_2018-01-02_2018-02-28_daily.csv": ("2018-02-05", "SPXW180228P02500000", 45.1, 55.0),
    "spy_option_chains/spy_chain_2020-06-22_cboe_quotedata.dat": ("2020-06-22", "SPY200717P00300000", 5.1, 5.13),
    "spy_option_chains/spy_chain_2020-06-26_cboe_quotedata.dat": ("2020-06-26", "SPY200717P00300000", 8.2, 8.25),
    "spy_option_chains/spy_chain_2020-07-02_cboe_quotedata.dat": ("2020-07-02", "SPY200717P00300000", 2.11, 2.14),
    "vix_option_chains/vix_chain_2019-08-29_0928ET_cboe_quotedata.dat": ("2019-08-29", "VIX190918C00020000", 1.45, 1.65),
    "vix_option_chains/vix_options_intervals_2021-04-26_cboe_datashop_sample.csv": ("2021-04-26", "VIX210519C00025000", 1.05, 1.10),
}


@pytest.fixture(scope="module")
def loaded():
    if not (REAL / "spx_option_chains" / "more").is_dir():
        pytest.skip("real data not available")
    return {rel: load_option_file(REAL / rel) for rel in FILES}


@needs_real
def test_every_option_file_is_listed():
    listed = {str(p.relative_to(REAL)) for p in list_option_files(REAL)}
    assert set(FILES) <= listed
    assert len(listed - set(FILES)) == 6  # the six section-8 Cboe snapshots (tests/unit/adapters/test_data_chains.py)


@needs_real
@pytest.mark.parametrize("rel", sorted(FILES))
def test_counts_layout_and_underlying(loaded, rel):
    layout, und, n_snaps, n_quotes, first, last = FILES[rel]
    snaps = loaded[rel]
    assert detect_layout(REAL / rel) == layout
    assert len(snaps) == n_snaps
    assert sum(len(s.quotes) for s in snaps) == n_quotes
    assert {s.underlying for s in snaps} == {und} and {s.layout for s in snaps} == {layout}
    assert snaps[0].trade_date == pd.Timestamp(first)
    assert snaps[0].underlying_last == pytest.approx(last, abs=1e-9)
    for s in snaps:
        assert s.quotes["expiry"].is_monotonic_increasing
        assert s.exercise == ("American" if und == "SPY" else "European")


@needs_real
@pytest.mark.parametrize("rel", sorted(KNOWN))
def test_known_quote(loaded, rel):
    day, sym, bid, ask = KNOWN[rel]
    snap = [s for s in loaded[rel] if s.trade_date == pd.Timestamp(day)][-1]  # intraday files: the last stamp
    row = snap.quotes[snap.quotes["symbol"] == sym]
    assert len(row) == 1, sym
    r = row.iloc[0]
    assert (r["bid"], r["ask"]) == (pytest.approx(bid), pytest.approx(ask))
    assert r["mid"] == pytest.approx((bid + ask) / 2) if ask > 0 and ask >= bid else np.isnan(r["mid"])


@needs_real
def test_vol_tables_known_rows(loaded):
    spx = loaded[M + "spx_ivols_2023-02-15_gatheral.csv"][0].quotes
    r = spx[(spx["expiry"] == pd.Timestamp("2023-03-17")) & (spx["strike"] == 4000.0)].iloc[0]
    assert (r["iv_bid"], r["iv_ask"], r["forward"]) == (0.19205434279487194, 0.19273942062485006, 4155.670542083623)
    assert r["mid"] == 188.19888999152045 and r["root"] == "SPXW"
    vix = loaded["vix_option_chains/vix_ivols_2023-02-15_gatheral.csv"][0].quotes
    r = vix[(vix["expiry"] == pd.Timestamp("2023-03-22")) & (vix["strike"] == 25.0)].iloc[0]
    assert (r["iv_bid"], r["iv_ask"], r["forward"], r["root"]) == (0.9521066375777834, 0.9616837013339841,
                                                                    20.126164874554703, "VIX")
    # the one weekly labelled on a Tuesday is kept as labelled
    assert set(vix.loc[vix["root"] == "VIXW", "expiry"].dt.day_of_week) >= {1}


@needs_real
def test_documented_quirks(loaded):
    # 2019-05-17: 1,103 rows had Excel serial expiries (day/month swapped); expiry comes from the OCC symbol
    s = loaded[M + "spx_chain_2019-05-17_cboe_quotedata.csv"][0]
    assert any("1103 rows had the expiry stored as an Excel serial" in n for n in s.notes)
    assert pd.Timestamp("2019-06-03") in set(s.quotes["expiry"]) and s.quotes["expiry"].min() >= pd.Timestamp("2019-05-20")
    assert s.quotes["root"].value_counts().to_dict() == {"SPXW": 2 * 4705, "SPX": 2 * 1608}
    # 2018-10-19: the AM-settled October SPX lines are 0/0 after that morning's settlement
    s = loaded[M + "spx_chain_2018-10-19_cboe_quotedata_2018layout.csv"][0]
    settled = s.quotes[(s.quotes["root"] == "SPX") & (s.quotes["expiry"] == pd.Timestamp("2018-10-19"))]
    assert len(settled) == 2 * 284 and (settled["ask"] == 0).all() and settled["mid"].isna().all()
    # 2004 DataShop: 14 legacy roots read as SPX; Saturday expirations -> the Friday of the opening print
    s = loaded[M + "spx_eod_2004-01-02_cboe_datashop.csv"][0]
    assert set(s.quotes["root"]) == {"SPX"} and (s.quotes["expiry"].dt.day_of_week == 4).all()
    # vendor Jan-Feb 2018 file: one expiry per day, the month-end SPXW
    v = loaded[M + "spxw_eod_2018-01-02_2018-02-28_daily.csv"]
    assert {str(s.trade_date.date()): s.quotes["expiry"].nunique() for s in v} == {str(s.trade_date.date()): 1 for s in v}
    assert {s.quotes["expiry"].iloc[0] for s in v} == {pd.Timestamp("2018-01-31"), pd.Timestamp("2018-02-28")}
    assert [len(s.quotes) for s in v if s.trade_date == pd.Timestamp("2018-02-05")] == [350]
    # DataShop intervals: the forward is the file's implied_underlying_price, 'last' is spot VIX
    e = loaded["vix_option_chains/vix_options_intervals_2021-04-26_cboe_datashop_sample.csv"]
    assert e[-1].snapshot_time == pd.Timestamp("2021-04-26 16:15", tz="America/New_York")
    assert e[-1].underlying_last == pytest.approx(17.64)
    may = e[-1].quotes[e[-1].quotes["expiry"] == pd.Timestamp("2021-05-19")]["forward"]
    assert may.between(20.19, 20.26).all()
    # SPY options are American: the snapshot says so
    assert loaded["spy_option_chains/spy_chain_2020-06-22_cboe_quotedata.dat"][0].exercise == "American"


@needs_real
def test_check_option_files_covers_every_file():
    sink = Sink(collect=True)
    cov = check_option_files(REAL, sink)
    assert not sink.errors
    assert set(FILES) <= set(cov["file"])
    assert cov.set_index("file").loc[M + "spxw_eod_2018-01-02_2018-02-28_daily.csv", "rows"] == 14438


# ---- malformed copies: one sentence naming file and line --------------------------------------------------------
def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


_A_HEAD = ("^SPX (Standard & Poors 500 Index),3426.96,-28.1\nSep 04 2020 @ 20:49 ET,Bid,0,Ask,0,Size,1x1,Vol,\n"
           "Expiration Date,Calls,Last Sale,Net,Bid,Ask,Vol,IV,Delta,Gamma,Open Int,Strike,Puts,Last Sale,Net,Bid,Ask,"
           "Vol,IV,Delta,Gamma,Open Int\n")


def test_layout_a_parses_and_checks_symbol(tmp_path):
    row = "12/18/2020,SPX201218C03400000,205,-33.5,203.7,205.8,768,0.28,0.53,0.0008,33442,3400.000,SPX201218P03400000,210,6.9,195.8,198.1,1183,0.27,-0.46,0.0008,7278\n"
    snap = load_option_file(_write(tmp_path, "spx_chain_2020-09-04_x.dat", _A_HEAD + row))[0]
    assert len(snap.quotes) == 2 and snap.trade_date == pd.Timestamp("2020-09-04")
    bad = row.replace("SPX201218P03400000", "SPX201218P03500000")
    with pytest.raises(DataError) as ei:
        load_option_file(_write(tmp_path, "spx_chain_2020-09-04_y.dat", _A_HEAD + row + bad))
    assert ei.value.file == "spx_chain_2020-09-04_y.dat" and ei.value.row == 5 and "strike" in ei.value.message


def test_layout_a_excel_serial_must_be_the_documented_swap(tmp_path):
    ok = "43530,SPXW190603C01700000,0,0,1153.7,1171.7,0,1.1,0.99,0,0,1700,SPXW190603P01700000,0,0,0,0.1,0,0.75,-0.0004,0,15\n"
    head = _A_HEAD.replace("3426.96", "2859.53").replace("Sep 04 2020 @ 20:49", "May 18 2019 @ 17:06")
    snap = load_option_file(_write(tmp_path, "spx_chain_2019-05-17_a.csv", head + ok))[0]
    assert set(snap.quotes["expiry"]) == {pd.Timestamp("2019-06-03")}
    wrong = ok.replace("43530", "43531")
    with pytest.raises(DataError) as ei:
        load_option_file(_write(tmp_path, "spx_chain_2019-05-17_b.csv", head + wrong))
    assert ei.value.row == 4 and "Excel serial" in ei.value.message


def test_layout_c_description_and_symbol_must_agree(tmp_path):
    head = ("SPX (S&P 500 INDEX),2809.92,+59.13\nOct 16 2018 @ 20:49 ET\n"
            "Calls,Last Sale,Net,Bid,Ask,Vol,Open Int,Puts,Last Sale,Net,Bid,Ask,Vol,Open Int\n")
    row = "2018 Nov 16 2750.00 (SPX1816K2750),90.20,+26.30,92.20,94.20,141,969,2018 Nov 16 2750.00 (SPX1816W2750),26.70,-30.05, ,26.80,7614,45969\n"
    snap = load_option_file(_write(tmp_path, "spx_chain_2018-10-16_a.csv", head + row))[0]
    put = snap.quotes[snap.quotes["right"] == "P"].iloc[0]
    assert put["bid"] == 0.0 and put["ask"] == 26.80 and put["symbol"] == "SPX181116P02750000"
    with pytest.raises(DataError) as ei:
        load_option_file(_write(tmp_path, "spx_chain_2018-10-16_b.csv", head + row.replace("(SPX1816W2750)", "(SPX1816K2750)")))
    assert ei.value.row == 4 and "right" in ei.value.message


def test_layout_v_symbol_must_match_row(tmp_path):
    head = ("\ufeffunderlying,underlying_last, exchange,optionroot,optionext,type,expiration,quotedate,strike,last,bid,ask,"
            "volume,openinterest,impliedvol,delta,gamma,theta,vega,optionalias\n")
    row = "SPXW,2648.98,W,SPXW180228P02500000,,put,02/28/2018,02/05/2018,2500,42.5,45.1,55,12046,12350,0.43,-0.27,0.0012,-754.4,217.6,SPXW180228P02500000\n"
    assert len(load_option_file(_write(tmp_path, "v_ok.csv", head + row))[0].quotes) == 1
    with pytest.raises(DataError) as ei:
        load_option_file(_write(tmp_path, "v_bad.csv", head + row + row.replace(",put,", ",call,")))
    assert ei.value.file == "v_bad.csv" and ei.value.row == 3 and "right" in ei.value.message


def test_unknown_layout(tmp_path):
    with pytest.raises(DataError) as ei:
        load_option_file(_write(tmp_path, "junk.csv", "a,b,c\n1,2,3\n"))
    assert "not an option-quote file" in str(ei.value)
