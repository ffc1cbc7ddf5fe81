"""Tests for engine.pricing: textbook values, parity, greeks vs finite differences, implied vol."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine.pricing import (
    Greeks,
    black76_greeks,
    black76_price,
    bsm_greeks,
    bsm_price,
    forward,
    implied_vol,
    tbill_discount_to_cont,
)

# ---------------------------------------------------------------------------------------------
# published textbook values
# ---------------------------------------------------------------------------------------------


def test_hull_bsm_example():
    # Hull, Options Futures and Other Derivatives, Example 15.6: S=42, K=40, r=10%, T=0.5, vol 20%
    assert bsm_price(42.0, 40.0, 0.5, 0.10, 0.0, 0.20, True) == pytest.approx(4.76, abs=0.005)
    assert bsm_price(42.0, 40.0, 0.5, 0.10, 0.0, 0.20, False) == pytest.approx(0.81, abs=0.005)


def test_haug_merton_dividend_put():
    # Haug, The Complete Guide to Option Pricing Formulas, 1.1.2 (Merton 1973): put = 2.4648
    assert bsm_price(100.0, 95.0, 0.5, 0.10, 0.05, 0.20, False) == pytest.approx(2.4648, abs=5e-5)


def test_haug_black_scholes_call():
    # Haug 1.1.1: S=60, X=65, T=0.25, r=8%, vol 30% -> call 2.1334
    assert bsm_price(60.0, 65.0, 0.25, 0.08, 0.0, 0.30, True) == pytest.approx(2.1334, abs=5e-5)


def test_hull_black76_put():
    # Hull Example 18.? (Black's model): F=20, K=20, r=9%, T=4 months, vol 25% -> put 1.12
    assert black76_price(20.0, 20.0, 4 / 12, 0.09, 0.25, False) == pytest.approx(1.12, abs=0.005)


def test_haug_black76_atm():
    # Haug 1.1.4 (Black 1976): F=19, X=19, T=0.75, r=10%, vol 28% -> call = put = 1.7011
    c = black76_price(19.0, 19.0, 0.75, 0.10, 0.28, True)
    p = black76_price(19.0, 19.0, 0.75, 0.10, 0.28, False)
    assert c == pytest.approx(1.7011, abs=5e-5)
    assert p == pytest.approx(1.7011, abs=5e-5)


def test_hull_greeks_example():
    # Hull's running example (Tables 19.x): S=49, K=50, r=5%, vol 20%, T=20 weeks
    g = bsm_greeks(49.0, 50.0, 20 / 52, 0.05, 0.0, 0.20, True)
    assert g.delta == pytest.approx(0.522, abs=0.001)
    assert g.gamma == pytest.approx(0.066, abs=0.001)
    assert g.vega == pytest.approx(12.1, abs=0.05)
    assert g.theta == pytest.approx(-4.31, abs=0.01)
    assert g.rho == pytest.approx(8.91, abs=0.01)
    assert bsm_price(49.0, 50.0, 20 / 52, 0.05, 0.0, 0.20, True) == pytest.approx(2.40, abs=0.005)


# ---------------------------------------------------------------------------------------------
# conventions, scalar vs array, degenerate inputs
# ---------------------------------------------------------------------------------------------


def test_return_types_are_consistent():
    assert isinstance(bsm_price(100.0, 100.0, 1.0, 0.01, 0.0, 0.2, True), float)
    assert isinstance(bsm_price(100, 100, 1, 0, 0, 0.2, np.bool_(True)), float)
    out = bsm_price(np.array(100.0), 100.0, 1.0, 0.01, 0.0, 0.2, True)
    assert isinstance(out, np.ndarray) and out.shape == ()
    out = bsm_price(100.0, np.array([90.0, 100.0, 110.0]), 1.0, 0.01, 0.0, 0.2, True)
    assert out.shape == (3,)
    g = bsm_greeks(100.0, np.array([90.0, 110.0]), 1.0, 0.01, 0.0, 0.2, [True, False])
    assert isinstance(g, Greeks) and all(x.shape == (2,) for x in g)
    assert isinstance(implied_vol(10.0, 100.0, 100.0, 1.0, 0.0, 0.0, True), float)
    assert isinstance(forward(100.0, 1.0, 0.05, 0.01), float)


def test_broadcasting_grid():
    K = np.linspace(50, 150, 11)[:, None]
    T = np.array([0.1, 0.5, 1.0])[None, :]
    p = bsm_price(100.0, K, T, 0.03, 0.01, 0.25, True)
    assert p.shape == (11, 3)
    assert np.all(np.diff(p, axis=0) < 0)  # calls decrease in strike
    assert np.all(np.diff(p, axis=1) > 0)  # and increase in maturity (q < r)


@given(
    S=st.floats(50, 200), K=st.floats(25, 400), T=st.floats(0.0, 3.0), r=st.floats(-0.02, 0.1),
    q=st.floats(0, 0.06), sigma=st.floats(0.0, 2.0), call=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_scalar_path_matches_vector_path(S, K, T, r, q, sigma, call):
    a = bsm_price(S, K, T, r, q, sigma, call)
    b = float(bsm_price(np.array(S), K, T, r, q, sigma, call))
    assert a == pytest.approx(b, rel=1e-12, abs=1e-12)
    ga = bsm_greeks(S, K, T, r, q, sigma, call)
    gb = bsm_greeks(np.array(S), K, T, r, q, sigma, call)
    for x, y in zip(ga, gb):
        assert x == pytest.approx(float(y), rel=1e-10, abs=1e-10)
    a = black76_price(S, K, T, r, sigma, call)
    b = float(black76_price(np.array(S), K, T, r, sigma, call))
    assert a == pytest.approx(b, rel=1e-12, abs=1e-12)
    ga = black76_greeks(S, K, T, r, sigma, call)
    gb = black76_greeks(np.array(S), K, T, r, sigma, call)
    for x, y in zip(ga, gb):
        assert x == pytest.approx(float(y), rel=1e-10, abs=1e-10)


def test_expiry_and_zero_vol_limits_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # T = 0: intrinsic, undiscounted
        assert bsm_price(105.0, 100.0, 0.0, 0.05, 0.0, 0.2, True) == 5.0
        assert bsm_price(95.0, 100.0, 0.0, 0.05, 0.0, 0.2, True) == 0.0
        assert bsm_price(95.0, 100.0, 0.0, 0.05, 0.0, 0.2, False) == 5.0
        arr = bsm_price(np.array([95.0, 100.0, 105.0]), 100.0, 0.0, 0.05, 0.0, 0.2, True)
        np.testing.assert_allclose(arr, [0.0, 0.0, 5.0])
        # negative T treated as expired
        assert bsm_price(105.0, 100.0, -0.1, 0.05, 0.0, 0.2, True) == 5.0
        # sigma = 0: discounted forward intrinsic
        F = 100.0 * math.exp(0.05 - 0.01)
        assert bsm_price(100.0, 90.0, 1.0, 0.05, 0.01, 0.0, True) == pytest.approx(
            math.exp(-0.05) * (F - 90.0), rel=1e-14)
        assert bsm_price(100.0, 120.0, 1.0, 0.05, 0.01, 0.0, True) == 0.0
        # tiny T approaches intrinsic continuously
        assert bsm_price(105.0, 100.0, 1e-12, 0.05, 0.0, 0.2, True) == pytest.approx(5.0, abs=1e-6)
        g = bsm_greeks(np.array([95.0, 100.0, 105.0]), 100.0, 0.0, 0.05, 0.0, 0.2, True)
        np.testing.assert_allclose(g.delta, [0.0, 0.5, 1.0])
        np.testing.assert_allclose(g.gamma, 0.0)
        np.testing.assert_allclose(g.vega, 0.0)
        g = black76_greeks(np.array([15.0, 25.0]), 20.0, 0.5, 0.05, 0.0, False)
        np.testing.assert_allclose(g.delta, [-math.exp(-0.025), 0.0])
        assert black76_price(20.0, 20.0, 0.0, 0.05, 0.5, True) == 0.0


def test_forward_and_tbill_conversion():
    assert forward(100.0, 2.0, 0.05, 0.02) == pytest.approx(100 * math.exp(0.06))
    # 5 % discount yield on a 91-day bill: price 0.987361, continuous rate ~5.10 %
    r = tbill_discount_to_cont(0.05, 91)
    assert r == pytest.approx(-math.log(1 - 0.05 * 91 / 360) * 365 / 91)
    assert 0.0505 < r < 0.0515
    np.testing.assert_allclose(tbill_discount_to_cont(np.array([0.0, 0.05])), [0.0, r])


# ---------------------------------------------------------------------------------------------
# put-call parity (property)
# ---------------------------------------------------------------------------------------------
moneyness = st.floats(0.5, 2.0)
vols = st.floats(0.05, 2.0)
mats = st.floats(1 / 365, 3.0)
rates = st.floats(-0.01, 0.08)
divs = st.floats(0.0, 0.05)


@given(m=moneyness, T=mats, r=rates, q=divs, sigma=vols)
@settings(max_examples=300, deadline=None)
def test_bsm_put_call_parity(m, T, r, q, sigma):
    S = 100.0
    K = S * m
    c = bsm_price(S, K, T, r, q, sigma, True)
    p = bsm_price(S, K, T, r, q, sigma, False)
    assert c - p == pytest.approx(S * math.exp(-q * T) - K * math.exp(-r * T), abs=1e-9 * S)
    g_c = bsm_greeks(S, K, T, r, q, sigma, True)
    g_p = bsm_greeks(S, K, T, r, q, sigma, False)
    assert g_c.delta - g_p.delta == pytest.approx(math.exp(-q * T), abs=1e-12)
    assert g_c.gamma == pytest.approx(g_p.gamma, rel=1e-12, abs=1e-15)
    assert g_c.vega == pytest.approx(g_p.vega, rel=1e-12, abs=1e-15)


@given(m=moneyness, T=mats, r=rates, sigma=vols)
@settings(max_examples=300, deadline=None)
def test_black76_put_call_parity(m, T, r, sigma):
    F = 20.0
    K = F * m
    c = black76_price(F, K, T, r, sigma, True)
    p = black76_price(F, K, T, r, sigma, False)
    assert c - p == pytest.approx(math.exp(-r * T) * (F - K), abs=1e-10 * F)


# ---------------------------------------------------------------------------------------------
# greeks vs central finite differences
# ---------------------------------------------------------------------------------------------
FD_CASES = [
    # S, K, T, r, q, sigma, call
    (100.0, 100.0, 0.5, 0.05, 0.02, 0.25, True),
    (100.0, 100.0, 0.5, 0.05, 0.02, 0.25, False),
    (4500.0, 4200.0, 35 / 365, 0.045, 0.015, 0.22, False),
    (4500.0, 4700.0, 35 / 365, 0.045, 0.015, 0.12, True),
    (100.0, 60.0, 2.0, 0.01, 0.03, 0.6, False),
    (100.0, 150.0, 1.0, 0.08, 0.0, 0.4, True),
    (18.0, 25.0, 30 / 365, 0.05, 0.0, 1.1, True),
]


def _fd(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)


@pytest.mark.parametrize("S,K,T,r,q,sigma,call", FD_CASES)
def test_bsm_greeks_match_finite_differences(S, K, T, r, q, sigma, call):
    g = bsm_greeks(S, K, T, r, q, sigma, call)
    hS = S * 1e-5
    assert g.delta == pytest.approx(_fd(lambda x: bsm_price(x, K, T, r, q, sigma, call), S, hS), rel=1e-6, abs=1e-8)
    assert g.gamma == pytest.approx(
        _fd(lambda x: bsm_greeks(x, K, T, r, q, sigma, call).delta, S, hS), rel=1e-5, abs=1e-8)
    assert g.vega == pytest.approx(_fd(lambda x: bsm_price(S, K, T, r, q, x, call), sigma, 1e-5), rel=1e-6, abs=1e-7)
    assert g.theta == pytest.approx(-_fd(lambda x: bsm_price(S, K, x, r, q, sigma, call), T, 1e-6), rel=1e-5, abs=1e-6)
    assert g.rho == pytest.approx(_fd(lambda x: bsm_price(S, K, T, x, q, sigma, call), r, 1e-6), rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("F,K,T,r,_q,sigma,call", FD_CASES)
def test_black76_greeks_match_finite_differences(F, K, T, r, _q, sigma, call):
    g = black76_greeks(F, K, T, r, sigma, call)
    hF = F * 1e-5
    assert g.delta == pytest.approx(_fd(lambda x: black76_price(x, K, T, r, sigma, call), F, hF), rel=1e-6, abs=1e-8)
    assert g.gamma == pytest.approx(
        _fd(lambda x: black76_greeks(x, K, T, r, sigma, call).delta, F, hF), rel=1e-5, abs=1e-8)
    assert g.vega == pytest.approx(_fd(lambda x: black76_price(F, K, T, r, x, call), sigma, 1e-5), rel=1e-6, abs=1e-7)
    assert g.theta == pytest.approx(-_fd(lambda x: black76_price(F, K, x, r, sigma, call), T, 1e-6), rel=1e-5, abs=1e-6)
    assert g.rho == pytest.approx(_fd(lambda x: black76_price(F, K, T, x, sigma, call), r, 1e-6), rel=1e-6, abs=1e-6)


# ---------------------------------------------------------------------------------------------
# implied volatility
# ---------------------------------------------------------------------------------------------


@given(m=moneyness, T=mats, r=rates, q=divs, sigma=vols, call=st.booleans())
@settings(max_examples=500, deadline=None)
def test_bsm_implied_vol_round_trip(m, T, r, q, sigma, call):
    S = 100.0
    K = S * m
    price = bsm_price(S, K, T, r, q, sigma, call)
    iv = implied_vol(price, S, K, T, r, q, call)
    vega = bsm_greeks(S, K, T, r, q, sigma, call).vega
    if not math.isnan(iv):  # whenever a vol is returned it reprices within tolerance
        assert abs(bsm_price(S, K, T, r, q, iv, call) - price) <= 1e-8
    assume(vega > 1e-2)  # round trip in vol only where vega is non-negligible
    assert iv == pytest.approx(sigma, abs=1e-6)


@given(m=moneyness, T=mats, r=rates, sigma=vols, call=st.booleans())
@settings(max_examples=300, deadline=None)
def test_black76_implied_vol_round_trip(m, T, r, sigma, call):
    F = 20.0
    K = F * m
    price = black76_price(F, K, T, r, sigma, call)
    iv = implied_vol(price, F, K, T, r, 0.123, call, model="black76")  # q ignored for black76
    if not math.isnan(iv):
        assert abs(black76_price(F, K, T, r, iv, call) - price) <= 1e-8
    assume(black76_greeks(F, K, T, r, sigma, call).vega > 1e-3)
    assert iv == pytest.approx(sigma, abs=1e-6)


def test_implied_vol_vectorised_matches_scalar():
    rng = np.random.default_rng(7)
    n = 2000
    S = 4500.0
    K = S * np.exp(rng.uniform(-0.5, 0.3, n))
    T = rng.uniform(2 / 365, 1.0, n)
    sig = rng.uniform(0.08, 0.9, n)
    call = rng.random(n) < 0.5
    price = bsm_price(S, K, T, 0.04, 0.015, sig, call)
    iv = implied_vol(price, S, K, T, 0.04, 0.015, call)
    vega = bsm_greeks(S, K, T, 0.04, 0.015, sig, call).vega
    ok = vega > 1e-2
    np.testing.assert_allclose(iv[ok], sig[ok], atol=1e-6)
    for i in range(0, n, 200):
        assert implied_vol(float(price[i]), S, float(K[i]), float(T[i]), 0.04, 0.015, bool(call[i])) == \
            pytest.approx(float(iv[i]), abs=1e-12, nan_ok=True)


def test_implied_vol_no_arbitrage_bounds():
    S, K, T, r, q = 100.0, 90.0, 0.5, 0.05, 0.02
    disc_intr_call = S * math.exp(-q * T) - K * math.exp(-r * T)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(implied_vol(disc_intr_call - 0.01, S, K, T, r, q, True))   # below intrinsic
        assert math.isnan(implied_vol(S * math.exp(-q * T) + 0.01, S, K, T, r, q, True))  # above S e^{-qT}
        assert math.isnan(implied_vol(K * math.exp(-r * T), S, K, T, r, q, False))  # put at its upper bound
        assert math.isnan(implied_vol(-1.0, S, 110.0, T, r, q, True))
        assert math.isnan(implied_vol(5.0, S, K, 0.0, r, q, True))                  # expired
        assert implied_vol(disc_intr_call, S, K, T, r, q, True) == 0.0              # zero time value
        out = implied_vol(np.array([np.nan, 1.0, 200.0]), S, K, T, r, q, False)
        assert math.isnan(out[0]) and out[1] > 0 and math.isnan(out[2])
    with pytest.raises(ValueError):
        implied_vol(1.0, S, K, T, r, q, True, model="heston")


def test_implied_vol_extreme_but_valid():
    # deep OTM 1-day put with a tiny but informative price, and a very high vol
    S, K, T = 4500.0, 4000.0, 1 / 365
    p = bsm_price(S, K, T, 0.05, 0.015, 0.9, False)
    assert implied_vol(p, S, K, T, 0.05, 0.015, False) == pytest.approx(0.9, abs=1e-6)
    p = bsm_price(100.0, 100.0, 1.0, 0.0, 0.0, 4.0, True)
    assert implied_vol(p, 100.0, 100.0, 1.0, 0.0, 0.0, True) == pytest.approx(4.0, abs=1e-5)
