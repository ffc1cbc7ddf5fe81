import math

import pandas as pd
import pytest

from engine.metrics import cagr, max_drawdown, summarize, time_under_water


def series(values, start="2020-01-01"):
    return pd.Series(values, index=pd.bdate_range(start, periods=len(values)), dtype=float)


def test_max_drawdown_hand_checked():
    eq = series([100, 110, 99, 88, 95, 121, 110])
    dd = max_drawdown(eq)
    assert dd.max_drawdown == pytest.approx(0.2)        # 110 -> 88
    assert dd.peak == eq.index[1] and dd.trough == eq.index[3] and dd.recovery == eq.index[5]
    assert time_under_water(eq) == 3


def test_longest_time_under_water_has_its_dates():
    from engine.metrics import longest_under_water

    eq = series([100, 90, 101, 95, 94, 96, 99, 100, 102, 98])
    uw = longest_under_water(eq)                       # 101 on day 2, under it on days 3-7, back above on day 8
    assert (uw.days, uw.peak, uw.recovery) == (5, eq.index[2], eq.index[8])
    tail = longest_under_water(series([100, 120, 110, 105, 100, 90]))
    assert (tail.days, tail.peak, tail.recovery) == (4, eq.index[1], None)     # not back by the end
    assert longest_under_water(series([1, 2, 3])).days == 0
    s = summarize(eq)
    assert (s.under_water_days, s.under_water_from, s.under_water_to) == (5, "2020-01-03", "2020-01-13")


def test_cagr_doubling_in_two_years():
    idx = pd.to_datetime(["2020-01-01", "2022-01-01"])
    assert cagr(pd.Series([100.0, 200.0], index=idx)) == pytest.approx(2 ** (365.25 / 731) - 1, rel=1e-9)


def test_summary_calmar_is_cagr_over_drawdown():
    eq = series([100, 105, 95, 110, 120, 115, 130])
    s = summarize(eq)
    assert s.calmar == pytest.approx(s.cagr / s.max_drawdown)
    assert math.isfinite(s.sharpe)


def test_no_drawdown_on_monotone_series():
    assert max_drawdown(series([1, 2, 3])).max_drawdown == 0.0


def test_sharpe_and_sortino_are_both_in_excess_of_the_risk_free_rate():
    from engine.metrics import excess_returns, sharpe, sortino

    eq = series([100 * 1.0002 ** i for i in range(300)])      # earns exactly the risk-free rate
    rf = 252 * 0.0002
    assert abs(excess_returns(eq, rf).mean()) < 1e-12
    noisy = series([100 * 1.0002 ** i * (1 + 0.001 * (-1) ** i) for i in range(300)])
    assert sortino(noisy, rf) < sortino(noisy, 0.0)
    assert sharpe(noisy, rf) < sharpe(noisy, 0.0)
