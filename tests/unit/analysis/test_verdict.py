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
    classify_variants,
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


@pytest.mark.parametrize("variants,cls", [
    ([36, 50, 40], "held on every variant"), ([35.0], "held on every variant"),
    ([-28, 43, 10], "held on some variants"), ([34.9, 35.0], "held on some variants"),
    ([20, 30, -5], "held on no variant"), ([0.0, 34.99], "held on no variant"),
    ([-1, -135], "worse on every variant"),
    ([math.nan, 40], "held on every variant"), ([math.nan], "n/a"), ([], "n/a"),
])
def test_classification_over_the_variants(variants, cls):
    """2022 with a range of -28%..+43% is 'held on some variants', never 'exceeded'."""
    assert classify_variants(variants, ClaimBands()) == cls


def fake_run(scenario, ladder, dd_full, episodes, equity=None, surface=0, **totals):
    m = {"cagr": 0.01, "sharpe": 0.1, "calmar": 0.1, "max_drawdown": dd_full, "dd_peak": "2008-01-02",
         "dd_trough": "2009-03-09", "final_equity": 1e6, "hedge_pnl": 0.0, "condor_pnl": 0.0,
         "hedge_net_pct_yr": -1.0, "hedge_carry_pct_yr": 1.5, "hedge_fills": 1, "hedge_commissions": 1.0,
         "rejected_orders": 0, "wall_seconds": 1.0, "interest": 0.0, "initial_equity": 1e6, "years": 10.0,
         "episodes": {name: {"dd": dd, "hedge_pnl": hp, "condor_pnl": cp, "start_equity": 1e6}
                      for name, (dd, hp, cp) in episodes.items()}}
    m.update(totals)
    out = {"meta": {"scenario": scenario, "ladder": ladder, "surface": surface}, "metrics": m}
    if equity is not None:
        out["equity"] = equity
    return out


def test_books_that_stopped_trading_or_lost_half_are_flagged_not_scored():
    from analysis.scenarios import Scenario
    from analysis.verdict import analyze

    eps = [Episode("spike", pd.Timestamp("2020-02-19"), pd.Timestamp("2020-08-18")),
           Episode("later", pd.Timestamp("2022-01-03"), pd.Timestamp("2022-06-30"))]
    scs = [Scenario("unhedged", "u", None, "unhedged"), Scenario("alvh", "a", {}, "alvh"),
           Scenario("wiped", "w", {}, "alvh"), Scenario("idle", "i", {}, "alvh")]
    base = {"spike": (0.10, 0.0, -5e4), "later": (0.05, 0.0, -1e4)}
    idx = pd.bdate_range("2019-01-01", "2022-12-30")
    flat = pd.DataFrame({"equity": 1e6, "pnl_condor": np.r_[np.arange(300.0), np.full(len(idx) - 300, 299.0)],
                         "pnl_hedge": 0.0}, index=idx)
    results = []
    for lad in (0, 1):
        results.append(fake_run("unhedged", lad, 0.12, base))
        results.append(fake_run("alvh", lad, 0.11, {"spike": (0.06 if lad else 0.05, 1e4, -4e4),
                                                     "later": (0.0, 0.0, 0.0)}))
        results.append(fake_run("wiped", lad, 0.8 if lad else 0.3, {"spike": (0.02, 1e4, -1e4), "later": (0.01, 1, 1)}))
        results.append(fake_run("idle", lad, 0.1, {"spike": (0.05, 1, 1), "later": (0.05, 1, 1)},
                                equity=flat if lad == 0 else None))
    res = analyze(results, scs, eps, ClaimBands(), "alvh")
    t = res.episode_table.set_index(["scenario", "episode"])
    assert t.loc[("alvh", "spike"), "class"] == "held on every variant"      # 50% and 40%
    assert t.loc[("alvh", "spike"), "variants_held"] == 2
    later = t.loc[("alvh", "later")]          # no P&L at all in the window: not a 100% reduction
    assert later["class"] == "not scored" and "not trading" in later["flag"]
    wiped = t.loc[("wiped", "spike")]         # one phase lost 80%: every episode of the scenario is unscored
    assert wiped["class"] == "not scored" and "lost more than half its equity on 1 of 2" in wiped["flag"]
    assert "stopped trading" in t.loc[("idle", "spike"), "flag"]
    tally = res.tally.set_index("scenario")
    assert tally.loc["alvh", ["held_every", "not_scored", "episodes"]].tolist() == [1, 1, 2]
    assert tally.loc["wiped", "not_scored"] == 2 and tally.loc["wiped", "flag"]
    assert tally.loc["alvh", "hedge_net_pct_yr"] == pytest.approx(-1.0)
    assert tally.loc["alvh", "cost_pct_yr"] == pytest.approx(0.0)      # same final equity as unhedged


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
                      progress=False, scenarios=["alvh", "alvh_equity", "vxth"], surfaces="default")
    t = res.episode_table
    mar = t[(t.episode == "Mar 2020")].set_index("scenario")
    assert set(mar.index) == {"unhedged", "alvh", "alvh_equity", "vxth"}
    assert mar.loc["unhedged", "dd_pct"] > 0
    for s in ("alvh", "alvh_equity", "vxth"):
        r = mar.loc[s]
        assert r["reduction_pct"] == pytest.approx(100 * (r.dd_unhedged_pct - r.dd_pct) / r.dd_unhedged_pct)
        assert r["class_main"] == classify(r["reduction_pct"])
        assert r["class"] == classify_variants([r["range_low"], r["range_high"]])
        assert r["range_low"] <= r["reduction_pct"] + 1e-9 <= r["range_high"] + 2e-9
    assert res.meta["ladders"] == 2 and len(res.verdict) >= 1
    text = console_report(res)
    assert "Mar 2020" in text and "claim" in text
    first_screen = text.splitlines()[:20]        # the answer, the tally with the cost, the headline chart
    assert first_screen[2].startswith("Answer: the claimed 35-40% cut")
    assert any(ln.startswith("alvh [default]") for ln in first_screen)
    assert any("cost/yr %" in ln for ln in first_screen) and "Headline chart: plots/reductions.png" in first_screen
    out = write_report(res, tmp_path / "v")
    names = {p.name for group in out.values() for p in group}
    assert {"episodes.csv", "full_period.csv", "verdict.json", "verdict.html", "reductions.png",
            "activations.png", "equity_full.png", "episode_mar_2020.png"} <= names
    doc = json.loads((tmp_path / "v" / "verdict.json").read_text())
    assert doc["verdict"] and doc["meta"]["runs"] == 8
    assert list(doc)[:3] == ["answer", "tally", "headline_chart"]            # the answer first
    assert {r["scenario"] for r in doc["tally"]} == {"alvh", "alvh_equity", "vxth"}
    page = (tmp_path / "v" / "verdict.html").read_text()
    assert page.count("data:image/png;base64,") == len(out["plots"])
    # first screen: the answer, then the tally table (with the cost), then the headline chart
    assert page.index("Answer:") < page.index("class='tally'") < page.index("cost/yr %") < page.index("headline:")
    assert page.index("headline:") < page.index("<h2>")
    assert (tmp_path / "v" / "verdict.html").stat().st_size <= 2_000_000
    assert "<img" in page and "src=\"plots/" not in page          # self-contained
    for p in out["plots"]:
        assert Path(p).stat().st_size > 10_000
    # with 2 workers the episode charts are drawn by forked processes: the same files, byte for byte
    from dataclasses import replace

    from analysis.verdict_plots import write_plots

    res.episodes = [res.episodes[0], replace(res.episodes[0], name="Mar 2020 again")]   # two charts to share out
    serial = {p.name: p.read_bytes() for p in write_plots(res, tmp_path / "serial")}
    res.meta["workers"] = 2
    forked = {p.name: p.read_bytes() for p in write_plots(res, tmp_path / "forked")}
    assert "episode_mar_2020_again.png" in forked and forked == serial
