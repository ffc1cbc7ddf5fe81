"""Cboe delayed-quotes SPX chain snapshots: the six real files and malformed synthetic copies."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adapters.data import DataError, list_chains, load_chain
from adapters.data.chains import QUOTE_COLUMNS

REAL = Path(os.environ.get("ALVH_DATA_DIR", "/work/shared/data"))
needs_real = pytest.mark.skipif(not (REAL / "spx_option_chains").is_dir(), reason="real data not available")

# trade date -> (underlying last, quotes = 2 x strike rows, SPX-root quotes, SPXW-root quotes)
EXPECTED = {
    "2022-02-04": (4500.53, 20514, 7536, 12978),
    "2022-06-10": (3900.86, 19670, 6906, 12764),
    "2023-02-07": (4164.00, 18962, 6236, 12726),
    "2023-08-18": (4369.71, 20342, 6510, 13832),
    "2023-09-14": (4505.10, 19920, 6286, 13634),
    "2024-01-05": (4697.24, 21038, 6556, 14482),
}


@pytest.fixture(scope="module")
def chains():
    if not (REAL / "spx_option_chains").is_dir():
        pytest.skip("real data not available")
    return {c.trade_date.strftime("%Y-%m-%d"): c for c in map(load_chain, list_chains(REAL))}


@needs_real
def test_list_chains():
    files = list_chains(REAL)
    assert [f.name[10:20] for f in files] == sorted(EXPECTED)
    assert list_chains(REAL / "spx_option_chains") == files


@needs_real
@pytest.mark.parametrize("day", sorted(EXPECTED))
def test_snapshot_counts_and_underlying(chains, day):
    c = chains[day]
    last, n, n_spx, n_spxw = EXPECTED[day]
    assert c.trade_date == pd.Timestamp(day)
    assert c.underlying_last == pytest.approx(last, abs=1e-9)
    path = c.path
    data_lines = sum(1 for ln in path.read_text().splitlines()[4:] if ln.strip())
    assert len(c.quotes) == n == 2 * data_lines
    assert c.quotes["root"].value_counts().to_dict() == {"SPX": n_spx, "SPXW": n_spxw}
    assert (c.quotes["right"].value_counts() == n // 2).all()
    assert tuple(c.quotes.columns) == QUOTE_COLUMNS


@needs_real
def test_quote_values_and_roots(chains):
    q = chains["2022-02-04"].quotes
    # first data row of the file: Mon Feb 07 2022, SPXW 2400 strike
    r = q[(q["symbol"] == "SPXW220207C02400000")].iloc[0]
    assert (r["expiry"], r["root"], r["strike"], r["right"]) == (pd.Timestamp("2022-02-07"), "SPXW", 2400.0, "C")
    assert (r["bid"], r["ask"], r["mid"]) == (2087.8, 2102.6, pytest.approx(2095.2))
    p = q[(q["symbol"] == "SPXW220207P02400000")].iloc[0]
    assert p["right"] == "P" and p["open_interest"] == 106 and p["ask"] == 0.05 and p["bid"] == 0
    # SPX (AM-settled monthlies) expire on the third Friday, or the Thursday before a Good Friday holiday
    spx = q.loc[q["root"] == "SPX", "expiry"].drop_duplicates()
    third_friday = spx.apply(lambda d: pd.date_range(d.replace(day=1), periods=3, freq="W-FRI")[-1])
    assert ((spx == third_friday) | (spx == third_friday - pd.Timedelta(days=1))).all()
    assert pd.Timestamp("2022-04-14") in set(spx)  # Good Friday 2022-04-15: Thursday expiry
    assert q["expiry"].is_monotonic_increasing
    assert (q.loc[q["mid"].notna(), "mid"] >= q.loc[q["mid"].notna(), "bid"]).all()
    assert np.isnan(q.loc[q["ask"] == 0, "mid"]).all()


@needs_real
def test_underlying_matches_panel_spx_close(chains):
    spx = pd.read_csv(REAL / "spx_daily.csv", usecols=["date", "close"], index_col="date", parse_dates=True)["close"]
    for day, c in chains.items():
        assert c.underlying_last == pytest.approx(spx.loc[day], abs=0.005)


@needs_real
def test_weekend_snapshot_is_noted(chains):
    c = chains["2023-08-18"]
    assert c.snapshot_time == pd.Timestamp("2023-08-20 22:42", tz="America/New_York")
    assert any("GTH" in n for n in c.notes)


# ---------------------------------------------------------------------------------------------
# malformed files
# ---------------------------------------------------------------------------------------------
HEAD = ("\nStandard & Poors 500 Index,Last: 4500.5298,Change:  23.0898\n"
        '"Date: February 5 2022, 8:09 PM EST",Bid: 4420.5,Ask: 4615.4302,Size: 1*1,Volume: 0\n'
        "Expiration Date,Calls,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest,Strike,Puts,Last Sale,Net,"
        "Bid,Ask,Volume,IV,Delta,Gamma,Open Interest\n")
ROW = ("Mon Feb 07 2022,SPXW220207C0{k}000,0,0,{b},{a},0,0.2,0.5,0,0,{k}.00,SPXW220207P0{k}000,0,0,1,1.2,0,0.2,"
       "-0.5,0,5\n")


def test_synthetic_chain_parses(tmp_path):
    p = tmp_path / "quotes.csv"
    p.write_text(HEAD + ROW.format(k=4500, b=10, a=11) + ROW.format(k=4505, b=8, a=9))
    c = load_chain(p)
    assert c.trade_date == pd.Timestamp("2022-02-04")  # Saturday snapshot -> Friday session
    assert len(c.quotes) == 4 and set(c.quotes["root"]) == {"SPXW"}


def test_bad_occ_symbol_names_file_and_row(tmp_path):
    p = tmp_path / "quotes.csv"
    p.write_text(HEAD + ROW.format(k=4500, b=10, a=11) + ROW.format(k=4505, b=8, a=9).replace("SPXW220207C", "XX"))
    with pytest.raises(DataError) as ei:
        load_chain(p)
    assert ei.value.file == "quotes.csv" and ei.value.row == 6 and "OCC" in str(ei.value)


def test_symbol_strike_mismatch(tmp_path):
    p = tmp_path / "quotes.csv"
    p.write_text(HEAD + ROW.format(k=4500, b=10, a=11).replace("4500.00", "4400.00"))
    with pytest.raises(DataError) as ei:
        load_chain(p)
    assert ei.value.row == 5 and "strike" in str(ei.value)


def test_negative_bid(tmp_path):
    p = tmp_path / "quotes.csv"
    p.write_text(HEAD + ROW.format(k=4500, b=-1, a=11))
    with pytest.raises(DataError) as ei:
        load_chain(p)
    assert ei.value.row == 5 and "bid" in str(ei.value)


def test_not_a_chain_file(tmp_path):
    p = tmp_path / "quotes.csv"
    p.write_text("date,close\n2022-02-04,4500\n")
    with pytest.raises(DataError) as ei:
        load_chain(p)
    assert ei.value.file == "quotes.csv" and "Expiration Date" in str(ei.value)


def test_file_name_date_must_match_snapshot(tmp_path):
    p = tmp_path / "spx_chain_2022-02-03_cboe_delayed_quotes.csv"
    p.write_text(HEAD + ROW.format(k=4500, b=10, a=11))
    with pytest.raises(DataError) as ei:
        load_chain(p)
    assert "2022-02-03" in str(ei.value) and ei.value.row == 3
