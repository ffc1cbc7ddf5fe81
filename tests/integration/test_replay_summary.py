"""The replay summary says where the money came from: starting equity -> final equity as the condor book's and the
hedge's P&L (each after its commissions and fees) plus interest on cash, and the longest time under water with
its dates."""
from __future__ import annotations

import pytest

from adapters.sim.backtest import format_summary, run_backtest
from config.settings import load_config


@pytest.fixture(scope="module")
def result(panel):
    cfg = load_config("config/alvh.toml")
    return run_backtest(cfg, panel, start="2019-06-03", end="2020-12-31")


def test_the_pnl_split_adds_up_to_the_final_equity(result):
    t = result.totals()
    assert t["start_equity"] == 1_000_000
    assert set(t["book_pnl"]) == {"condor", "hedge"}
    parts = t["start_equity"] + sum(t["book_pnl"].values()) + t["interest"]
    assert parts == pytest.approx(result.summary.final_equity, abs=0.01)
    assert sum(t["book_commissions"].values()) == pytest.approx(t["total_commissions"])
    assert t["book_commissions"]["hedge"] > 0 and t["interest"] > 0


def test_the_summary_prints_the_split_and_the_dated_time_under_water(result):
    text = format_summary(result)
    lines = {ln.strip().split("  ")[0]: ln for ln in text.splitlines()}
    assert lines["starting equity"].endswith("1,000,000")
    for key in ("condor book", "hedge", "interest on cash"):
        assert key in lines
    assert "commissions and fees" in lines["condor book"] and "unexplained" not in text
    s = result.summary
    assert s.under_water_days > 0 and s.under_water_from
    assert f"from the peak of {s.under_water_from}" in lines["longest under water"]
    assert "days under water" not in text
