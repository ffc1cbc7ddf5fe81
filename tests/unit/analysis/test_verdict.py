"""The verdict: episode drawdowns, reductions, classification, spike detection, scenarios, and a short
end-to-end run that writes every output (tables, JSON, PNGs, HTML)."""
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.episodes import (
    ClaimBands,
    DetectRule,
    Episode,
    classify,
    detect_spikes,
    load_episodes,
    reduction_pct,
    window_change,
    window_drawdown,
)
from analysis.runs import run_metrics
from analysis.scenarios import ladder_variants, standard_scenarios


def series(values, start="2020-01-01"):
    return pd.Series(values, index=pd.bdate_range(start, periods=len(values)), dtype=float)


# ---- per-episode arithmetic ---------------------------------------------------------------------
def test_episode_drawdown_hand_checked():
    eq = series([100, 110, 99, 105, 120, 90, 95, 130])
    d = eq.index
    assert window_drawdown(eq, d[0], d[-1]) == pytest.approx(0.25)        # 120 -> 90
    assert window_drawdown(eq, d[0], d[3]) == pytest.approx(0.10)         # 110 -> 99
    # the peak is measured from the window's first day: starting at 99, the worst fall is 120 -> 90
    assert window_drawdown(eq, d[2], d[6]) == pytest.approx(0.25)
    assert window_drawdown(eq, d[5], d[7]) == 0.0                         # 90, 95, 130: no fall
    assert math.isnan(window_drawdown(eq, "2030-01-01", "2030-02-01"))


def test_window_change_uses_the_day_before_the_window():
    s = series([0, 5, 7, 2, 10])
    d = s.index
    assert window_change(s, d[2], d[3]) == pytest.approx(2 - 5)
    assert window_change(s, d[0], d[4]) == pytest.approx(10 - 0)


@pytest.mark.parametrize("red,cls", [(40.0, "exceeded"), (75.0, "exceeded"), (39.99, "met"), (35.0, "met"),
                                     (34.99, "fell short"), (0.0, "fell short"), (-0.01, "made it worse"),
                                     (-300.0, "made it worse"), (math.nan, "n/a")])
def test_classification_against_the_claim(red, cls):
    assert classify(red, ClaimBands()) == cls


def test_reduction_pct():
    assert reduction_pct(0.10, 0.06) == pytest.approx(40.0)
    assert reduction_pct(0.10, 0.12) == pytest.approx(-20.0)
    assert math.isnan(reduction_pct(0.0, 0.01))


# ---- spike detection ------------------------------------------------------------------------------
def test_detect_spikes_rule():
    n = 400
    idx = pd.bdate_range("2010-01-01", periods=n)
    vix = pd.Series(15.0, index=idx)
    vix.iloc[200:210] = 35.0           # > 25 and > 1.5 x median(15)
    vix.iloc[215:218] = 30.0           # within merge_gap: the same spike
    vix.iloc[330:332] = 24.0           # above 1.5x median but below 25: not a spike
    spx = pd.Series(100.0, index=idx)
    spx.iloc[150] = 110.0              # pre-spike peak within the 60-session lookback
    spx.iloc[200:260] = 90.0
    spx.iloc[260:] = 111.0             # recovery
    eps = detect_spikes(vix, spx, DetectRule())
    assert len(eps) == 1
    e = eps[0]
    assert e.start == idx[150] and e.end == idx[260] and e.source == "auto"
    named = [Episode("known", idx[190], idx[300])]
    assert detect_spikes(vix, spx, DetectRule(), named) == []


def test_episode_file_has_every_named_spike():
    spec, eps = load_episodes("config/episodes.toml")
    names = [e.name for e in eps]
    for n in ("GFC 2008", "May 2010", "Aug 2011", "Aug 2015", "Feb 2018", "Q4 2018", "Mar 2020", "2022 bear market",
              "Mar 2023", "Aug 2024", "Apr 2025"):
        assert n in names
    assert all(e.end > e.start for e in eps)
    assert spec.claim.met == 35 and spec.claim.exceeded == 40


# ---- scenarios ------------------------------------------------------------------------------------
def test_standard_scenarios_cover_every_reading_and_baseline():
    from config.settings import load_config

    cfg = load_config("config/alvh.toml")
    names = [s.name for s in standard_scenarios(cfg.hedge)]
    assert names[0] == "unhedged" and names[1] == "alvh"
    for n in ("alvh_equity", "alvh_contracts", "alvh_calls", "alvh_calls_premium", "static", "vxth", "spx_puts"):
        assert n in names
    assert ladder_variants({"entry_frequency": "weekly", "entry_weekday": 0}, 5) == \
        [{}, {"entry_weekday": 1}, {"entry_weekday": 2}, {"entry_weekday": 3}, {"entry_weekday": 4}]
    assert ladder_variants({"entry_frequency": "monthly"}, 5) == [{}]


def test_run_metrics_carry_and_episode_numbers():
    idx = pd.bdate_range("2020-01-01", periods=300)
    hedge = pd.Series(np.arange(300) * -100.0, index=idx)           # loses $100 a day
    hedge.iloc[150:160] += np.linspace(0, 50_000, 10)               # a spike gain inside the episode
    hedge.iloc[160:] += 50_000
    eq = pd.DataFrame({"equity": 1_000_000 + hedge, "pnl_hedge": hedge, "pnl_condor": 0.0}, index=idx)
    eps = [("spike", str(idx[145].date()), str(idx[170].date()))]
    m = run_metrics(eq, eps, 0.0)
    assert m["hedge_carry_pct_yr"] == pytest.approx(100 * 100 * 252 / 1e6, rel=0.05)   # ~2.5%/yr
    assert m["episodes"]["spike"]["hedge_pnl"] == pytest.approx(-100 * 26 + 50_000, rel=1e-6)


# ---- end to end -----------------------------------------------------------------------------------
def test_short_verdict_writes_every_output(data_dir, panel, tmp_path):
    from analysis import tasks
    from analysis.verdict import run_verdict
    from analysis.verdict_report import console_report, write_report
    from config.settings import load_config

    tasks._PANELS[str(data_dir)] = panel   # reuse the session panel
    cfg = load_config("config/alvh.toml")
    res = run_verdict(cfg, str(data_dir), start="2020-01-02", end="2020-09-30", ladders=2, workers=1,
                      progress=False, scenarios=["alvh", "alvh_equity", "vxth"])
    t = res.episode_table
    mar = t[(t.episode == "Mar 2020")].set_index("scenario")
    assert set(mar.index) == {"unhedged", "alvh", "alvh_equity", "vxth"}
    assert mar.loc["unhedged", "dd_pct"] > 0
    for s in ("alvh", "alvh_equity", "vxth"):
        r = mar.loc[s]
        assert r["reduction_pct"] == pytest.approx(100 * (r.dd_unhedged_pct - r.dd_pct) / r.dd_unhedged_pct)
        assert r["class"] == classify(r["reduction_pct"])
        assert r["range_low"] <= r["reduction_pct"] + 1e-9 <= r["range_high"] + 2e-9
    assert res.meta["ladders"] == 2 and len(res.verdict) >= 1
    text = console_report(res)
    assert "Mar 2020" in text and "claim" in text
    out = write_report(res, tmp_path / "v")
    names = {p.name for group in out.values() for p in group}
    assert {"episodes.csv", "full_period.csv", "verdict.json", "verdict.html", "reductions.png",
            "activations.png", "equity_full.png", "episode_mar_2020.png"} <= names
    doc = json.loads((tmp_path / "v" / "verdict.json").read_text())
    assert doc["verdict"] and doc["meta"]["runs"] == 8
    page = (tmp_path / "v" / "verdict.html").read_text()
    assert page.count("data:image/png;base64,") == len(out["plots"])
    assert "<img" in page and "src=\"plots/" not in page          # self-contained
    for p in out["plots"]:
        assert Path(p).stat().st_size > 10_000
