import datetime as dt

import numpy as np
import pytest

from engine.execution import ExecutionParams, ExecutionSimulator
from engine.instruments import Equity, spx_option, vx_future
from engine.risk import MarginParams, check_buying_power, margin_requirement, option_group_requirement

EXP = dt.date(2024, 3, 15)


def condor(q=1):
    return [(spx_option(EXP, 4400, "P"), q), (spx_option(EXP, 4450, "P"), -q),
            (spx_option(EXP, 4900, "C"), -q), (spx_option(EXP, 4975, "C"), q)]


def test_condor_margin_is_widest_wing_times_multiplier():
    assert option_group_requirement(condor(3), 4700, 0.2, 0.2) == pytest.approx(75 * 100 * 3)


def test_uncovered_short_put_uses_stress_band():
    req = option_group_requirement([(spx_option(EXP, 4500, "P"), -1)], 4700, 0.2, 0.2)
    assert req == pytest.approx((4500 - 4700 * 0.8) * 100)


def test_vx_margin_and_long_shares():
    fut = vx_future(dt.date(2024, 2, 14))
    req = margin_requirement([(fut, -2), (Equity("VIXY"), 100)], 4700, lambda e: 20.0, MarginParams())
    assert req == pytest.approx(2 * 20 * 1000 * 0.5)


def test_buying_power_rejects_book_the_account_cannot_carry():
    reason = check_buying_power(equity=10_000, cash=10_000, holdings_after=condor(2), order_cash=500,
                                cost_vs_mid=20, spx=4700, vx_price=lambda e: np.nan, params=MarginParams())
    assert reason and "buying power" in reason
    ok = check_buying_power(equity=20_000, cash=20_000, holdings_after=condor(2), order_cash=500,
                            cost_vs_mid=20, spx=4700, vx_price=lambda e: np.nan, params=MarginParams())
    assert ok is None


def test_debit_beyond_cash_rejected_without_margin_loan():
    reason = check_buying_power(equity=5_000, cash=1_000, holdings_after=[(Equity("VIXY"), 100)],
                                order_cash=-2_000, cost_vs_mid=1, spx=4700, vx_price=lambda e: np.nan,
                                params=MarginParams())
    assert reason and "cash" in reason


def test_fills_pay_spread_and_slippage_and_never_go_negative():
    sim = ExecutionSimulator(ExecutionParams(slippage_ticks=1.0))
    legs = [spx_option(EXP, 4400, "P"), spx_option(EXP, 4450, "P")]
    mids = np.array([2.0, 0.02])
    px = sim.fill_prices(legs, [1, -1], mids, vix=15.0)
    half = 0.05 + 0.015 * 2.0
    assert px[0] == pytest.approx(2.0 + 0.5 * half + 0.05)   # combo pays half the half-spread + 1 tick
    assert px[1] == 0.0                                     # cannot sell below zero
    single = sim.fill_prices(legs[:1], [1], mids[:1], vix=15.0)
    assert single[0] == pytest.approx(2.0 + half + 0.05)


def test_spreads_widen_with_vix():
    sim = ExecutionSimulator()
    calm = sim.half_spreads(["spx_option"], np.array([10.0]), 15.0)[0]
    stress = sim.half_spreads(["spx_option"], np.array([10.0]), 60.0)[0]
    assert stress == pytest.approx(calm * (1 + 0.5 * 2.0))


def test_commissions_per_contract_and_etp_minimum():
    sim = ExecutionSimulator()
    legs = [spx_option(EXP, 4400, "P"), spx_option(EXP, 4450, "P")]
    assert sim.commission(legs, [3, -3]) == pytest.approx(6 * 1.25)
    assert sim.commission([Equity("VIXY")], [50]) == pytest.approx(1.0)
    assert sim.commission([vx_future(dt.date(2024, 2, 14))], [-4]) == pytest.approx(10.0)
