"""CNDR and VXTH replica rules on small fixed inputs, and short real runs through run_backtest."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from engine.clock import ET
from engine.events import MarketQuotes, MarketSnapshot, Phase
from engine.instruments import spx_option
from engine.marketmodel import MarketModel, PricingParams
from engine.strikes import strike_grid
from engine.vixfutures import RollSchedule
from strategies.benchmarks import (
    SPXTotalReturn,
    VXTHParams,
    closest_to_delta,
    cndr_roll_dates,
    replica_execution,
    vix_call_weight,
    vxth_roll_dates,
)
from strategies.benchmarks.cndr import CNDRReplica

# ---- CNDR: strike choice by delta ------------------------------------------------------------------------
# A fixed put chain (strike, delta) as a vendor would print it.
PUT_CHAIN = [(3500, -0.031), (3550, -0.042), (3600, -0.055), (3650, -0.071), (3700, -0.093), (3750, -0.121),
             (3800, -0.157), (3850, -0.198), (3900, -0.247), (3950, -0.305)]
CALL_CHAIN = [(4100, 0.352), (4150, 0.281), (4200, 0.214), (4250, 0.187), (4300, 0.118), (4350, 0.079),
              (4400, 0.052), (4450, 0.033)]


def test_cndr_strikes_closest_to_020_and_005_delta_on_a_fixed_chain():
    k, d = zip(*PUT_CHAIN)
    assert closest_to_delta(k, d, 0.20) == 3850      # |-0.198| is 0.002 away
    assert closest_to_delta(k, d, 0.05) == 3600      # |-0.055| beats |-0.042|
    k, d = zip(*CALL_CHAIN)
    assert closest_to_delta(k, d, 0.20) == 4250      # 0.187 is 0.013 away, 0.214 is 0.014
    assert closest_to_delta(k, d, 0.05) == 4400


def test_closest_to_delta_exact_values_and_tie_break():
    k, d = zip(*CALL_CHAIN)
    assert closest_to_delta(k[::-1], d[::-1], 0.20) == 4250   # chain order does not matter
    # an exact tie goes to the option further out of the money (smaller |delta|)
    assert closest_to_delta([100, 110], [0.25, 0.15], 0.20) == 110
    assert closest_to_delta([90, 100], [-0.15, -0.25], 0.20) == 90
    with pytest.raises(ValueError):
        closest_to_delta([100], [0.1, 0.2], 0.2)


def test_cndr_roll_dates_are_spx_monthly_expiries_with_holiday_rule():
    d = cndr_roll_dates("2019-01-01", "2019-12-31")
    assert len(d) == 12
    assert dt.date(2019, 4, 18) in d          # Good Friday 2019-04-19 -> Thursday
    assert dt.date(2019, 1, 18) in d and dt.date(2019, 12, 20) in d
    assert all(x.weekday() == 4 for x in d if x != dt.date(2019, 4, 18))
    assert dt.date(2014, 4, 17) in cndr_roll_dates("2014-04-01", "2014-04-30")   # Good Friday 2014-04-18


def _model(spot=4000.0, vix=20.0, date=dt.date(2023, 3, 17)) -> MarketModel:
    q = MarketQuotes(spx=spot, vix=vix, rate=0.04, vix9d=19.0, vix3m=21.0, vix6m=22.0, vvix=90.0)
    snap = MarketSnapshot(dt.datetime(date.year, date.month, date.day, 9, 30, tzinfo=ET), date, Phase.OPEN, q)
    return MarketModel(snap, PricingParams())


class _Ctx:
    def __init__(self, m):
        self.market = m


def test_cndr_choose_strikes_picks_the_grid_strike_nearest_in_model_delta():
    m = _model()
    date, expiry = dt.date(2023, 3, 17), dt.date(2023, 4, 21)
    lp, sp, sc, lc = CNDRReplica().choose_strikes(_Ctx(m), date, expiry)
    assert lp < sp < m.spot < sc < lc
    grid = strike_grid(m.spot, date, (expiry - date).days, "SPX")
    for k, right, target in ((lp, "P", 0.05), (sp, "P", 0.20), (sc, "C", 0.20), (lc, "C", 0.05)):
        d = np.abs(m.deltas([spx_option(expiry, g, right, "SPX") for g in grid]))
        best = grid[np.argmin(np.abs(d - target))]
        assert k == best
        assert abs(abs(m.deltas([spx_option(expiry, k, right, "SPX")])[0]) - target) < 0.02


# ---- VXTH rules ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("level,weight", [
    (12.0, 0.0), (15.0, 0.0), (15.01, 0.01), (22.5, 0.01), (30.0, 0.01), (30.01, 0.005), (50.0, 0.005),
    (50.01, 0.0), (80.0, 0.0), (math.nan, 0.0),
])
def test_vxth_weight_table(level, weight):
    assert vix_call_weight(level) == weight


def test_vxth_roll_dates_are_vix_expirations():
    d = vxth_roll_dates("2020-01-01", "2020-12-31")
    assert d[:4] == [dt.date(2020, 1, 22), dt.date(2020, 2, 19), dt.date(2020, 3, 18), dt.date(2020, 4, 15)]
    assert len(d) == 12
    # the Friday 30 days after 2019-04-17 is 2019-05-17, a business day: no shift
    assert vxth_roll_dates("2019-04-01", "2019-04-30") == [dt.date(2019, 4, 17)]
    # Good Friday 2022-04-15 is 30 days after Wednesday 2022-03-16, so March 2022 settles on Tuesday 2022-03-15
    assert vxth_roll_dates("2022-03-01", "2022-03-31") == [dt.date(2022, 3, 15)]


def test_spx_total_return_accrues_dividend_points_evenly():
    tr = SPXTotalReturn({2021: 36.5}, start_level=100.0)
    tr.close(dt.date(2021, 1, 4), 1000.0)
    assert tr.peek(1010.0) == pytest.approx(101.0)   # intraday: price only
    lvl = tr.close(dt.date(2021, 1, 14), 1000.0)       # 10 calendar days of 36.5 points a year
    assert lvl == pytest.approx(100.0 * (1000.0 + 1.0) / 1000.0)
    # outside the table: the fallback yield on the price
    tr2 = SPXTotalReturn({}, fallback_yield=0.0365)
    tr2.close(dt.date(2030, 1, 1), 100.0)
    assert tr2.close(dt.date(2030, 1, 11), 100.0) == pytest.approx(100.0 * 100.1 / 100.0)


# ---- blend weights as used by the fidelity report ----------------------------------------------------------
def test_short_and_mid_blend_weights_on_real_expiries(panel):
    _, expiries, _ = panel.vx_matrix()
    sched = RollSchedule([pd.Timestamp(e).date() for e in expiries])
    w = sched.weights(dt.date(2020, 2, 3), "short")
    assert w == {dt.date(2020, 2, 19): pytest.approx(10 / 19), dt.date(2020, 3, 18): pytest.approx(9 / 19)}
    m = sched.weights(dt.date(2020, 2, 3), "mid")
    assert sorted(m) == [dt.date(2020, 5, 20), dt.date(2020, 6, 17), dt.date(2020, 7, 22), dt.date(2020, 8, 19)]
    assert m[dt.date(2020, 6, 17)] == pytest.approx(1 / 3)
    assert sum(m.values()) == pytest.approx(1.0)


def test_blend_return_on_a_real_day_matches_a_hand_calculation(panel):
    from analysis.etp_tracking import vx_blend_returns

    r = vx_blend_returns(panel, "short")
    vx = panel.vx.set_index(["date", "expiry"])["settle"]
    d0, d1 = pd.Timestamp("2020-02-03"), pd.Timestamp("2020-02-04")
    f0, f1 = pd.Timestamp("2020-02-19"), pd.Timestamp("2020-03-18")
    w1, w2 = 10 / 19, 9 / 19
    hand = (w1 * vx[(d1, f0)] + w2 * vx[(d1, f1)]) / (w1 * vx[(d0, f0)] + w2 * vx[(d0, f1)]) - 1
    assert r.loc[d1] == pytest.approx(hand)


# ---- short real runs through run_backtest ----------------------------------------------------------------
def test_cndr_replica_runs_through_the_engine_at_mid_with_10x_collateral(panel):
    from analysis.replicas import run_cndr

    res, strat = run_cndr(panel, PricingParams(), "2019-01-01", "2019-07-31")
    rolls = pd.DataFrame(strat.rolls)
    assert list(rolls["date"]) == cndr_roll_dates("2019-01-01", "2019-07-31")
    assert (rolls["collateral_multiple"] >= 10.0).all() and (rolls["collateral_multiple"] < 10.2).all()
    assert rolls["delta_short_put"].abs().between(0.15, 0.25).all()
    assert rolls["delta_long_call"].abs().between(0.02, 0.08).all()
    # every condor but the last is held to its AM settlement on the next roll day; no management, no costs
    assert len(strat.trades) == len(rolls) - 1
    assert all(t["exit_date"] == t["expiry"] for t in strat.trades)
    assert res.fills["commission"].sum() == 0.0
    assert res.fills["purpose"].eq("roll").all()
    assert len(res.rejections) == 0
    # fills at mid: the credit received equals the model-mid credit computed at the roll
    for t, r in zip(strat.trades, strat.rolls):
        assert t["credit"] == pytest.approx(r["credit"], abs=1e-4)
    # the engine's executed path is the ordinary one
    assert replica_execution().spread_paid_combo == 0 and replica_execution().slippage_ticks == 0


def test_vxth_replica_buys_calls_for_the_weight_and_pays_off_in_march_2020(panel):
    from analysis.replicas import run_vxth, vxth_quarterly

    _, strat = run_vxth(panel, PricingParams(), "2019-12-01", "2020-04-30")
    rolls = {r["date"]: r for r in strat.rolls}
    r = rolls[dt.date(2020, 2, 19)]
    assert r["weight"] == 0.01 and r["quantity"] > 0
    assert r["quantity"] * r["price"] * 100 / r["value"] == pytest.approx(0.01, rel=0.01)
    assert 0.25 <= r["delta"] <= 0.35
    assert rolls[dt.date(2020, 3, 18)]["weight"] == 0.0      # VX Apr > 50 on 2020-03-18
    assert rolls[dt.date(2019, 12, 18)]["weight"] == 0.0     # VX Jan <= 15
    q = vxth_quarterly(strat)
    assert q.loc[pd.Period("2020Q1"), "vxth"] > 0.3
    assert q.loc[pd.Period("2020Q1"), "spx_tr"] == pytest.approx(-0.196, abs=0.005)
    # until the first call purchase the replica is the S&P 500 total return (whole SPXTR shares: the cash residue
    # is below one index level, < 0.002 % of the account)
    f = strat.frame().loc[:"2020-01-21"]
    assert (f["index"] / f["index"].iloc[0]).to_numpy() == pytest.approx((f["spx_tr"] / f["spx_tr"].iloc[0]).to_numpy(),
                                                                          rel=2e-5)
    assert (f["cash"] >= 0).all() and (f["cash"] < 1e-4 * f["index"]).all()


def test_vxth_replica_holds_spxtr_shares_and_the_account_equity_is_the_index(panel):
    from analysis.replicas import REPLICA_NOTIONAL, run_vxth

    res, strat = run_vxth(panel, PricingParams(), "2019-12-01", "2020-04-30")
    f = strat.frame()
    eq = res.equity["equity"]
    assert eq.to_numpy() == pytest.approx(f["index"].to_numpy(), rel=1e-12)
    assert eq.iloc[0] == pytest.approx(REPLICA_NOTIONAL, rel=0.02)             # no cash buffer
    # the S&P 500 leg is SPXTR shares bought and sold through the broker at the replay's SPXTR quote
    fills = res.fills
    tr = fills[fills["instrument"] == "SPXTR"]
    assert len(tr) >= 1 and (tr["commission"] == 0).all()
    assert set(fills["purpose"]) == {"roll", "rebalance"}
    assert (f["cash"] >= 0).all() and (f["cash"] < 1e-4 * f["index"]).all()   # under one share
    assert len(res.rejections) == 0
    # on a roll day the premium comes out of the S&P 500 leg: one order buys the calls and sells the shares
    day = fills[fills["date"].astype(str) == "2020-02-19"]
    assert list(day["purpose"]) == ["roll", "roll"] and day["intent_id"].nunique() == 1
    assert day["instrument"].iloc[0].startswith("VIX ") and day["instrument"].iloc[1] == "SPXTR"
    assert day["quantity"].iloc[1] < 0
    premium = day["quantity"].iloc[0] * day["price"].iloc[0] * 100
    sold = -day["quantity"].iloc[1] * day["price"].iloc[1]
    assert abs(sold - premium) < 2 * day["price"].iloc[1]          # whole shares: within a share or two
    assert f.loc["2020-02-19", "hedge"] == pytest.approx(premium, rel=1e-6)     # marked at the buying close
    # after the March 2020 payoff, the settlement is back in SPXTR at the open of the roll day
    mar = fills[fills["date"].astype(str) == "2020-03-18"]
    assert list(mar["time"]) == ["09:30"] and mar["quantity"].iloc[0] > 0 and mar["instrument"].iloc[0] == "SPXTR"


def test_vxth_buy_phase_open_decides_at_the_open_and_fills_at_that_close(panel):
    from analysis.replicas import REPLICA_NOTIONAL, run_vxth

    res, _ = run_vxth(panel, PricingParams(), "2020-02-01", "2020-02-28",
                          VXTHParams(notional=REPLICA_NOTIONAL, buy_phase=Phase.OPEN))
    calls = res.fills[res.fills["instrument"].str.startswith("VIX ")]
    # decided at the open, but a VIX option has no fresh price there (VVIX, its vol level, is close-only):
    # the order waits for the close of the same day
    assert list(calls["time"]) == ["16:00"]
    opened = calls
    res, _strat = run_vxth(panel, PricingParams(), "2020-02-01", "2020-02-28")
    calls = res.fills[res.fills["instrument"].str.startswith("VIX ")]
    assert list(calls["time"]) == ["16:00"]
    assert list(opened["date"]) == list(calls["date"])   # the same session: deferred to its close, not dropped
