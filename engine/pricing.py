"""European option pricing: Black-Scholes-Merton (index with continuous dividend yield) and Black-76
(options on futures, used for VIX options on the VX future), greeks and implied volatility.

Conventions
-----------
* ``T`` in years, ``r`` and ``q`` continuously compounded, ``sigma`` annualised (0.20 = 20 %).
* Array arguments broadcast against each other (numpy rules).
* Return type: if every argument is a Python/numpy *scalar* the result is a Python ``float``
  (``Greeks`` of floats); if any argument is an ``np.ndarray`` (including 0-d) the result is an
  ``np.ndarray`` of the broadcast shape.  Scalar calls take a pure-``math`` fast path (~1 us) that is
  tested to agree with the vectorised path.
* ``T <= 0`` or ``sigma <= 0`` (more precisely total vol ``sigma*sqrt(T) < 1e-12``): the option is
  deterministic -> discounted intrinsic value of the forward (``T <= 0`` -> plain intrinsic);
  gamma, vega and the diffusion part of theta are 0, delta is the step function (0.5 exactly at the
  money).  No warnings are emitted.
* Greeks: ``vega`` per 1.00 of vol (divide by 100 for "per vol point"), ``theta`` = dV/dt per year
  (calendar time passing, i.e. -dV/dT; divide by 365 for per day), ``rho`` = dV/dr per 1.00 of rate.
  Black-76: delta and gamma are w.r.t. the futures price F (delta already discounted by e^{-rT});
  rho is taken with F held fixed (= -T * price).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = [
    "Greeks",
    "black76_greeks",
    "black76_price",
    "bsm_greeks",
    "bsm_price",
    "forward",
    "implied_vol",
    "tbill_discount_to_cont",
]

_TINY_V = 1e-12  # total volatility sigma*sqrt(T) below which an option is treated as deterministic
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SCALAR_TYPES = (int, float, bool, np.integer, np.floating, np.bool_)


class Greeks(NamedTuple):
    delta: np.ndarray | float
    gamma: np.ndarray | float
    vega: np.ndarray | float
    theta: np.ndarray | float
    rho: np.ndarray | float


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _all_scalar(*args) -> bool:
    for a in args:
        if not isinstance(a, _SCALAR_TYPES):
            return False
    return True


def _ncdf(x: float) -> float:
    return 0.5 * math.erfc(-x / _SQRT2)


def _npdf(x: float) -> float:
    if math.isinf(x):
        return 0.0
    return _INV_SQRT_2PI * math.exp(-0.5 * x * x)


def _d1d2_scalar(F: float, K: float, v: float) -> tuple[float, float]:
    if v > _TINY_V:
        d1 = math.log(F / K) / v + 0.5 * v
        return d1, d1 - v
    if F > K:
        return math.inf, math.inf
    if F < K:
        return -math.inf, -math.inf
    return 0.0, 0.0


def _d1d2(F, K, v):
    """Vectorised d1, d2 (with the deterministic limit for tiny total vol). Returns d1, d2, pos-mask."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        x = np.log(F / K)
        pos = v > _TINY_V
        vs = np.where(pos, v, 1.0)
        lim = np.where(x > 0, np.inf, np.where(x < 0, -np.inf, 0.0))
        d1 = np.where(pos, x / vs + 0.5 * vs, lim)
        d2 = np.where(pos, d1 - vs, lim)
    return d1, d2, pos


def _npdf_arr(d):
    with np.errstate(over="ignore", invalid="ignore"):
        out = _INV_SQRT_2PI * np.exp(-0.5 * d * d)
    return np.where(np.isfinite(d), out, 0.0)


def _as_arrays(*args):
    return [np.asarray(a, dtype=float) for a in args]


def forward(S, T, r, q):
    """Forward price of an index paying a continuous dividend yield: S * exp((r - q) T)."""
    if _all_scalar(S, T, r, q):
        return float(S) * math.exp((float(r) - float(q)) * float(T))
    S, T, r, q = _as_arrays(S, T, r, q)
    return np.asarray(S * np.exp((r - q) * T))


def tbill_discount_to_cont(discount_yield, days: float = 91.0):
    """Convert a T-bill *discount* yield (decimal, e.g. FRED DTB3 / 100) to a continuously
    compounded rate: price P = 1 - d * days / 360, r = -ln(P) * 365 / days."""
    if _all_scalar(discount_yield):
        p = 1.0 - float(discount_yield) * days / 360.0
        return -math.log(p) * 365.0 / days
    d = np.asarray(discount_yield, dtype=float)
    return np.asarray(-np.log(1.0 - d * days / 360.0) * 365.0 / days)


# ----------------------------------------------------------------------------------------------
# undiscounted Black core (shared by BSM and Black-76)
# ----------------------------------------------------------------------------------------------
def _black_undisc_scalar(F: float, K: float, v: float, call: bool) -> float:
    if v <= _TINY_V:
        return max(F - K, 0.0) if call else max(K - F, 0.0)
    d1 = math.log(F / K) / v + 0.5 * v
    d2 = d1 - v
    if call:
        return F * _ncdf(d1) - K * _ncdf(d2)
    return K * _ncdf(-d2) - F * _ncdf(-d1)


def _black_undisc(F, K, v, call):
    d1, d2, _ = _d1d2(F, K, v)
    w = np.where(call, 1.0, -1.0)
    with np.errstate(invalid="ignore"):
        out = w * (F * ndtr(w * d1) - K * ndtr(w * d2))
    return np.maximum(out, 0.0)


# ----------------------------------------------------------------------------------------------
# Black-Scholes-Merton
# ----------------------------------------------------------------------------------------------
def bsm_price(S, K, T, r, q, sigma, is_call):
    """Black-Scholes-Merton price of a European option on an index with continuous dividend yield q."""
    if _all_scalar(S, K, T, r, q, sigma, is_call):
        T = max(float(T), 0.0)
        sig = max(float(sigma), 0.0)
        F = float(S) * math.exp((r - q) * T)
        return math.exp(-r * T) * _black_undisc_scalar(F, float(K), sig * math.sqrt(T), bool(is_call))
    S, K, T, r, q, sigma = _as_arrays(S, K, T, r, q, sigma)
    call = np.asarray(is_call, dtype=bool)
    T = np.maximum(T, 0.0)
    F = S * np.exp((r - q) * T)
    v = np.maximum(sigma, 0.0) * np.sqrt(T)
    return np.asarray(np.exp(-r * T) * _black_undisc(F, K, v, call))


def _bsm_greeks_scalar(S, K, T, r, q, sigma, call) -> Greeks:
    T = max(T, 0.0)
    sigma = max(sigma, 0.0)
    sq = math.sqrt(T)
    v = sigma * sq
    dfr = math.exp(-r * T)
    dfq = math.exp(-q * T)
    F = S * math.exp((r - q) * T)
    d1, d2 = _d1d2_scalar(F, K, v)
    w = 1.0 if call else -1.0
    nd1w = _ncdf(w * d1)
    nd2w = _ncdf(w * d2)
    delta = w * dfq * nd1w
    if v > _TINY_V:
        pdf = _npdf(d1)
        gamma = dfq * pdf / (S * v)
        vega = S * dfq * pdf * sq
        diff_theta = -S * dfq * pdf * sigma / (2.0 * sq)
    else:
        gamma = vega = diff_theta = 0.0
    theta = diff_theta - w * r * K * dfr * nd2w + w * q * S * dfq * nd1w
    rho = w * K * T * dfr * nd2w
    return Greeks(delta, gamma, vega, theta, rho)


def bsm_greeks(S, K, T, r, q, sigma, is_call) -> Greeks:
    """BSM delta, gamma, vega (per 1.00 vol), theta (per year), rho (per 1.00 rate)."""
    if _all_scalar(S, K, T, r, q, sigma, is_call):
        return _bsm_greeks_scalar(float(S), float(K), float(T), float(r), float(q), float(sigma),
                                  bool(is_call))
    S, K, T, r, q, sigma = _as_arrays(S, K, T, r, q, sigma)
    call = np.asarray(is_call, dtype=bool)
    T = np.maximum(T, 0.0)
    sigma = np.maximum(sigma, 0.0)
    sq = np.sqrt(T)
    v = sigma * sq
    dfr = np.exp(-r * T)
    dfq = np.exp(-q * T)
    F = S * np.exp((r - q) * T)
    d1, d2, pos = _d1d2(F, K, v)
    w = np.where(call, 1.0, -1.0)
    nd1w = ndtr(w * d1)
    nd2w = ndtr(w * d2)
    pdf = _npdf_arr(d1)
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = np.where(pos, dfq * pdf / (S * np.where(pos, v, 1.0)), 0.0)
        vega = np.where(pos, S * dfq * pdf * sq, 0.0)
        diff_theta = np.where(pos, -S * dfq * pdf * sigma / (2.0 * np.where(pos, sq, 1.0)), 0.0)
    delta = w * dfq * nd1w
    theta = diff_theta - w * r * K * dfr * nd2w + w * q * S * dfq * nd1w
    rho = w * K * T * dfr * nd2w
    shape = np.broadcast_shapes(S.shape, K.shape, T.shape, r.shape, q.shape, sigma.shape, call.shape)
    return Greeks(*(np.broadcast_to(g, shape).copy() for g in (delta, gamma, vega, theta, rho)))


# ----------------------------------------------------------------------------------------------
# Black-76 (options on futures)
# ----------------------------------------------------------------------------------------------
def black76_price(F, K, T, r, sigma, is_call):
    """Black-76 price of a European option on a futures price F (discounted at r)."""
    if _all_scalar(F, K, T, r, sigma, is_call):
        T = max(float(T), 0.0)
        sig = max(float(sigma), 0.0)
        return math.exp(-r * T) * _black_undisc_scalar(float(F), float(K), sig * math.sqrt(T),
                                                       bool(is_call))
    F, K, T, r, sigma = _as_arrays(F, K, T, r, sigma)
    call = np.asarray(is_call, dtype=bool)
    T = np.maximum(T, 0.0)
    v = np.maximum(sigma, 0.0) * np.sqrt(T)
    return np.asarray(np.exp(-r * T) * _black_undisc(F, K, v, call))


def _black76_greeks_scalar(F, K, T, r, sigma, call) -> Greeks:
    T = max(T, 0.0)
    sigma = max(sigma, 0.0)
    sq = math.sqrt(T)
    v = sigma * sq
    df = math.exp(-r * T)
    d1, d2 = _d1d2_scalar(F, K, v)
    w = 1.0 if call else -1.0
    nd1w = _ncdf(w * d1)
    nd2w = _ncdf(w * d2)
    price = df * max(w * (F * nd1w - K * nd2w), 0.0)
    delta = w * df * nd1w
    if v > _TINY_V:
        pdf = _npdf(d1)
        gamma = df * pdf / (F * v)
        vega = df * F * pdf * sq
        diff_theta = -df * F * pdf * sigma / (2.0 * sq)
    else:
        gamma = vega = diff_theta = 0.0
    theta = diff_theta + r * price
    rho = -T * price
    return Greeks(delta, gamma, vega, theta, rho)


def black76_greeks(F, K, T, r, sigma, is_call) -> Greeks:
    """Black-76 greeks; delta/gamma w.r.t. F (discounted), vega per 1.00 vol, theta per year."""
    if _all_scalar(F, K, T, r, sigma, is_call):
        return _black76_greeks_scalar(float(F), float(K), float(T), float(r), float(sigma),
                                      bool(is_call))
    F, K, T, r, sigma = _as_arrays(F, K, T, r, sigma)
    call = np.asarray(is_call, dtype=bool)
    T = np.maximum(T, 0.0)
    sigma = np.maximum(sigma, 0.0)
    sq = np.sqrt(T)
    v = sigma * sq
    df = np.exp(-r * T)
    d1, d2, pos = _d1d2(F, K, v)
    w = np.where(call, 1.0, -1.0)
    nd1w = ndtr(w * d1)
    nd2w = ndtr(w * d2)
    price = df * np.maximum(w * (F * nd1w - K * nd2w), 0.0)
    pdf = _npdf_arr(d1)
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = np.where(pos, df * pdf / (F * np.where(pos, v, 1.0)), 0.0)
        vega = np.where(pos, df * F * pdf * sq, 0.0)
        diff_theta = np.where(pos, -df * F * pdf * sigma / (2.0 * np.where(pos, sq, 1.0)), 0.0)
    delta = w * df * nd1w
    theta = diff_theta + r * price
    rho = -T * price
    shape = np.broadcast_shapes(F.shape, K.shape, T.shape, r.shape, sigma.shape, call.shape)
    return Greeks(*(np.broadcast_to(g, shape).copy() for g in (delta, gamma, vega, theta, rho)))


# ----------------------------------------------------------------------------------------------
# implied volatility
# ----------------------------------------------------------------------------------------------
def _otm_value(F, K, v, theta):
    """Undiscounted value of the OTM option (theta=+1 call, -1 put) and its vega dV/dv."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        x = np.log(F / K)
        d1 = x / v + 0.5 * v
        d2 = d1 - v
        val = theta * (F * ndtr(theta * d1) - K * ndtr(theta * d2))
        vega = F * _INV_SQRT_2PI * np.exp(-0.5 * d1 * d1)
    return np.maximum(val, 0.0), vega


def implied_vol(price, S, K, T, r, q=0.0, is_call=True, *, model: str = "bsm", tol: float = 1e-8,
                max_iter: int = 100):
    """Implied volatility, vectorised.

    model='bsm': S is the spot, q the dividend yield.  model='black76': S is the futures price F and
    q is ignored.  Returns NaN where the price is outside the no-arbitrage bounds
    [discounted intrinsic, discounted upper bound) or T <= 0; returns 0.0 when the price equals the
    discounted intrinsic value (within ``tol``).  The solved vol reprices to within ``tol`` (absolute,
    in price units) or the result is NaN.

    Method: the price is reduced (put-call parity) to the undiscounted *out-of-the-money* option value,
    and solved for total vol v = sigma*sqrt(T) by safeguarded Newton started at the inflection point
    v* = sqrt(2|ln(F/K)|) (Manaster-Koehler), in log-price below v* (convex branch) and in price
    above it (concave branch); a bracket is maintained and bisection replaces steps that leave it.
    """
    scalar = _all_scalar(price, S, K, T, r, q, is_call)
    price, S, K, T, r, q = _as_arrays(price, S, K, T, r, q)
    call = np.asarray(is_call, dtype=bool)
    shape = np.broadcast_shapes(price.shape, S.shape, K.shape, T.shape, r.shape, q.shape, call.shape)
    price, S, K, T, r, q, call = (np.broadcast_to(a, shape).ravel() for a in (price, S, K, T, r, q, call))
    if model == "bsm":
        F = S * np.exp((r - q) * T)
    elif model == "black76":
        F = S.astype(float, copy=True)
    else:
        raise ValueError(f"unknown model {model!r}")
    with np.errstate(invalid="ignore", over="ignore"):
        df = np.exp(-r * np.where(T > 0, T, 0.0))
        u = price / df
        lower = np.where(call, np.maximum(F - K, 0.0), np.maximum(K - F, 0.0))
        upper = np.where(call, F, K)
        tv = u - lower  # undiscounted value of the OTM option of the same strike
        tol_u = tol / df
        valid = (
            (T > 0) & np.isfinite(u) & (F > 0) & (K > 0) & np.isfinite(F) & np.isfinite(K)
            & (tv >= -tol_u) & (u < upper)
        )
    out = np.full(shape, np.nan).ravel()
    zero = valid & (tv <= tol_u)
    out[zero] = 0.0
    idx = np.nonzero(valid & ~zero)[0]
    if idx.size:
        Fi, Ki, tvi, Ti = F[idx], K[idx], tv[idx], T[idx]
        tol_i = tol_u[idx]
        x = np.log(Fi / Ki)
        th = np.where(x > 0, -1.0, 1.0)  # OTM type: call if K >= F else put
        v_star = np.sqrt(2.0 * np.abs(x))
        b_star, _ = _otm_value(Fi, Ki, np.where(v_star > 0, v_star, 1.0), th)
        b_star = np.where(v_star > 0, b_star, 0.0)
        lower_branch = tvi < b_star  # root below the inflection point
        lo = np.where(lower_branch, 0.0, v_star)
        hi = np.where(lower_branch, v_star, np.inf)
        # start: Corrado-Miller approximation when it falls inside the bracket, else the inflection
        # point (from which plain Newton converges monotonically), or the exact ATM inversion (x == 0)
        c_call = tvi + np.maximum(Fi - Ki, 0.0)
        h = c_call - 0.5 * (Fi - Ki)
        cm = math.sqrt(2.0 * math.pi) / (Fi + Ki) * (h + np.sqrt(np.maximum(h * h - (Fi - Ki) ** 2 / math.pi, 0.0)))
        atm_guess = 2.0 * ndtri(np.clip(0.5 + 0.5 * tvi / Fi, 0.5, 1.0 - 1e-16))
        v = np.where(v_star > 0, v_star, np.maximum(atm_guess, 1e-8))
        use_cm = np.isfinite(cm) & (cm > lo) & (cm < hi) & (v_star > 0)
        v = np.where(use_cm, cm, v)
        res = np.full(idx.size, np.nan)
        active = np.ones(idx.size, dtype=bool)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            log_tv = np.log(tvi)
            for _ in range(max_iter):
                a = np.nonzero(active)[0]
                if a.size == 0:
                    break
                va = v[a]
                val, vega = _otm_value(Fi[a], Ki[a], va, th[a])
                err = val - tvi[a]
                done = (np.abs(err) <= 1e-3 * tol_i[a]) | (np.abs(err) <= 1e-14 * tvi[a])
                # bracket update
                above = err > 0
                hi[a] = np.where(above, np.minimum(hi[a], va), hi[a])
                lo[a] = np.where(~above, np.maximum(lo[a], va), lo[a])
                lb = lower_branch[a] & (val > 0)
                step = np.where(lb, (np.log(val) - log_tv[a]) * val / vega, err / vega)
                vn = va - step
                h = hi[a]
                l_ = lo[a]
                bad = ~np.isfinite(vn) | (vn <= l_) | (vn >= h)
                bis = np.where(np.isfinite(h), 0.5 * (l_ + h), 2.0 * np.maximum(va, l_) + 0.1)
                vn = np.where(bad, bis, vn)
                stalled = np.abs(vn - va) <= 4e-16 * np.maximum(va, 1e-300)
                finished = done | stalled
                res[a[finished]] = va[finished]
                v[a] = vn
                active[a[finished]] = False
            # any still-active: take the last iterate
            res = np.where(active, v, res)
            val, _ = _otm_value(Fi, Ki, res, th)
            ok = np.abs(val - tvi) * df[idx] <= tol
            out[idx] = np.where(ok, res / np.sqrt(Ti), np.nan)
    out = out.reshape(shape)
    if scalar:
        return float(out)
    return out
