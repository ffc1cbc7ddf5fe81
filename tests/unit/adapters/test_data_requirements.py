"""Each config asks only for the series its strategies read; the data layer names the files and checks the window."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adapters.data.errors import DataError
from adapters.data.panel import VX_COLUMNS, MarketPanel
from adapters.data.requirements import (
    check_files,
    coverage_problems,
    last_covered_session,
    missing_files,
    source_of,
)
from config.settings import load_config
from config.wiring import series_needs
from engine.calendar import trading_days
from strategies.hedges import parse_hedge
from strategies.needs import SeriesNeed


def names(needs) -> list[str]:
    return [n.series for n in needs]


def test_the_condor_book_reads_spx_vix_and_the_rate_only():
    assert names(series_needs(load_config("config/condor.toml"))) == ["spx", "vix", "rate"]


def test_the_default_hedge_adds_the_vx_futures_only():
    assert names(series_needs(load_config("config/alvh.toml"))) == ["spx", "vix", "rate", "vx"]


def test_signals_gates_and_etp_layers_add_their_series():
    h = parse_hedge({"signal": "term_ratio", "gates": {"use": ["rsi", "inversion"]},
                     "layers": [{"name": "a", "weight": 1, "threshold": 1.0, "instrument": {"type": "etp", "symbol": "VIXM"}},
                                {"name": "b", "weight": 1, "threshold": 1.1, "instrument": {"type": "etp", "symbol": "VXX",
                                                                                             "fallback": "none"}}]})
    needs = {n.series: n for n in h.needs()}
    assert set(needs) == {"vix", "vix3m", "spx", "etp:VIXM", "etp:VXX", "vx"}
    assert not needs["etp:VIXM"].whole_window and needs["vix3m"].whole_window
    assert "falls back" in needs["vx"].why      # only the VIXM layer's fallback blend reads VX
    assert parse_hedge({"kind": "vxth"}).needs()[0].series == "vx"
    assert {n.series for n in parse_hedge({"kind": "spx_puts"}).needs()} == {"spx", "vix", "rate"}
    assert next(n.series for n in parse_hedge({"signal": "series:cor1m"}).needs()) == "cor1m"


def test_series_map_to_their_files():
    assert source_of("rate").path == "rates/dtb3_daily.csv" and source_of("rate").column == "rate_tbill"
    assert source_of("etp:VIXY").path == "vix_etps/vixy_close_adjusted.csv"
    assert source_of("vix3m").extensions == ("vxv_daily_yahoo_2006_2018.csv",)
    assert source_of("cor1m").column == "cor1m_close"
    assert source_of("vx").column is None
    assert source_of("nonsense") is None


def test_every_missing_file_and_unknown_series_in_one_message(tmp_path):
    (tmp_path / "spx_daily.csv").write_text("")
    needs = [SeriesNeed("spx", "a"), SeriesNeed("vix", "b"), SeriesNeed("rate", "c"), SeriesNeed("vx", "d"),
             SeriesNeed("foo", "the hedge signal 'series:foo'")]
    problems = missing_files(tmp_path, needs)
    assert len(problems) == 4 and problems[0] == "vix_daily.csv (for b)"
    assert "series 'foo'" in problems[-1] and "known:" in problems[-1]
    with pytest.raises(DataError, match="4 missing: vix_daily.csv .*rates/dtb3_daily.csv.*vx_futures.*'foo'"):
        check_files(tmp_path, needs, "x.toml")


def panel_with(**last: str) -> MarketPanel:
    idx = pd.DatetimeIndex(trading_days("2020-01-02", "2020-03-31"), name="date")
    daily = pd.DataFrame({"spx_close": 1.0, "vix_close": 1.0, "rate_tbill": 0.01, "vixy_close": np.nan}, index=idx)
    for col, day in last.items():
        daily.loc[daily.index > day, col] = np.nan
    vx = pd.DataFrame({c: np.nan for c in VX_COLUMNS}, index=range(len(idx)))
    vx["date"] = idx
    return MarketPanel(daily=daily, vx=vx, events={}, notes=(), fingerprint="t")


def test_coverage_names_each_short_series_and_reads_the_rate_a_session_late():
    needs = [SeriesNeed("spx", "a"), SeriesNeed("vix", "b"), SeriesNeed("rate", "c"),
             SeriesNeed("etp:VIXY", "d", whole_window=False)]
    p = panel_with(vix_close="2020-02-28", rate_tbill="2020-03-30")
    problems = coverage_problems(p, needs, "2020-01-02", "2020-03-31")
    assert problems == ["vix (vix_daily.csv, for b) ends 2020-02-28 but the run needs it to 2020-03-31"]
    # the replay prices 2020-03-31 with the 2020-03-30 rate: a rate ending 2020-03-27 is one session short
    p = panel_with(rate_tbill="2020-03-27")
    assert "ends 2020-03-27 but the run needs it to 2020-03-30" in coverage_problems(p, needs, "2020-01-02", "2020-03-31")[0]
    assert coverage_problems(p, needs, "2020-01-02", "2020-03-30") == []
    assert last_covered_session(p, needs) == pd.Timestamp("2020-03-30")


def test_a_window_without_sessions():
    assert "no NYSE session" in coverage_problems(panel_with(), [SeriesNeed("spx", "a")], "2031-01-01", "2031-02-01")[0]
