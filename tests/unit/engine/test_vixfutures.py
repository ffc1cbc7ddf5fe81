import datetime as dt

import numpy as np
import pandas as pd
import pytest

from engine.vixfutures import RollSchedule, blend_returns

# Real VX expiries around early 2020
EXP = [dt.date(2020, 1, 22), dt.date(2020, 2, 19), dt.date(2020, 3, 18), dt.date(2020, 4, 15),
       dt.date(2020, 5, 20), dt.date(2020, 6, 17), dt.date(2020, 7, 22), dt.date(2020, 8, 19),
       dt.date(2020, 9, 16)]


def test_short_term_weights_roll_linearly_by_business_days():
    s = RollSchedule(EXP)
    # roll period 2020-01-22 .. 2020-02-19 (excluded): 19 NYSE sessions (Presidents' Day 2020-02-17 closed)
    w = s.weights(dt.date(2020, 1, 22), "short")
    assert w[dt.date(2020, 2, 19)] == pytest.approx(18 / 19)
    assert w[dt.date(2020, 3, 18)] == pytest.approx(1 / 19)
    # the day before settlement: everything is in the second month
    w = s.weights(dt.date(2020, 2, 18), "short")
    assert w == {dt.date(2020, 3, 18): pytest.approx(1.0)}
    # mid-period, 2020-02-03: sessions left from 02-04 to 02-18 = 10
    w = s.weights(dt.date(2020, 2, 3), "short")
    assert w[dt.date(2020, 2, 19)] == pytest.approx(10 / 19)
    assert sum(w.values()) == pytest.approx(1.0)


def test_mid_term_holds_months_four_to_seven():
    s = RollSchedule(EXP)
    w = s.weights(dt.date(2020, 2, 3), "mid")
    assert set(w) == {dt.date(2020, 5, 20), dt.date(2020, 6, 17), dt.date(2020, 7, 22), dt.date(2020, 8, 19)}
    assert w[dt.date(2020, 6, 17)] == pytest.approx(1 / 3)
    assert w[dt.date(2020, 5, 20)] == pytest.approx((10 / 19) / 3)
    assert sum(w.values()) == pytest.approx(1.0)


def test_not_enough_listed_months_gives_no_weights():
    assert RollSchedule(EXP[:5]).weights(dt.date(2020, 2, 3), "mid") == {}


def test_blend_return_uses_prior_close_weights():
    dates = pd.DatetimeIndex(["2020-02-03", "2020-02-04"])
    exp = np.array(EXP[:3], dtype="datetime64[D]")
    settle = np.array([[18.0, 19.0, 20.0], [19.8, 20.9, 21.0]])
    r = blend_returns(dates, exp, settle, "short")
    w1, w2 = 10 / 19, 9 / 19
    assert np.isnan(r.iloc[0])
    assert r.iloc[1] == pytest.approx((w1 * 20.9 + w2 * 21.0) / (w1 * 19 + w2 * 20) - 1)
