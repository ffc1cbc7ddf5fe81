"""The per-process snapshot price cache and the shared replay state change speed, never results: replays with
the cache shared across runs, private to one run, or squeezed to a few snapshots give bit-identical outputs."""
import pandas as pd
import pytest

from adapters.sim import backtest
from adapters.sim.backtest import run_backtest
from adapters.sim.replay import ReplayMarket
from config.settings import load_config
from engine.marketmodel import PriceCache

START, END = "2017-10-01", "2018-06-30"   # the Feb-2018 spike: the hedge switches on, condors stop out


def _frames(res) -> list[pd.DataFrame]:
    return [res.equity, res.fills, res.trades, res.rejections]


def _same(a, b) -> None:
    for x, y in zip(_frames(a), _frames(b)):
        pd.testing.assert_frame_equal(x, y, check_exact=True)
    assert a.summary.as_dict() == b.summary.as_dict()


@pytest.mark.parametrize("config", ["config/alvh.toml", "config/condor.toml"])
def test_results_are_bit_identical_with_and_without_the_shared_cache(panel, config, monkeypatch):
    cfg = load_config(config)
    monkeypatch.setattr(backtest, "PROCESS_PRICES", PriceCache())
    private = run_backtest(cfg, panel, start=START, end=END, share_prices=False)
    cold = run_backtest(cfg, panel, start=START, end=END)              # fills the shared cache
    assert len(backtest.PROCESS_PRICES) > 0 and backtest.PROCESS_PRICES.misses > 0
    warm = run_backtest(cfg, panel, start=START, end=END)              # every snapshot found in it
    assert backtest.PROCESS_PRICES.hits >= backtest.PROCESS_PRICES.misses
    _same(private, cold)
    _same(private, warm)
    assert len(private.fills) > 0


def test_a_bounded_cache_drops_old_snapshots_and_keeps_results(panel, monkeypatch):
    cfg = load_config("config/alvh.toml")
    ref = run_backtest(cfg, panel, start=START, end=END, share_prices=False)
    small = PriceCache(max_values=2_000)
    monkeypatch.setattr(backtest, "PROCESS_PRICES", small)
    for _ in range(2):
        _same(ref, run_backtest(cfg, panel, start=START, end=END))
        assert small.values <= small.max_values + 200     # evicted down as it went
        assert len(small) < 120                            # far fewer than the window's ~380 snapshots


def test_runs_of_a_panel_replay_the_same_snapshot_objects(panel):
    m = ReplayMarket.of(panel)
    assert ReplayMarket.of(panel) is m
    i = m.dates.index(pd.Timestamp("2018-02-05").date())
    assert m.snapshots(i) is m.snapshots(i)
    o, c = m.snapshots(i)
    assert o.quotes.vix != c.quotes.vix and c.quotes.vix == pytest.approx(37.32)
