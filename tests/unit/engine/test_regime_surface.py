"""engine.regime_surface: the variance swap reproduces the index by construction, no static arbitrage on listed
strike grids (hypothesis), the fast paths agree with the exact ones, and the fitter's vectorised model is the
engine's model."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.pricing import bsm_greeks, bsm_price
from engine.regime_surface import (
    X_NODES,
    RegimeParams,
    RegimeSurface,
    SurfaceState,
    _g_on_nodes,
    _log_c_table,
    _node_theta,
    _wing_on_nodes,
    shape_f,
    slice_variance_swap,
    solve_theta,
    wing_m,
)
from engine.strikes import strike_grid

P = RegimeParams()   # the fitted defaults

def _state(vix, r9, r3, r6, vvix, skew) -> SurfaceState:
    """Index levels from VIX and term ratios (VIX9D/VIX, VIX3M/VIX, VIX6M/VIX3M) inside a margin around what
    2006-2025 shows: 0.66-1.59, 0.70-1.41, 0.80-1.25."""
    v3 = vix * r3 if not math.isnan(r3) else math.nan
    return SurfaceState(vix, vix * r9, v3, v3 * r6 if not math.isnan(v3) else math.nan, vvix, skew)


nan_or = lambda lo, hi: st.one_of(st.just(math.nan), st.floats(lo, hi))
states = st.builds(_state, st.floats(9.0, 85.0), nan_or(0.6, 1.7), nan_or(0.65, 1.5), st.floats(0.75, 1.3),
                   nan_or(55.0, 215.0), nan_or(100.0, 190.0))


def test_variance_swap_reproduces_the_index_at_each_tenor():
    s = RegimeSurface(4500.0, 0.04, 0.015, SurfaceState(18.0, 16.0, 20.0, 21.0, 95.0, 130.0))
    for days, level in ((9, 16.0), (30, 18.0), (91, 20.0), (182, 21.0)):
        T = days / 365.0
        assert s.index_vol(T) == pytest.approx(level / 100.0, rel=1e-12)
        # at 9 days the fitted short-term term scales the index variance (documented); from 30 days it is exact
        assert s.variance_swap_vol(T) == pytest.approx(math.sqrt(s.target_variance(T) / T), rel=1e-3)
    assert s.variance_swap_vol(30 / 365) == pytest.approx(0.18, rel=1e-3)
    # between tenors theta is interpolated (calendar-free by construction): the variance swap stays within 2 %
    # of the index's own linear interpolation
    for days in (14, 21, 45, 60, 120, 150):
        T = days / 365.0
        assert s.variance_swap_vol(T) == pytest.approx(math.sqrt(s.target_variance(T) / T), rel=2e-2)


@settings(max_examples=150, deadline=None)
@given(states)
def test_vix_by_construction_any_state(state):
    s = RegimeSurface(3000.0, 0.02, 0.018, state)
    assert s.variance_swap_vol(30 / 365) == pytest.approx(s.index_vol(30 / 365), rel=2e-3)


def test_theta_table_agrees_with_the_exact_solve():
    """The table Newton (fixed psi: the 30-day node's case) against the exact fixed point, over the table."""
    tab = _log_c_table(P)
    wing = _wing_on_nodes(P)
    rng = np.random.default_rng(20)
    worst, n = 0.0, 0
    while n < 400:
        rho, psi, target = rng.uniform(-0.98, 0.3), rng.uniform(0.05, 1.9), rng.uniform(1e-5, 0.3)
        a = 1 + abs(rho)
        if psi >= 0.99 * 0.995 * 2 / math.sqrt(a) or psi * math.sqrt(target) * a * P.wing_cap >= 3.7:
            continue   # outside the clamps psi would move with theta
        n += 1
        exact = float(solve_theta(target, _g_on_nodes(wing, rho, psi), iters=30))
        th = _node_theta(tab, target, rho, math.log(psi), P.psi_theta, None, P.wing_cap, math.log(target / 1.5))
        worst = max(worst, abs(th / exact - 1.0))
    assert worst < 1.5e-3, worst


def test_nodes_integrate_the_variance_swap():
    # the 48 Gauss-Legendre nodes against a 200,001-point trapezoid over the same range
    g_fine = np.linspace(-15.0, 5.0, 200_001)
    for rho, psi, th in ((-0.7, 1.2, 0.002), (-0.4, 1.6, 0.0004), (-0.9, 0.5, 0.05)):
        coarse = float(slice_variance_swap(th, shape_f(X_NODES, rho, psi) * wing_m(X_NODES, P)))
        s = math.sqrt(th)
        g = shape_f(g_fine, rho, psi) * wing_m(g_fine, P)
        k, v = g_fine * s, np.sqrt(th * g)
        from scipy.special import ndtr

        d1 = -k / v + 0.5 * v
        d2 = d1 - v
        y = np.where(g_fine < 0, ndtr(-d2) - np.exp(-k) * ndtr(-d1), np.exp(-k) * ndtr(d1) - ndtr(d2))
        fine = 2.0 * s * float(np.trapezoid(y, g_fine))
        assert coarse == pytest.approx(fine, rel=2e-5)


def test_scalar_and_vector_paths_agree():
    s = RegimeSurface(2700.0, 0.015, 0.019, SurfaceState(33.5, 41.4, 27.3, 25.0, 180.6, 130.9))
    K = np.array([2000.0, 2400.0, 2650.0, 2700.0, 2900.0, 3100.0])
    for T in (3 / 365, 20 / 365, 0.3):
        vec = s.vol(K, T)
        for k, v in zip(K, vec):
            assert s.vol(float(k), T) == pytest.approx(v, rel=1e-12)
            for call in (True, False):
                assert s.price1(float(k), T, call) == pytest.approx(bsm_price(2700.0, k, T, 0.015, 0.019, v, call), rel=1e-10)
                assert s.delta1(float(k), T, call) == pytest.approx(
                    bsm_greeks(2700.0, k, T, 0.015, 0.019, v, call).delta, abs=1e-12)
    assert s.vol(K[None, :], np.array([[20 / 365], [0.3]])).shape == (2, 6)


def _undiscounted_calls(s: RegimeSurface, K: np.ndarray, T: float) -> np.ndarray:
    F = s.forward(T)
    v = s.vol(K, T) * math.sqrt(T)
    from scipy.special import ndtr

    d1 = np.log(F / K) / v + 0.5 * v
    return F * ndtr(d1) - K * ndtr(d1 - v)


@settings(max_examples=120, deadline=None)
@given(states, st.integers(1, 120), st.integers(1, 200), st.sampled_from(["2008-10-15", "2013-06-20", "2020-03-16", "2024-08-05"]))
def test_no_static_arbitrage_on_listed_grids(state, d1, gap, day):
    """Butterflies (call prices convex in K, non-increasing) on the listed strike grid of each expiry, and calendars
    (total variance non-decreasing in T at the same forward moneyness) between two listed expiries."""
    spot = 2500.0
    s = RegimeSurface(spot, 0.02, 0.018, state)
    as_of = dt.date.fromisoformat(day)
    T1, T2 = d1 / 365.0, (d1 + gap) / 365.0
    for T, days in ((T1, d1), (T2, d1 + gap)):
        K = strike_grid(spot, as_of, days).astype(float)
        C = _undiscounted_calls(s, K, T)
        slope = np.diff(C) / np.diff(K)
        tol = 1e-9 * spot
        assert (slope <= tol).all() and (slope >= -1.0 - tol).all()
        assert (np.diff(slope) >= -1e-7).all(), f"butterfly < 0 at T={T:.4f}"
    K = strike_grid(spot, as_of, d1).astype(float)
    k = np.log(K / s.forward(T1))
    w1 = s.vol(s.forward(T1) * np.exp(k), T1) ** 2 * T1
    w2 = s.vol(s.forward(T2) * np.exp(k), T2) ** 2 * T2
    assert (w2 >= w1 * (1 - 1e-9)).all(), "calendar spread < 0"


def test_state_features_and_fallbacks():
    full = SurfaceState(20.0, 20.0, 20.0, 20.0, 100.0, 130.0).features()
    assert full == pytest.approx((0.0, 0.0, 0.0, 0.0, 0.0))
    bare = SurfaceState(20.0).features()
    assert bare[1] == bare[2] == bare[4] == 0.0
    assert bare[3] == pytest.approx(math.log(53.76 * 20.0 ** 0.1867 / 100.0), rel=1e-3)   # VVIX fallback
    assert SurfaceState(20.0, vvix=30.0).features()[3] == bare[3]                          # 2006 garbage VVIX
    with pytest.raises(ValueError):
        RegimeSurface(100.0, 0.0, 0.0, SurfaceState(math.nan))


def test_fitter_model_is_the_engine_model():
    import pandas as pd

    from analysis.surface_fit import FitData, model_iv

    states = {pd.Timestamp("2018-02-08"): SurfaceState(33.46, 41.44, 27.33, math.nan, 180.61, 130.92),
              pd.Timestamp("2023-09-14"): SurfaceState(12.82, 11.80, 15.34, 17.0, 82.48, 144.32)}
    rows, slices = [], []
    for i, (d, T) in enumerate([(pd.Timestamp("2018-02-08"), 20 / 365), (pd.Timestamp("2023-09-14"), 45 / 365)]):
        slices.append({"date": d, "T": T, "slice": i})
        for k in np.linspace(-0.3, 0.08, 9):
            rows.append({"date": d, "slice": i, "k": k, "T": T})
    data = FitData(pd.DataFrame(rows), pd.DataFrame(slices), states)
    iv = model_iv(P, data)
    for (_, r), v in zip(data.options.iterrows(), iv):
        s = RegimeSurface(1000.0, 0.0, 0.0, states[r["date"]])
        assert s.vol(1000.0 * math.exp(r["k"]), r["T"]) == pytest.approx(v, rel=1.5e-3)


def test_level_scale_moves_the_variance_swap_and_nothing_else():
    """level_scale multiplies the index levels the surface is pinned to: its 30-day variance swap is scale x VIX,
    its ATM vols scale with it, and scale 1 is the default surface to the last bit."""
    import dataclasses

    st = SurfaceState(12.0, 10.5, 14.0, 15.5, 88.0, 140.0)
    base = RegimeSurface(4700.0, 0.05, 0.014, st)
    one = RegimeSurface(4700.0, 0.05, 0.014, st, dataclasses.replace(P, level_scale=1.0))
    low = RegimeSurface(4700.0, 0.05, 0.014, st, dataclasses.replace(P, level_scale=0.97))
    K = np.array([4000.0, 4500.0, 4700.0, 4900.0])
    for T in (9 / 365, 30 / 365, 0.25):
        assert np.array_equal(one.vol(K, T), base.vol(K, T))
    assert low.variance_swap_vol(30 / 365) == pytest.approx(0.97 * 0.12, rel=2e-3)
    assert low.atm_vol(30 / 365) == pytest.approx(0.97 * base.atm_vol(30 / 365), rel=5e-3)
    assert (low.vol(K, 30 / 365) < base.vol(K, 30 / 365)).all()
