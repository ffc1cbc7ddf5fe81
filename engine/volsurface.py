"""Implied-volatility models used to mark options when no option quotes exist.

* ``SpxSurface``: SPX implied vol from the Cboe volatility indices (VIX9D, VIX, VIX3M, VIX6M),
  which are variance-swap-style 'model-free' vols.  Term structure: linear interpolation of total
  variance between the index points, flat vol outside.  ATM vol = ratio(T) * index vol; a
  parametric skew in standardised log-moneyness z = ln(K/F) / (atm * sqrt(T)) is applied on top.
* ``VixOptionSurface``: vol of VIX options (Black-76 on the VX future of the same expiry) from VVIX
  with a power-law term structure and an upward (call) skew.

Default parameters and their calibration are documented in docs/pricing.md.  Both classes have
pure-``math`` fast paths for scalar (K, T) so that single-option marks cost a few microseconds.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from engine.pricing import (
    Greeks,
    _all_scalar,
    _black_undisc_scalar,
    _ncdf,
    black76_greeks,
    black76_price,
    bsm_greeks,
    bsm_price,
)

__all__ = [
    "DEFAULT_DIV_YIELD",
    "BsmSmile",
    "SkewParams",
    "SpxSurface",
    "VixOptionParams",
    "VixOptionSurface",
    "vvix_fallback",
]

DEFAULT_DIV_YIELD = 0.015  # continuous SPX dividend yield used when none is supplied (see docs)

_T30 = 30.0 / 365.0
_T_FLOOR = 1e-6  # years; vols are evaluated at max(T, _T_FLOOR)


@dataclass(frozen=True)
class SkewParams:
    """SPX surface shape.  Defaults fitted to six Cboe end-of-day SPXW chains (2022-02 .. 2024-01,
    expiries 3-95 days, 3..97-delta strikes): RMS error 0.9 vol points given the true ATM vol."""

    atm_ratio: float = 0.84             # ATM vol / variance-swap (index) vol at T = 30 days
    atm_ratio_term_exp: float = -0.04   # ratio(T) = atm_ratio * (T / 30d) ** atm_ratio_term_exp
    slope: float = -0.19                # d sigma / d (k / sqrt(T)) at the money, at T = 30 days
    slope_term_exp: float = 0.30        # slope(T) = slope * (T / 30d) ** slope_term_exp
    curvature: float = 0.013            # c in sigma = atm * (1 + s z + c z^2), z = k / (atm sqrt(T))
    put_wing_z: float = -4.5            # below this z the smile continues linearly (no quadratic blow-up)
    call_wing_floor: float = 0.78       # call-side vol never below this multiple of ATM vol
    min_vol: float = 0.03
    max_vol: float = 3.0
    term_min_days: float = 1.0          # T clamp (days) for the term factors of ratio and slope
    term_max_days: float = 730.0


class BsmSmile:
    """Prices and greeks of an SPX smile on Black-Scholes-Merton: everything but the vol itself. A surface provides
    spot, rate, div_yield, _carry (= rate - div_yield), vol(K, T) and the scalar _vol_scalar(K, T)."""

    __slots__ = ()

    def price1(self, K: float, T: float, call: bool) -> float:
        """Scalar fast path of price(): the replay marks a handful of legs per snapshot, where numpy's per-call
        overhead would dominate."""
        T = max(T, 0.0)
        sig = self._vol_scalar(K, T)
        F = self.spot * math.exp(self._carry * T)
        return math.exp(-self.rate * T) * _black_undisc_scalar(F, K, sig * math.sqrt(T), call)

    def price(self, K, T, is_call):
        return bsm_price(self.spot, K, T, self.rate, self.div_yield, self.vol(K, T), is_call)

    def delta1(self, K: float, T: float, call: bool) -> float:
        """Scalar fast path of delta() (strike searches evaluate it a few times per entry)."""
        T = max(T, 1e-10)
        v = self._vol_scalar(K, T) * math.sqrt(T)
        d1 = (math.log(self.spot / K) + self._carry * T) / v + 0.5 * v
        dq = math.exp(-self.div_yield * T)
        return dq * _ncdf(d1) if call else -dq * _ncdf(-d1)

    def delta(self, K, T, is_call):
        """Sticky-strike BSM delta at the surface vol (no skew adjustment)."""
        if _all_scalar(K, T, is_call):
            return self.delta1(float(K), float(T), bool(is_call))
        return bsm_greeks(self.spot, K, T, self.rate, self.div_yield, self.vol(K, T), is_call).delta

    def greeks(self, K, T, is_call) -> Greeks:
        return bsm_greeks(self.spot, K, T, self.rate, self.div_yield, self.vol(K, T), is_call)


class SpxSurface(BsmSmile):
    """SPX implied-vol surface for one day.

    term_points: (T_years, index_level / 100) pairs, e.g. [(9/365, VIX9D/100), (30/365, VIX/100),
    (91/365, VIX3M/100), (182/365, VIX6M/100)]; give whichever exist that day (VIX alone -> flat).
    Points with non-finite or non-positive values are dropped.  Total variance is made
    non-decreasing in T (a later point is raised to the running maximum) so the term structure has no
    calendar arbitrage.
    """

    __slots__ = (
        "_Ts",
        "_Ts_a",
        "_carry",
        "_tcache",
        "_v0",
        "_vn",
        "_ws",
        "_ws_a",
        "div_yield",
        "params",
        "rate",
        "spot",
    )

    def __init__(self, spot: float, rate: float, div_yield: float,
                 term_points: Sequence[tuple[float, float]], params: SkewParams = SkewParams()):
        pts: dict[float, float] = {}
        for t, v in term_points:
            t = float(t)
            v = float(v)
            if math.isfinite(t) and math.isfinite(v) and t > 0 and v > 0:
                pts[t] = v
        if not pts:
            raise ValueError("SpxSurface needs at least one valid (T, vol) term point")
        Ts = sorted(pts)
        ws = []
        run = 0.0
        for t in Ts:
            run = max(run, pts[t] * pts[t] * t)
            ws.append(run)
        self.spot = float(spot)
        self.rate = float(rate)
        self.div_yield = float(div_yield)
        self.params = params
        self._Ts = Ts
        self._ws = ws
        self._Ts_a = np.asarray(Ts)
        self._ws_a = np.asarray(ws)
        self._v0 = math.sqrt(ws[0] / Ts[0])
        self._vn = math.sqrt(ws[-1] / Ts[-1])
        self._carry = self.rate - self.div_yield
        self._tcache: dict[float, tuple[float, float, float, float]] = {}

    # -- term structure -------------------------------------------------------------------------
    def forward(self, T):
        if _all_scalar(T):
            return self.spot * math.exp(self._carry * float(T))
        return np.asarray(self.spot * np.exp(self._carry * np.asarray(T, dtype=float)))

    def _index_vol_scalar(self, T: float) -> float:
        Ts, ws = self._Ts, self._ws
        if T <= Ts[0]:
            return self._v0
        if T >= Ts[-1]:
            return self._vn
        i = 1
        while Ts[i] < T:
            i += 1
        t0, t1 = Ts[i - 1], Ts[i]
        w = ws[i - 1] + (ws[i] - ws[i - 1]) * (T - t0) / (t1 - t0)
        return math.sqrt(w / T)

    def index_vol(self, T):
        """Variance-swap (index-style) vol at T: total variance linear in T between the points,
        flat vol outside them."""
        if _all_scalar(T):
            return self._index_vol_scalar(max(float(T), _T_FLOOR))
        T = np.maximum(np.asarray(T, dtype=float), _T_FLOOR)
        w = np.interp(T, self._Ts_a, self._ws_a)
        v = np.sqrt(w / T)
        v = np.where(T <= self._Ts_a[0], self._v0, v)
        return np.asarray(np.where(T >= self._Ts_a[-1], self._vn, v))

    def _ratio_scalar(self, T: float) -> float:
        p = self.params
        if p.atm_ratio_term_exp == 0.0:
            return p.atm_ratio
        te = min(max(T * 365.0, p.term_min_days), p.term_max_days) / 30.0
        return p.atm_ratio * te ** p.atm_ratio_term_exp

    def atm_vol(self, T):
        """ATM-forward implied vol: ratio(T) * index_vol(T)."""
        p = self.params
        if _all_scalar(T):
            T = max(float(T), _T_FLOOR)
            return self._ratio_scalar(T) * self._index_vol_scalar(T)
        T = np.maximum(np.asarray(T, dtype=float), _T_FLOOR)
        te = np.clip(T * 365.0, p.term_min_days, p.term_max_days) / 30.0
        return np.asarray(p.atm_ratio * te ** p.atm_ratio_term_exp * self.index_vol(T))

    # -- smile ----------------------------------------------------------------------------------
    def _term(self, T: float) -> tuple[float, float, float, float]:
        """(atm vol, slope, forward, atm * sqrt(T)) at T, memoised: a day's legs share a few expiries."""
        hit = self._tcache.get(T)
        if hit is None:
            p = self.params
            atm = self._ratio_scalar(T) * self._index_vol_scalar(T)
            te = min(max(T * 365.0, p.term_min_days), p.term_max_days) / 30.0
            hit = (atm, p.slope * te ** p.slope_term_exp, self.spot * math.exp(self._carry * T), atm * math.sqrt(T))
            self._tcache[T] = hit
        return hit

    def _vol_scalar(self, K: float, T: float) -> float:
        p = self.params
        T = max(T, _T_FLOOR)
        atm, s, F, scale = self._term(T)
        c = p.curvature
        z = math.log(K / F) / scale
        zl = p.put_wing_z
        if z < zl:
            m = 1.0 + s * zl + c * zl * zl + (s + 2.0 * c * zl) * (z - zl)
        else:
            if z > 0.0 and c > 0.0 and s < 0.0:
                z = min(z, -s / (2.0 * c))
            m = 1.0 + s * z + c * z * z
            if z > 0.0 and m < p.call_wing_floor:
                m = p.call_wing_floor
        return min(max(atm * m, p.min_vol), p.max_vol)

    def vol(self, K, T):
        """Implied vol at strike K, expiry T (years); broadcasts over K and T."""
        if _all_scalar(K, T):
            return self._vol_scalar(float(K), float(T))
        p = self.params
        K = np.asarray(K, dtype=float)
        T = np.maximum(np.asarray(T, dtype=float), _T_FLOOR)
        atm = self.atm_vol(T)
        te = np.clip(T * 365.0, p.term_min_days, p.term_max_days) / 30.0
        s = p.slope * te ** p.slope_term_exp
        c = p.curvature
        F = self.spot * np.exp(self._carry * T)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.log(K / F) / (atm * np.sqrt(T))
        zl = p.put_wing_z
        if c > 0.0 and p.slope < 0.0:
            zc = np.where(z > 0.0, np.minimum(z, -s / (2.0 * c)), z)
        else:
            zc = z
        quad = 1.0 + s * zc + c * zc * zc
        quad = np.where(z > 0.0, np.maximum(quad, p.call_wing_floor), quad)
        lin = 1.0 + s * zl + c * zl * zl + (s + 2.0 * c * zl) * (z - zl)
        m = np.where(z < zl, lin, quad)
        return np.asarray(np.clip(atm * m, p.min_vol, p.max_vol))

    def __repr__(self) -> str:
        pts = ", ".join(f"({t * 365:.0f}d, {math.sqrt(w / t):.4f})" for t, w in zip(self._Ts, self._ws))
        return f"SpxSurface(spot={self.spot}, r={self.rate}, q={self.div_yield}, points=[{pts}])"


# ----------------------------------------------------------------------------------------------
# VIX options
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VixOptionParams:
    """VIX-option vol model (Black-76 on the same-expiry VX future).  The defaults are the quote-free assumptions
    of the first release; the fitted values (three real VIX option chains) live in config/condor.toml
    [pricing.vix_options], see docs/pricing.md section 4."""

    atm_ratio: float = 0.85        # power law: 30-day ATM VIX-option vol / (VVIX / 100); mean reversion: the short end's
    term_beta: float = 0.40        # power law (kappa = 0): atm(T) = atm(30d) * (T / 30d) ** (-term_beta)
    kappa: float = 0.0             # > 0: mean-reverting variance, atm(T)^2 = L^2 + (S^2 - L^2) (1 - e^-kT) / (kT),
    long_vol: float = 0.6          #   S = atm_ratio * VVIX / 100, L = long_vol + long_vol_contango * c (per year: kappa),
    long_vol_contango: float = 0.0  #  c = ln(front VX / VIX) clipped to [contango_min, contango_max]: a curve in
    contango_min: float = 0.0      #   contango keeps the far expiries' vol up, a flat or inverted one (VIX expected to
    contango_max: float = 0.0      #   fall back) lets it decay towards the front's; 0 when the front or VIX is missing
    front_min_days: float = 7.0    # the front VX future: the nearest expiry at least this many days away
    term_min_days: float = 7.0     # T clamp for the term factor (days)
    term_max_days: float = 365.0
    skew: float = 0.80             # multiplicative call skew: d(sigma / atm) / dy, y = ln(K / F) / sqrt(T / 30d)
    skew_vol: float = 0.0          # additive call skew: d(sigma) / dy (vol per unit y), the same at every maturity
    min_mult: float = 0.60         # put-side floor, multiple of ATM vol
    max_mult: float = 2.00         # call-side cap, multiple of ATM vol
    min_vol: float = 0.20
    max_vol: float = 4.00
    fallback_a: float = 53.76      # VVIX ~= fallback_a * VIX ** fallback_b when VVIX is missing
    fallback_b: float = 0.1867     # (log-log fit of daily closes 2007-2026, RMS 15 %)


def front_future(curve: Mapping[dt.date, float], day: dt.date, params: VixOptionParams = VixOptionParams()) -> float:
    """The front VX future's price in `curve` (expiry -> price) on `day`: the nearest expiry at least
    params.front_min_days away with a finite price; NaN if there is none."""
    live = [(e, p) for e, p in curve.items() if (e - day).days >= params.front_min_days and math.isfinite(p)]
    return min(live)[1] if live else math.nan


def vvix_fallback(vix: float, params: VixOptionParams = VixOptionParams()) -> float:
    """VVIX proxy from the VIX level, used when VVIX is unavailable (before 2007)."""
    return params.fallback_a * float(vix) ** params.fallback_b


class VixOptionSurface:
    """Vol of VIX options expiring with the VX future priced at ``future``.

    vvix: VVIX close (index points, e.g. 95.0).  When ``vvix`` is None/NaN the value is replaced by
    ``vvix_fallback(vix)`` (``vix`` defaults to ``future`` when not given).  ``front``: the front VX future's price
    (params.front_min_days), which with ``vix`` sets the long end's level when params.long_vol_contango != 0.
    """

    __slots__ = ("_atm30", "_long", "future", "params", "rate", "vvix", "vvix_is_fallback")

    def __init__(self, future: float, rate: float, vvix: float | None,
                 params: VixOptionParams = VixOptionParams(), *, vix: float | None = None,
                 front: float | None = None):
        self.future = float(future)
        self.rate = float(rate)
        self.params = params
        if vvix is None or not math.isfinite(float(vvix)) or float(vvix) <= 0:
            ref = self.future if vix is None or not math.isfinite(float(vix)) else float(vix)
            self.vvix = vvix_fallback(ref, params)
            self.vvix_is_fallback = True
        else:
            self.vvix = float(vvix)
            self.vvix_is_fallback = False
        self._atm30 = params.atm_ratio * self.vvix / 100.0
        self._long = params.long_vol
        if params.long_vol_contango != 0.0:
            self._long = max(params.long_vol + params.long_vol_contango * self.contango(front, vix), 0.0)

    def contango(self, front: float | None, vix: float | None) -> float:
        """ln(front / VIX) clipped to the fitted range; a flat curve (0, clipped likewise) when either is missing."""
        p = self.params
        c = 0.0
        if front is not None and vix is not None and math.isfinite(front) and math.isfinite(vix) and front > 0 < vix:
            c = math.log(front / vix)
        return min(max(c, p.contango_min), p.contango_max)

    def atm_vol(self, T):
        p = self.params
        if p.kappa > 0.0:
            return self._atm_mean_reverting(T)
        if _all_scalar(T):
            te = min(max(float(T) * 365.0, p.term_min_days), p.term_max_days) / 30.0
            return self._atm30 * te ** (-p.term_beta)
        te = np.clip(np.asarray(T, dtype=float) * 365.0, p.term_min_days, p.term_max_days) / 30.0
        return np.asarray(self._atm30 * te ** (-p.term_beta))

    def _atm_mean_reverting(self, T):
        p = self.params
        S2, L2 = self._atm30 ** 2, self._long ** 2
        if _all_scalar(T):
            kt = p.kappa * min(max(float(T) * 365.0, p.term_min_days), p.term_max_days) / 365.0
            return math.sqrt(L2 + (S2 - L2) * (-math.expm1(-kt)) / kt)
        kt = p.kappa * np.clip(np.asarray(T, dtype=float) * 365.0, p.term_min_days, p.term_max_days) / 365.0
        return np.asarray(np.sqrt(L2 + (S2 - L2) * (-np.expm1(-kt)) / kt))

    def vol(self, K, T):
        p = self.params
        if _all_scalar(K, T):
            T = float(T)
            atm = self.atm_vol(T)
            y = math.log(float(K) / self.future) / math.sqrt(max(T, _T_FLOOR) / _T30)
            m = 1.0 + p.skew * y
            if p.skew_vol:
                m += p.skew_vol * y / atm
            m = min(max(m, p.min_mult), p.max_mult)
            return min(max(atm * m, p.min_vol), p.max_vol)
        K = np.asarray(K, dtype=float)
        T = np.asarray(T, dtype=float)
        atm = self.atm_vol(T)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.log(K / self.future) / np.sqrt(np.maximum(T, _T_FLOOR) / _T30)
        m = 1.0 + p.skew * y
        if p.skew_vol:
            m = m + p.skew_vol * y / atm
        m = np.clip(m, p.min_mult, p.max_mult)
        return np.asarray(np.clip(atm * m, p.min_vol, p.max_vol))

    def price(self, K, T, is_call):
        return black76_price(self.future, K, T, self.rate, self.vol(K, T), is_call)

    def delta(self, K, T, is_call):
        return black76_greeks(self.future, K, T, self.rate, self.vol(K, T), is_call).delta

    def greeks(self, K, T, is_call) -> Greeks:
        return black76_greeks(self.future, K, T, self.rate, self.vol(K, T), is_call)

    def __repr__(self) -> str:
        fb = " (fallback)" if self.vvix_is_fallback else ""
        return f"VixOptionSurface(future={self.future}, r={self.rate}, vvix={self.vvix:.2f}{fb})"
