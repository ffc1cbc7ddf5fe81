"""Regime-aware SPX implied-vol surface: SSVI slices whose shape moves with the day's market state and whose level
reproduces the Cboe volatility indices by construction.

Each expiry T is one slice in total implied variance w(k) = sigma^2 T, k = ln(K/F):

    w(k) = theta * f(x) * m(x),   x = k / sqrt(theta)
    f(x) = (1 + rho psi x + sqrt((psi x + rho)^2 + 1 - rho^2)) / 2        (SSVI, Gatheral & Jacquier 2014)
    m(x) = 1 + (cap - 1) tanh(beta s log(1 + exp((-x - x_w) / s)) / (cap - 1))   (far put wing, x < -x_w)

* Shape: rho (skew direction) and psi = phi sqrt(theta) (skew and curvature scale) are linear-link functions of
  log(T / 30 d) and of the day's state: log VIX, the short and long index term slopes (VIX9D/VIX, VIX/VIX3M), VVIX
  and SKEW, all observable every day (SurfaceState). Coefficients are fitted on real SPX chains
  (analysis/surface_fit.py, docs/fidelity.md).
* Wing: the SSVI slice fitted to 3-50 delta options under-prices the quoted far put wing by the same pattern on
  calm and stressed days (total variance 1.03x at x = -3.25, 1.2x at -5.5, 1.65x at -10): m(x) carries it, so that
  the model's variance swap includes the variance the market's wing holds.
* Level: theta(T) is solved so that the slice's own variance swap (the model-free integral of its OTM prices)
  equals the index variance at T: total variance linear in T between VIX9D (9 d), VIX (30 d), VIX3M (91 d) and
  VIX6M (182 d), flat vol outside, made non-decreasing. At 30 days the model's variance swap IS the VIX.

No static arbitrage is enforced by the parameter clamps: psi^2 (1 + |rho|) < 4 (Gatheral-Jacquier's butterfly
condition), psi non-decreasing in T, rho constant in T; tests/unit/engine/test_spx_surface.py checks butterflies
and calendars on listed strike grids with hypothesis.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from engine.pricing import Greeks, _all_scalar, _black_undisc_scalar, _ncdf, bsm_greeks, bsm_price
from engine.volsurface import vvix_fallback

__all__ = ["RegimeParams", "RegimeSurface", "SurfaceState", "index_term_points", "slice_variance_swap"]

_T30 = 30.0 / 365.0
_T_FLOOR = 1e-6
# x grid of the variance-swap integral: sinh-spaced from x = -400 to 60, so the wings' slowly decaying tails are
# inside it; relative error of the integral < 5e-4 against a 300,000-point grid (tests check it)
_X = 4.0 * np.sinh(np.linspace(np.arcsinh(-100.0), np.arcsinh(15.0), 201))
_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class SurfaceState:
    """The day's market state the surface shape depends on (all known at the snapshot)."""

    vix: float
    vix9d: float = math.nan
    vix3m: float = math.nan
    vix6m: float = math.nan
    vvix: float = math.nan
    skew: float = math.nan

    def features(self) -> tuple[float, float, float, float, float]:
        """(log VIX/20, short slope log VIX9D/VIX, long slope log VIX/VIX3M, log VVIX/100, (SKEW - 130)/10).
        Missing inputs fall back to neutral values: a flat short slope, a long slope from the short one or zero,
        VVIX from the VIX level (engine.volsurface.vvix_fallback), SKEW 130."""
        v = self.vix
        short = math.log(self.vix9d / v) if _ok(self.vix9d) else math.nan
        long_ = math.log(v / self.vix3m) if _ok(self.vix3m) else math.nan
        if math.isnan(short):
            short = 0.0
        if math.isnan(long_):
            long_ = 0.0
        vv = self.vvix if _ok(self.vvix) and self.vvix > 40 else vvix_fallback(v)
        sk = self.skew if _ok(self.skew) else 130.0
        return math.log(v / 20.0), short, long_, math.log(vv / 100.0), (sk - 130.0) / 10.0


def _ok(x: float) -> bool:
    return x is not None and math.isfinite(x) and x > 0


@dataclass(frozen=True)
class RegimeParams:
    """Shape coefficients (fitted: analysis/surface_fit.py; docs/pricing.md lists the values and evidence).
    rho = tanh(rho0 + rho_vix*lv + rho_short*ts + rho_long*tl + rho_vvix*vv + rho_skew*sk)
    psi = exp(psi0 + psi_T*log(T/30d) + psi_vix*lv + psi_short*ts + psi_long*tl + psi_vvix*vv + psi_skew*sk)"""

    rho0: float = -0.85
    rho_vix: float = 0.0
    rho_short: float = 0.0
    rho_long: float = 0.0
    rho_vvix: float = 0.0
    rho_skew: float = 0.0
    psi0: float = 0.0
    psi_T: float = 0.15
    psi_vix: float = 0.0
    psi_short: float = 0.0
    psi_long: float = 0.0
    psi_vvix: float = 0.0
    psi_skew: float = 0.0
    wing_beta: float = 0.08      # far-put-wing total-variance growth per unit x beyond x_w
    wing_x: float = 3.0
    wing_s: float = 0.5
    wing_cap: float = 2.0        # the wing multiplier saturates here (keeps the wing slope under Lee's bound)
    short_term_adj: float = 0.0  # index variance scaled by (1 + adj * max(0, log(30d / T))) below 30 days
    min_vol: float = 0.02
    max_vol: float = 4.0
    term_min_days: float = 1.0
    term_max_days: float = 730.0

    def coefficients(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return ((self.rho_vix, self.rho_short, self.rho_long, self.rho_vvix, self.rho_skew),
                (self.psi_vix, self.psi_short, self.psi_long, self.psi_vvix, self.psi_skew))


def index_term_points(state: SurfaceState) -> list[tuple[float, float]]:
    """(T years, total variance) of the Cboe indices that exist that day, total variance made non-decreasing."""
    pts = []
    for level, days in ((state.vix9d, 9), (state.vix, 30), (state.vix3m, 91), (state.vix6m, 182)):
        if _ok(level):
            pts.append((days / 365.0, (level / 100.0) ** 2 * days / 365.0))
    if not pts:
        raise ValueError("RegimeSurface needs at least the VIX")
    out, run = [], 0.0
    for t, w in pts:
        run = max(run, w)
        out.append((t, run))
    return out


def shape_f(x, rho, psi):
    """Normalised SSVI slice w / theta at x = k / sqrt(theta)."""
    px = psi * x
    return 0.5 * (1.0 + rho * px + np.sqrt((px + rho) ** 2 + 1.0 - rho * rho))


def wing_m(x, p: RegimeParams):
    u = (-x - p.wing_x) / p.wing_s
    sp = p.wing_s * np.logaddexp(0.0, u)
    c = p.wing_cap - 1.0
    return 1.0 + c * np.tanh(p.wing_beta * sp / c)


def slice_variance_swap(theta, g, x=_X):
    """Fair total variance E[-2 ln(S_T/F)] = 2 int P(k) e^{-k} dk of slices w = theta * g(x) (g on the x grid;
    theta and g broadcast over leading axes). P is the undiscounted OTM price at forward 1."""
    theta = np.asarray(theta, dtype=float)[..., None]
    s = np.sqrt(theta)
    k = x * s
    v = np.sqrt(theta * g)
    d1 = -k / v + 0.5 * v
    d2 = d1 - v
    emk = np.exp(-k)
    # P e^{-k} for the OTM side: put N(-d2) - e^{-k} N(-d1), call e^{-k} N(d1) - N(d2)
    y = 2.0 * s * np.where(x < 0.0, ndtr(-d2) - emk * ndtr(-d1), emk * ndtr(d1) - ndtr(d2))
    return np.sum(0.5 * (y[..., 1:] + y[..., :-1]) * np.diff(x), axis=-1)


def solve_theta(target, g, iters: int = 6):
    """theta such that slice_variance_swap(theta, g) = target (total variance); fixed point on VS(theta)/theta,
    which depends on theta only through the option-price convexity, so a few steps reach 1e-10."""
    target = np.asarray(target, dtype=float)
    th = target.copy()
    for _ in range(iters):
        th = target * th / slice_variance_swap(th, g)
    return th


class RegimeSurface:
    """SPX implied-vol surface for one snapshot (same interface as engine.volsurface.SpxSurface)."""

    __slots__ = ("_Ts", "_carry", "_feat", "_rho", "_slices", "_ws", "div_yield", "params", "rate", "spot", "state")

    def __init__(self, spot: float, rate: float, div_yield: float, state: SurfaceState,
                 params: RegimeParams = RegimeParams()) -> None:
        self.spot = float(spot)
        self.rate = float(rate)
        self.div_yield = float(div_yield)
        self.state = state
        self.params = params
        pts = index_term_points(state)
        self._Ts = [t for t, _ in pts]
        self._ws = [w for _, w in pts]
        self._carry = self.rate - self.div_yield
        self._feat = state.features()
        rc, _ = params.coefficients()
        self._rho = math.tanh(params.rho0 + sum(c * f for c, f in zip(rc, self._feat)))
        self._slices: dict[float, tuple[float, float, float, float]] = {}

    # ---- term structure ---------------------------------------------------------------------------------------
    def index_vol(self, T: float) -> float:
        """Index (variance-swap) vol at T: total variance linear in T between the index points, flat outside."""
        T = max(float(T), _T_FLOOR)
        Ts, ws = self._Ts, self._ws
        if T <= Ts[0]:
            return math.sqrt(ws[0] / Ts[0])
        if T >= Ts[-1]:
            return math.sqrt(ws[-1] / Ts[-1])
        i = 1
        while Ts[i] < T:
            i += 1
        w = ws[i - 1] + (ws[i] - ws[i - 1]) * (T - Ts[i - 1]) / (Ts[i] - Ts[i - 1])
        return math.sqrt(w / T)

    def target_variance(self, T: float) -> float:
        p = self.params
        adj = 1.0 + p.short_term_adj * max(0.0, math.log(_T30 / max(T, 1.0 / 365.0)))
        return self.index_vol(T) ** 2 * T * adj

    def psi(self, T: float) -> float:
        p = self.params
        _, pc = p.coefficients()
        te = min(max(T * 365.0, p.term_min_days), p.term_max_days) / 30.0
        psi = math.exp(p.psi0 + p.psi_T * math.log(te) + sum(c * f for c, f in zip(pc, self._feat)))
        # butterfly condition psi^2 (1 + |rho|) < 4 (Gatheral & Jacquier 2014, theorem 4.2)
        return min(psi, 0.995 * 2.0 / math.sqrt(1.0 + abs(self._rho)))

    @property
    def rho(self) -> float:
        return self._rho

    def _slice(self, T: float) -> tuple[float, float, float, float]:
        """(theta, psi, forward, sqrt(theta)) at T, memoised: a day's legs share a few expiries."""
        hit = self._slices.get(T)
        if hit is None:
            T1 = max(T, _T_FLOOR)
            psi = self.psi(T1)
            g = shape_f(_X, self._rho, psi) * wing_m(_X, self.params)
            th = float(solve_theta(np.array(self.target_variance(T1)), g))
            hit = (th, psi, self.spot * math.exp(self._carry * T1), math.sqrt(th))
            self._slices[T] = hit
        return hit

    def forward(self, T):
        if _all_scalar(T):
            return self.spot * math.exp(self._carry * float(T))
        return np.asarray(self.spot * np.exp(self._carry * np.asarray(T, dtype=float)))

    def atm_vol(self, T):
        """ATM-forward implied vol sqrt(theta / T)."""
        if _all_scalar(T):
            T = max(float(T), _T_FLOOR)
            return math.sqrt(self._slice(T)[0] / T)
        T = np.maximum(np.asarray(T, dtype=float), _T_FLOOR)
        return np.asarray([math.sqrt(self._slice(float(t))[0] / t) for t in T.ravel()]).reshape(T.shape)

    # ---- smile ------------------------------------------------------------------------------------------------
    def _vol_scalar(self, K: float, T: float) -> float:
        T = max(T, _T_FLOOR)
        th, psi, F, sth = self._slice(T)
        x = math.log(K / F) / sth
        rho = self._rho
        px = psi * x
        f = 0.5 * (1.0 + rho * px + math.sqrt((px + rho) ** 2 + 1.0 - rho * rho))
        p = self.params
        u = (-x - p.wing_x) / p.wing_s
        if u > -30.0:
            sp = p.wing_s * (u + math.log1p(math.exp(-u)) if u > 0 else math.log1p(math.exp(u)))
            c = p.wing_cap - 1.0
            f *= 1.0 + c * math.tanh(p.wing_beta * sp / c)
        return min(max(math.sqrt(th * f / T), p.min_vol), p.max_vol)

    def vol(self, K, T):
        """Implied vol at strike K, expiry T (years); broadcasts over K and T."""
        if _all_scalar(K, T):
            return self._vol_scalar(float(K), float(T))
        K, T = np.broadcast_arrays(np.asarray(K, dtype=float), np.maximum(np.asarray(T, dtype=float), _T_FLOOR))
        out = np.empty(K.shape)
        flatK, flatT, flat = K.ravel(), T.ravel(), out.reshape(-1)
        for t in np.unique(flatT):
            sel = flatT == t
            th, psi, F, sth = self._slice(float(t))
            x = np.log(flatK[sel] / F) / sth
            w = th * shape_f(x, self._rho, psi) * wing_m(x, self.params)
            flat[sel] = np.sqrt(w / t)
        p = self.params
        return np.clip(out, p.min_vol, p.max_vol)

    # ---- prices and greeks ------------------------------------------------------------------------------------
    def price1(self, K: float, T: float, call: bool) -> float:
        """Scalar fast path of price(): the replay marks a handful of legs per snapshot."""
        T = max(T, 0.0)
        sig = self._vol_scalar(K, T)
        F = self.spot * math.exp(self._carry * T)
        return math.exp(-self.rate * T) * _black_undisc_scalar(F, K, sig * math.sqrt(T), call)

    def price(self, K, T, is_call):
        return bsm_price(self.spot, K, T, self.rate, self.div_yield, self.vol(K, T), is_call)

    def delta1(self, K: float, T: float, call: bool) -> float:
        T = max(T, 1e-10)
        v = self._vol_scalar(K, T) * math.sqrt(T)
        d1 = (math.log(self.spot / K) + self._carry * T) / v + 0.5 * v
        dq = math.exp(-self.div_yield * T)
        return dq * _ncdf(d1) if call else -dq * _ncdf(-d1)

    def delta(self, K, T, is_call):
        """Sticky-strike BSM delta at the surface vol."""
        if _all_scalar(K, T, is_call):
            return self.delta1(float(K), float(T), bool(is_call))
        return bsm_greeks(self.spot, K, T, self.rate, self.div_yield, self.vol(K, T), is_call).delta

    def greeks(self, K, T, is_call) -> Greeks:
        return bsm_greeks(self.spot, K, T, self.rate, self.div_yield, self.vol(K, T), is_call)

    def variance_swap_vol(self, T: float) -> float:
        """The model's own variance-swap vol at T, integrated from its smile (equals the index vol by construction)."""
        T = max(float(T), _T_FLOOR)
        th, psi, _, _ = self._slice(T)
        g = shape_f(_X, self._rho, psi) * wing_m(_X, self.params)
        return math.sqrt(float(slice_variance_swap(th, g)) / T)

    def __repr__(self) -> str:
        return (f"RegimeSurface(spot={self.spot}, r={self.rate}, q={self.div_yield}, rho={self._rho:.3f}, "
                f"state={self.state})")
