"""The ALVH layer state machine, activation maps, gates, sensitivities, blends and the VXTH table -
on small synthetic paths (no market data needed)."""
import datetime as dt
import math

import numpy as np
import pytest

from strategies.alvh.budget import BudgetParams, TrailingBetas, layer_target
from strategies.alvh.instruments import ExpiryBook, basket_quantities, rounding_error, sessions_left
from strategies.alvh.layers import LayerSchedule, Trigger, activation_levels
from strategies.alvh.signals import Macd, Rsi
from strategies.benchmarks.vxth import VXTH_WEIGHTS, vix_call_weight
from strategies.hedges import build_hedge, parse_hedge


def run(trigger: Trigger, path, gates=None):
    states = []
    for day, x in enumerate(path):
        trigger.update(day, x, True if gates is None else gates[day])
        states.append(trigger.on)
    return states


# ---- one trigger -------------------------------------------------------------------------------
def test_switches_on_at_the_threshold_and_not_below():
    assert run(Trigger(18.0), [17.0, 17.99, 18.0, 19.0]) == [False, False, True, True]


def test_hysteresis_keeps_the_layer_on_inside_the_band():
    t = Trigger(18.0, hysteresis=2.0)
    # on at 18.5; 17 and 16.01 are inside the band (>= 16); 15.9 is below 18 - 2
    assert run(t, [18.5, 17.0, 16.01, 16.0, 15.9, 17.9, 18.0]) == [True, True, True, True, False, False, True]


def test_minimum_hold_delays_deactivation():
    t = Trigger(18.0, hysteresis=0.0, min_hold_days=3)
    # on at day 0; below the threshold from day 1, but it must stay on until 3 decisions have passed
    assert run(t, [19, 10, 10, 10, 10]) == [True, True, True, False, False]


def test_cooldown_delays_reactivation():
    t = Trigger(18.0, cooldown_days=2)
    assert run(t, [19, 10, 19, 19, 19]) == [True, False, False, True, True]


def test_deactivation_below_threshold_minus_hysteresis():
    t = Trigger(22.0, hysteresis=2.0, min_hold_days=0)
    assert run(t, [25, 21, 20.5, 19.99]) == [True, True, True, False]


def test_nan_signal_changes_nothing():
    t = Trigger(18.0)
    assert run(t, [math.nan, 19.0, math.nan, 5.0]) == [False, True, True, False]


def test_wiggling_vix_churns_without_hysteresis_and_hold_but_not_with_them():
    rng = np.random.default_rng(7)
    path = 18.0 + rng.normal(0, 0.6, 250)  # VIX wiggling around 18
    bare, damped = Trigger(18.0), Trigger(18.0, hysteresis=2.0, min_hold_days=10)
    run(bare, path)
    run(damped, path)
    assert bare.switches > 60
    assert damped.switches <= 2


def test_gate_blocks_activation_and_optionally_forces_exit():
    t = Trigger(18.0)
    assert run(t, [20, 20, 20], gates=[False, False, True]) == [False, False, True]
    t2 = Trigger(18.0)
    t2.update(0, 20, True)
    assert t2.update(1, 20, False, gate_exit=True) and not t2.on
    t3 = Trigger(18.0)
    t3.update(0, 20, True)
    assert not t3.update(1, 20, False, gate_exit=False) and t3.on


# ---- activation maps ---------------------------------------------------------------------------
def test_activation_maps():
    on = [True, False, False]
    assert activation_levels("progressive", on) == [1.0, 0.0, 0.0]
    assert activation_levels("scaled", on) == pytest.approx([1 / 3] * 3)
    assert activation_levels("base", [False, True, False]) == [1.0, 1.0, 0.0]
    assert activation_levels("always", [False] * 3) == [1.0] * 3


def test_progressive_schedule_on_a_synthetic_spike():
    s = LayerSchedule([Trigger(18, 2, 3), Trigger(22, 2, 3), Trigger(28, 3, 3)], "progressive")
    path = [15, 19, 23, 30, 40, 26, 24, 21, 19, 17, 15, 14]
    levels = [tuple(s.step(x)) for x in path]
    assert levels[0] == (0, 0, 0)
    assert levels[1] == (1, 0, 0)
    assert levels[2] == (1, 1, 0)
    assert levels[3] == (1, 1, 1)
    assert levels[5] == (1, 1, 1)         # 26 is inside the long layer's band (>= 25)
    assert levels[6] == (1, 1, 0)         # 24 < 25, held 3 decisions already
    assert levels[8] == (1, 0, 0)         # 19 < 20
    assert levels[10] == (0, 0, 0)        # 15 < 16
    s2 = LayerSchedule([Trigger(18), Trigger(22), Trigger(28)], "scaled")
    assert s2.step(23) == pytest.approx([2 / 3] * 3)


# ---- gates ---------------------------------------------------------------------------------------
def test_macd_turns_bearish_in_a_falling_market_and_rsi_drops():
    m, r = Macd(), Rsi(14)
    for x in np.linspace(100, 130, 60):
        m.update(x)
        r.update(x)
    assert m.ready and not m.bearish and r.value > 70
    for x in np.linspace(130, 100, 20):
        m.update(x)
        r.update(x)
    assert m.bearish and r.value < 30


# ---- sensitivities ------------------------------------------------------------------------------
def test_trailing_beta_recovers_a_known_slope_and_uses_the_prior_until_enough_data():
    p = BudgetParams(beta_window=60, beta_min_obs=20, beta_prior=0.5)
    b = TrailingBetas(p)
    rng = np.random.default_rng(1)
    vix, vx = 20.0, 21.0
    for i in range(80):
        dv = rng.normal(0, 1.0)
        vix += dv
        vx += 0.3 * dv + rng.normal(0, 0.05)
        b.record(vix, {("VX", dt.date(2030, 1, 1)): vx})
        if i == 10:
            assert b.beta(("VX", dt.date(2030, 1, 1))) == 0.5   # too few observations: the prior
    assert b.beta(("VX", dt.date(2030, 1, 1))) == pytest.approx(0.3, abs=0.03)
    assert b.observations(("VX", dt.date(2030, 1, 1))) == 60   # window, not the whole history


def test_a_gap_in_prices_is_not_paired_across_days():
    b = TrailingBetas(BudgetParams())
    key = ("VX", dt.date(2030, 1, 1))
    b.record(20.0, {key: 20.0})
    b.record(21.0, {})              # no price today
    b.record(22.0, {key: 25.0})     # the 5-point jump spans two days: not a one-day change
    assert b.observations(key) == 0


def test_budget_readings():
    vega = BudgetParams(reading="vega", vega_offset=0.5)
    assert layer_target(vega, 0.4, equity=1e6, condor_vega=-10_000, condor_risk=0) == pytest.approx(2_000)
    assert layer_target(vega, 0.4, equity=1e6, condor_vega=+500, condor_risk=0) == 0.0
    eq = BudgetParams(reading="equity", equity_pct=0.10)
    assert [layer_target(eq, w, equity=1e6, condor_vega=0, condor_risk=0) for w in (0.4, 0.4, 0.2)] == \
        pytest.approx([40_000, 40_000, 20_000])  # 4% / 4% / 2%
    c = BudgetParams(reading="contracts", contracts=10, risk_unit=100_000)
    assert [layer_target(c, w, equity=0, condor_vega=0, condor_risk=100_000) for w in (0.4, 0.4, 0.2)] == \
        pytest.approx([4, 4, 2])                 # 4 / 4 / 2 contracts


# ---- constant-maturity blends ---------------------------------------------------------------------
EXP = [dt.date(2020, 1, 22), dt.date(2020, 2, 19), dt.date(2020, 3, 18), dt.date(2020, 4, 15),
       dt.date(2020, 5, 20), dt.date(2020, 6, 17), dt.date(2020, 7, 22), dt.date(2020, 8, 19), dt.date(2020, 9, 16)]


class _Quotes:
    def __init__(self, vx):
        self.vx = vx


class _Market:
    def __init__(self, date, vx):
        self.date = date
        self.quotes = _Quotes(vx)


def test_blend_weights_follow_the_short_and_mid_term_index_roll():
    book = ExpiryBook()
    book.observe(_Market(dt.date(2020, 1, 21), {e: 15.0 for e in EXP}))
    w = book.weights(dt.date(2020, 2, 3), "short")
    # roll period 2020-01-22 .. 2020-02-19: 19 sessions; 10 left after 02-03
    assert w[dt.date(2020, 2, 19)] == pytest.approx(10 / 19)
    assert w[dt.date(2020, 3, 18)] == pytest.approx(9 / 19)
    m = book.weights(dt.date(2020, 2, 3), "mid")
    assert set(m) == {dt.date(2020, 5, 20), dt.date(2020, 6, 17), dt.date(2020, 7, 22), dt.date(2020, 8, 19)}
    assert sum(m.values()) == pytest.approx(1.0)
    # the day before settlement everything is in the second month
    assert book.weights(dt.date(2020, 2, 18), "short") == {dt.date(2020, 3, 18): pytest.approx(1.0)}


def test_blend_rounding_to_whole_contracts():
    basket = {"front": 10 / 19, "second": 9 / 19}
    assert basket_quantities(basket, 1.0) == {"front": 1, "second": 0}
    assert rounding_error(basket, 1.0) == pytest.approx((1 - 10 / 19 + 9 / 19) / 2)
    assert basket_quantities(basket, 38.0) == {"front": 20, "second": 18}
    assert rounding_error(basket, 38.0) == pytest.approx(0.0)
    # a 5-month blend of one contract is still one contract (largest remainder), in its biggest month
    mid = {"m4": 0.1, "m5": 1 / 3, "m6": 1 / 3, "m7": 1 / 3 - 0.1}
    q = basket_quantities(mid, 1.0)
    assert sum(q.values()) == 1 and q["m5"] == 1
    assert sum(basket_quantities(mid, 7.4).values()) == 7
    # the error shrinks roughly as 1/units: small budgets track the blend badly
    assert rounding_error(basket, 3.0) > rounding_error(basket, 30.0)
    # spreads and single contracts are plain rounding
    assert basket_quantities({"far": 1.0, "near": -1.0}, 2.6) == {"far": 3, "near": -3}


def test_sessions_left_counts_nyse_sessions_up_to_expiry():
    assert sessions_left(dt.date(2020, 3, 11), dt.date(2020, 3, 18)) == 5
    assert sessions_left(dt.date(2020, 3, 17), dt.date(2020, 3, 18)) == 1


# ---- VXTH ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("vx,w", [(12.0, 0.0), (15.0, 0.0), (15.01, 0.01), (22.0, 0.01), (30.0, 0.01),
                                  (30.01, 0.005), (50.0, 0.005), (50.01, 0.0), (80.0, 0.0), (math.nan, 0.0)])
def test_vxth_weight_table(vx, w):
    assert vix_call_weight(vx) == w
    assert VXTH_WEIGHTS == ((15.0, 0.0), (30.0, 0.01), (50.0, 0.005))


# ---- config --------------------------------------------------------------------------------------
def test_build_hedge_kinds():
    from strategies.alvh.hedge import LayeredVixHedge
    from strategies.baselines import SpxPutHedge, VxthHedge

    (h,) = build_hedge({})
    assert isinstance(h, LayeredVixHedge) and [lp.weight for lp in h.p.layers] == [0.4, 0.4, 0.2]
    assert [lp.threshold for lp in h.p.layers] == [18, 22, 28] and h.book == "hedge"
    (s,) = build_hedge({"kind": "static"})
    assert s.p.activation == "always"
    assert isinstance(build_hedge({"kind": "vxth"})[0], VxthHedge)
    assert isinstance(build_hedge({"kind": "spx_puts"})[0], SpxPutHedge)
    assert build_hedge({"kind": "none"}) == []


def test_default_config_file_validates():
    from config.settings import load_config

    cfg = load_config("config/alvh.toml")
    p = parse_hedge(cfg.hedge)
    assert [lp.weight for lp in p.layers] == [0.4, 0.4, 0.2]
    assert [lp.threshold for lp in p.layers] == [18, 22, 28]
    assert [lp.instrument.type for lp in p.layers] == ["vx", "cm", "vix_call"]


def test_intraday_activation_switches_on_without_advancing_or_switching_off():
    from strategies.alvh.layers import LayerSchedule, Trigger

    sched = LayerSchedule([Trigger(18, 2, min_hold_days=3), Trigger(22, 2, min_hold_days=3), Trigger(28, 3)])
    sched.step(17.0)
    assert sched.states == [False, False, False]
    assert sched.activate(23.5) == [0, 1]               # a spike during the day: layers 1 and 2 now
    assert sched.states == [True, True, False] and sched.day == 1
    assert sched.activate(12.0) == [] and sched.states == [True, True, False]   # never switches off
    sched.step(12.0)                                    # the decision respects the minimum hold
    assert sched.states == [True, True, False]
