"""Tests for engine.volsurface (SPX surface, VIX-option vols) and engine.strikes."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from engine.pricing import black76_price, bsm_greeks, implied_vol
from engine.strikes import strike_for_delta, strike_grid, vix_strike_grid
from engine.volsurface import (
    SkewParams,
    SpxSurface,
    VixOptionParams,
    VixOptionSurface,
    vvix_fallback,
)

NO_RATIO = SkewParams(atm_ratio=1.0, atm_ratio_term_exp=0.0)
PTS = [(9 / 365, 0.118), (30 / 365, 0.1282), (91 / 365, 0.1534), (182 / 365, 0.1610)]


def surface(**kw) -> SpxSurface:
    args = {"spot": 4500.0, "rate": 0.05, "div_yield": 0.015, "term_points": PTS, "params": SkewParams()}
    args.update(kw)
    return SpxSurface(**args)


# ---------------------------------------------------------------------------------------------
# term structure
# ---------------------------------------------------------------------------------------------


def test_total_variance_interpolation_hand_checked():
    s = SpxSurface(100.0, 0.0, 0.0, [(0.1, 0.20), (0.3, 0.30)], NO_RATIO)
    # w(0.1) = 0.004, w(0.3) = 0.027 -> w(0.2) = 0.0155 -> vol = sqrt(0.0155 / 0.2) = 0.278388...
    assert s.atm_vol(0.2) == pytest.approx(math.sqrt(0.0775), abs=1e-12)
    assert s.index_vol(0.2) == pytest.approx(0.2783882181, abs=1e-9)
    # w(0.25) = 0.004 + 0.023 * 0.75 = 0.02125
    assert s.atm_vol(0.25) == pytest.approx(math.sqrt(0.02125 / 0.25), abs=1e-12)
    # flat vol extrapolation on both sides
    assert s.atm_vol(0.01) == pytest.approx(0.20, abs=1e-12)
    assert s.atm_vol(2.0) == pytest.approx(0.30, abs=1e-12)
    # points exactly reproduced; vectorised path agrees
    np.testing.assert_allclose(s.atm_vol(np.array([0.1, 0.2, 0.3])), [0.2, math.sqrt(0.0775), 0.3])


def test_default_atm_ratio_applied_to_index_vol():
    s = SpxSurface(100.0, 0.0, 0.0, [(0.1, 0.20), (0.3, 0.30)], SkewParams())
    T = 0.2
    expected = 0.84 * (T * 365 / 30) ** -0.04 * math.sqrt(0.0775)
    assert s.atm_vol(T) == pytest.approx(expected, abs=1e-12)
    assert s.atm_vol(30 / 365) == pytest.approx(0.84 * 0.20, abs=1e-12)


def test_vix_only_is_flat():
    s = SpxSurface(3000.0, 0.02, 0.015, [(30 / 365, 0.25)], NO_RATIO)
    for T in (1 / 365, 7 / 365, 30 / 365, 0.5, 2.0):
        assert s.index_vol(T) == pytest.approx(0.25, abs=1e-14)
        assert s.atm_vol(T) == pytest.approx(0.25, abs=1e-14)


def test_invalid_points_dropped_and_variance_monotone():
    s = SpxSurface(100.0, 0.0, 0.0, [(9 / 365, float("nan")), (30 / 365, 0.2), (91 / 365, None or -1.0)],
                   NO_RATIO)
    assert s.index_vol(91 / 365) == pytest.approx(0.2)
    # a short-end spike so large that total variance would decrease is raised to the running max
    s = SpxSurface(100.0, 0.0, 0.0, [(9 / 365, 1.20), (30 / 365, 0.40)], NO_RATIO)
    w9 = 1.2 ** 2 * 9 / 365
    assert s.index_vol(30 / 365) == pytest.approx(math.sqrt(w9 / (30 / 365)))
    Ts = np.linspace(1 / 365, 1, 200)
    assert np.all(np.diff(s.index_vol(Ts) ** 2 * Ts) >= -1e-15)
    with pytest.raises(ValueError):
        SpxSurface(100.0, 0.0, 0.0, [(30 / 365, float("nan"))])


def test_total_variance_nondecreasing_for_real_points():
    s = surface()
    Ts = np.linspace(1 / 365, 2.0, 500)
    w = s.atm_vol(Ts) ** 2 * Ts
    assert np.all(np.diff(w) > 0)


# ---------------------------------------------------------------------------------------------
# smile
# ---------------------------------------------------------------------------------------------


def _strike_at_delta(s: SpxSurface, T: float, target: float, call: bool) -> float:
    F = s.forward(T)
    return brentq(lambda K: s.delta(K, T, call) - target, F * 0.3, F * 3.0, xtol=1e-9)


@pytest.mark.parametrize("days", [7, 30, 45, 90])
def test_skew_makes_otm_puts_richer(days):
    s = surface()
    T = days / 365
    F = s.forward(T)
    atm = s.vol(F, T)
    assert atm == pytest.approx(s.atm_vol(T), rel=1e-12)
    k10 = _strike_at_delta(s, T, -0.10, False)
    k25 = _strike_at_delta(s, T, -0.25, False)
    c25 = _strike_at_delta(s, T, 0.25, True)
    assert s.vol(k10, T) > s.vol(k25, T) > atm > s.vol(c25, T)
    # magnitudes in the range seen in 2022-2024 SPXW chains (10-delta put 1.15-1.9 x ATM)
    assert 1.15 < s.vol(k10, T) / atm < 2.0
    assert 0.75 <= s.vol(c25, T) / atm < 0.98


@pytest.mark.parametrize("days", [1, 7, 30, 90, 365])
def test_vol_monotone_and_prices_arbitrage_free_in_strike(days):
    s = surface()
    T = days / 365
    F = s.forward(T)
    K = np.linspace(0.5 * F, 1.5 * F, 2001)
    v = s.vol(K, T)
    assert np.all(np.diff(v[K < F]) < 0)            # put side strictly decreasing in strike
    assert np.all(np.diff(v) <= 1e-15)              # and never increasing anywhere
    assert np.all((v >= s.params.min_vol) & (v <= s.params.max_vol))
    puts = s.price(K, T, False)
    calls = s.price(K, T, True)
    assert np.all(np.diff(puts) >= -1e-12) and np.all(np.diff(calls) <= 1e-12)
    live = (puts[1:] > 1e-10) & (calls[:-1] > 1e-10)
    assert np.all(np.diff(puts)[live] > 0) and np.all(np.diff(calls)[live] < 0)
    # butterflies non-negative (discrete second difference of call prices)
    assert np.all(np.diff(calls, 2) > -1e-9)


def test_surface_price_round_trips_to_surface_vol():
    s = surface()
    for days in (3, 30, 60, 180):
        T = days / 365
        F = s.forward(T)
        K = np.linspace(0.7 * F, 1.2 * F, 101)
        call = K >= F
        p = s.price(K, T, call)
        iv = implied_vol(p, s.spot, K, T, s.rate, s.div_yield, call)
        vega = bsm_greeks(s.spot, K, T, s.rate, s.div_yield, s.vol(K, T), call).vega
        ok = vega > 1e-2
        assert ok.sum() > 50
        np.testing.assert_allclose(iv[ok], s.vol(K, T)[ok], atol=1e-7)


@given(K=st.floats(1000, 9000), days=st.floats(0, 800), call=st.booleans(),
       vix=st.floats(9, 85), ratio9=st.floats(0.6, 1.6), ratio3m=st.floats(0.7, 1.3))
@settings(max_examples=300, deadline=None)
def test_surface_scalar_path_matches_array_path(K, days, call, vix, ratio9, ratio3m):
    pts = [(9 / 365, vix * ratio9 / 100), (30 / 365, vix / 100), (91 / 365, vix * ratio3m / 100)]
    s = SpxSurface(4500.0, 0.03, 0.015, pts)
    T = days / 365
    assert s.vol(K, T) == pytest.approx(float(s.vol(np.array([K]), np.array([T]))[0]), rel=1e-12)
    assert s.atm_vol(T) == pytest.approx(float(s.atm_vol(np.array(T))), rel=1e-12)
    assert s.price(K, T, call) == pytest.approx(float(s.price(np.array(K), T, call)), rel=1e-10, abs=1e-10)
    assert s.delta(K, T, call) == pytest.approx(float(s.delta(np.array(K), T, call)), rel=1e-10, abs=1e-12)


def test_stress_level_surface_is_sane():
    # 2020-03-16: VIX9D 106.66, VIX 82.69, VIX3M 67.70 (inverted term structure)
    s = SpxSurface(2386.13, 0.0025, 0.02,
                   [(9 / 365, 1.0666), (30 / 365, 0.8269), (91 / 365, 0.6770)])
    T = 30 / 365
    F = s.forward(T)
    K = np.linspace(0.5 * F, 1.5 * F, 201)
    v = s.vol(K, T)
    assert np.all(np.isfinite(v)) and v.max() <= 3.0
    assert 0.6 < s.atm_vol(T) < 0.75
    assert s.atm_vol(7 / 365) > s.atm_vol(60 / 365)  # inverted term structure preserved


# ---------------------------------------------------------------------------------------------
# VIX options
# ---------------------------------------------------------------------------------------------


def test_vix_option_atm_and_term_structure():
    v = VixOptionSurface(18.0, 0.05, 95.0)
    assert v.atm_vol(30 / 365) == pytest.approx(0.85 * 0.95)
    assert v.vol(18.0, 30 / 365) == pytest.approx(0.85 * 0.95)
    assert v.atm_vol(90 / 365) == pytest.approx(0.85 * 0.95 * 3.0 ** -0.4)
    Ts = np.array([7, 14, 30, 60, 120, 240]) / 365
    assert np.all(np.diff(v.atm_vol(Ts)) < 0)            # vol of vol falls with maturity
    assert v.atm_vol(1 / 365) == pytest.approx(v.atm_vol(7 / 365))  # clamped at 7 days


def test_vix_option_call_skew_and_prices():
    v = VixOptionSurface(18.0, 0.05, 95.0)
    T = 30 / 365
    K = vix_strike_grid(18.0)
    vols = v.vol(K, T)
    assert np.all(np.diff(vols) >= 0)                    # upward skew
    assert v.vol(25.0, T) > v.vol(18.0, T) > v.vol(15.0, T)
    p = v.price(K, T, True)
    assert np.all(np.diff(p) < 0)
    np.testing.assert_allclose(p, black76_price(18.0, K, T, 0.05, vols, True))
    iv = implied_vol(p, 18.0, K, T, 0.05, 0.0, True, model="black76")
    ok = v.greeks(K, T, True).vega > 1e-3
    assert ok.sum() > 25
    np.testing.assert_allclose(iv[ok], vols[ok], atol=1e-7)
    assert v.vol(22.0, T) == pytest.approx(float(v.vol(np.array(22.0), T)), rel=1e-12)
    assert 0 < v.delta(22.0, T, True) < 0.5


def test_vix_option_vvix_fallback():
    v = VixOptionSurface(30.0, 0.02, None, vix=40.0)
    assert v.vvix_is_fallback
    assert v.vvix == pytest.approx(53.76 * 40.0 ** 0.1867)
    assert v.vvix == pytest.approx(vvix_fallback(40.0))
    assert 95 < v.vvix < 115  # median VVIX with VIX in 30-50 was ~100 (2007-2026)
    v2 = VixOptionSurface(30.0, 0.02, float("nan"))
    assert v2.vvix_is_fallback and v2.vvix == pytest.approx(vvix_fallback(30.0))
    assert not VixOptionSurface(30.0, 0.02, 120.0).vvix_is_fallback
    p = VixOptionParams(atm_ratio=1.0)
    assert VixOptionSurface(30.0, 0.02, 100.0, p).atm_vol(30 / 365) == pytest.approx(1.0)


FITTED = VixOptionParams(atm_ratio=1.1008, kappa=10.1694, long_vol=0.2073, long_vol_contango=2.7085,
                         contango_min=0.0013, contango_max=0.1358, skew=0.0, skew_vol=0.8657)


def test_vix_option_contango_sets_the_long_end_and_is_clipped_to_the_fitted_range():
    T_long, T_short = 150 / 365, 14 / 365
    flat = VixOptionSurface(20.0, 0.0, 100.0, FITTED, vix=20.0, front=20.0)
    steep = VixOptionSurface(24.0, 0.0, 100.0, FITTED, vix=17.0, front=19.5)
    assert steep.atm_vol(T_long) > flat.atm_vol(T_long) + 0.10      # contango keeps the far expiries' vol up
    assert steep.atm_vol(T_short) - flat.atm_vol(T_short) < 0.5 * (steep.atm_vol(T_long) - flat.atm_vol(T_long))
    # a spike's inverted curve (front far below VIX) is outside the three chains: it reads as their flattest one
    spike = VixOptionSurface(40.0, 0.0, 100.0, FITTED, vix=60.0, front=45.0)
    edge = VixOptionSurface(40.0, 0.0, 100.0, FITTED, vix=45.0, front=45.0 * math.exp(FITTED.contango_min))
    assert spike.atm_vol(T_long) == pytest.approx(edge.atm_vol(T_long), rel=1e-12)
    assert VixOptionSurface(20.0, 0.0, 100.0, FITTED, vix=20.0, front=40.0).atm_vol(T_long) == pytest.approx(
        VixOptionSurface(20.0, 0.0, 100.0, FITTED, vix=20.0, front=20.0 * math.exp(FITTED.contango_max)).atm_vol(T_long))
    # no front or no VIX: a flat curve, not an error
    missing = VixOptionSurface(20.0, 0.0, 100.0, FITTED, vix=None, front=None)
    assert missing.atm_vol(T_long) == pytest.approx(flat.atm_vol(T_long), rel=1e-12)
    # the 30-day end is mostly VVIX's: it moves about a third as much as the 150-day end
    assert abs(steep.atm_vol(30 / 365) - flat.atm_vol(30 / 365)) < 0.35 * (steep.atm_vol(T_long) - flat.atm_vol(T_long))


@given(K=st.floats(12.0, 60.0), days=st.integers(7, 240))
@settings(max_examples=200, deadline=None)
def test_vix_option_additive_skew_is_the_same_slope_at_every_maturity(K, days):
    v = VixOptionSurface(20.0, 0.0, 100.0, FITTED, vix=18.0, front=19.0)
    T = days / 365
    y = math.log(K / 20.0) / math.sqrt(T / (30 / 365))
    atm = float(v.atm_vol(T))
    raw = atm + FITTED.skew_vol * y
    expect = min(max(raw, FITTED.min_mult * atm), FITTED.max_mult * atm)
    assert float(v.vol(K, T)) == pytest.approx(min(max(expect, FITTED.min_vol), FITTED.max_vol), rel=1e-9)
    assert float(v.vol(np.array([K]), np.array([T]))[0]) == pytest.approx(float(v.vol(K, T)), rel=1e-12)


def test_vix_option_old_parameters_price_exactly_as_before():
    """The additive skew and the contango term are off by default: the multiplicative smile is unchanged."""
    p = VixOptionParams(atm_ratio=1.0827, long_vol=0.596, kappa=13.56, skew=1.0174)
    v = VixOptionSurface(19.0, 0.01, 104.0, p, vix=17.0, front=21.0)
    T, K = 60 / 365, 25.0
    S, L = 1.0827 * 1.04, 0.596
    kt = 13.56 * T
    atm = math.sqrt(L * L + (S * S - L * L) * (-math.expm1(-kt)) / kt)
    m = 1.0 + 1.0174 * math.log(K / 19.0) / math.sqrt(T / (30 / 365))
    assert v.vol(K, T) == atm * min(max(m, 0.6), 2.0)


# ---------------------------------------------------------------------------------------------
# strikes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_of,spot", [("2007-05-01", 1480.0), ("2012-06-01", 1310.0),
                                        ("2023-09-14", 4505.1), ("1995-03-01", 485.6)])
def test_strike_grid_shape(as_of, spot):
    g = strike_grid(spot, as_of, 35)
    assert np.all(np.diff(g) > 0)
    assert np.all(g % 5 == 0)
    assert g[0] <= 0.5 * spot + 25 and g[-1] >= 1.5 * spot - 25
    near = g[(g > 0.95 * spot) & (g < 1.05 * spot)]
    assert np.all(np.diff(near) == 5)
    far = g[g < 0.6 * spot]
    assert np.all(np.diff(far) == 25)
    far_dated = strike_grid(spot, as_of, 400)
    assert np.all(np.diff(far_dated) == 25)
    with pytest.raises(ValueError):
        strike_grid(spot, as_of, 35, root="VIX")


def test_strike_grid_wider_five_point_band_in_modern_era():
    old = strike_grid(1000.0, "2008-01-02", 30)
    new = strike_grid(1000.0, "2020-01-02", 30)
    assert 855 not in old and 855 in new
    assert 905 in old and 1095 in old and 1145 not in old and 1145 in new


@pytest.mark.parametrize("target,call", [(0.05, False), (0.10, False), (0.16, False), (0.20, False),
                                         (0.30, False), (0.05, True), (0.16, True), (0.25, True)])
@pytest.mark.parametrize("days", [7, 30, 45])
def test_strike_for_delta_within_one_grid_step(target, call, days):
    s = surface()
    T = days / 365
    grid = strike_grid(s.spot, "2023-09-14", days)
    K = strike_for_delta(s, T, target, call, grid)
    signed = target if call else -target
    exact = _strike_at_delta(s, T, signed, call)
    i = int(np.searchsorted(grid, exact))
    step = max(grid[min(i, len(grid) - 1)] - grid[max(i - 1, 0)], 5.0)
    assert abs(K - exact) <= step
    assert K in grid
    # it is the best grid strike
    d = s.delta(grid, T, call)
    assert abs(s.delta(K, T, call) - signed) == pytest.approx(np.min(np.abs(d - signed)))
    # the sign convention: a put target given as +0.16 or -0.16 means the same strike
    assert strike_for_delta(s, T, -target, call, grid) == K


def test_vix_strike_grid():
    g = vix_strike_grid(18.0)
    assert np.all(np.diff(g) > 0)
    assert np.all(np.diff(g[g < 15]) == 0.5)
    sel = g[(g >= 15) & (g <= 30)]
    assert np.all(np.diff(sel) == 1.0)
    sel = g[(g >= 30) & (g <= 50)]
    assert np.all(np.diff(sel) == 2.5)
    assert g[0] <= 0.4 * 18.0 + 0.5 and g[-1] >= 60
    assert {15.0, 18.0, 20.0, 25.0, 32.5, 55.0} <= set(g.tolist())
    g = vix_strike_grid(60.0)
    assert g[-1] >= 180 and np.all(np.diff(g[g > 50]) == 5)


def test_scalar_fast_price_matches_array_price():
    from engine.volsurface import SkewParams, SpxSurface

    s = SpxSurface(4500.0, 0.04, 0.015, [(9 / 365, 0.22), (30 / 365, 0.2), (91 / 365, 0.21)], SkewParams())
    for K in (3500.0, 4200.0, 4500.0, 4800.0, 5200.0):
        for T in (0.0, 2 / 365, 45 / 365, 0.7):
            for call in (True, False):
                assert s.price1(K, T, call) == pytest.approx(float(s.price(np.array([K]), np.array([T]), call)[0]), rel=1e-12, abs=1e-12)


def test_strike_search_matches_exhaustive_argmin():
    from engine.volsurface import SkewParams, SpxSurface

    for spot, vix in ((1250.0, 0.11), (2700.0, 0.35), (4500.0, 0.2), (6000.0, 0.65)):
        s = SpxSurface(spot, 0.03, 0.015, [(30 / 365, vix)], SkewParams())
        grid = strike_grid(spot, "2024-01-05", 45)
        for target in (0.05, 0.16, 0.2, 0.3):
            for call in (True, False):
                T = 45 / 365
                d = np.array([s.delta1(k, T, call) for k in grid])
                assert np.allclose(d, s.delta(grid, T, call), rtol=1e-10, atol=1e-12)
                want = float(grid[int(np.argmin(np.abs(d - (target if call else -target))))])
                assert strike_for_delta(s, T, target, call, grid) == want
