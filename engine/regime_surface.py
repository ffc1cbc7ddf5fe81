"""Regime-aware SPX implied-vol surface: SSVI slices whose shape moves with the day's market state and whose level
reproduces the Cboe volatility indices by construction. (Over 500 lines because the state map, the variance-swap
integral, the tenor solve with its table and the smile are one model: the fitter mirrors each of them.)

Each expiry T is one slice in total implied variance w(k) = sigma^2 T, k = ln(K/F):

    w(k) = theta * f(x) * m(x),   x = k / sqrt(theta)
    f(x) = (1 + rho psi x + sqrt((psi x + rho)^2 + 1 - rho^2)) / 2        (SSVI, Gatheral & Jacquier 2014)
    m(x) = 1 + (cap - 1) tanh(beta s log(1 + exp((-x - x_w) / s)) / (cap - 1))   (far put wing, x < -x_w)

* Shape: rho (skew direction, one value for the whole surface) and psi = phi sqrt(theta) (skew and curvature scale;
  ATM skew dsigma/dk = rho psi / (2 sqrt T)) are linear-link functions of the day's state (SurfaceState): log VIX,
  the short and long index term slopes (VIX9D/VIX, VIX/VIX3M), VVIX and SKEW, all quoted every day (in replay and
  by the live daemon alike); psi also grows with the slice's own ATM total variance,
  psi = psi_30 (theta / theta_30)^psi_theta (SSVI's phi(theta) family), which keeps the surface free of calendar
  arbitrage whenever theta is non-decreasing in T. Coefficients are fitted on real SPX chains
  (analysis/surface_fit.py; docs/pricing.md gives the values and the evidence).
* Wing: an SSVI slice fitted to 3-50 delta options under-prices the quoted far put wing by the same pattern on
  calm and stressed days (market total variance 1.03x the SSVI slice at x = -3.25, 1.2x at -5.5); m(x) carries
  it, so the model's variance swap includes the variance the market's wing holds.
* Level: at each index tenor that exists that day (VIX9D 9 d, VIX 30 d, VIX3M 91 d, VIX6M 182 d) theta is solved
  so that the slice's own variance swap equals the index variance there: 30 days first (always exact), longer
  tenors floored at the tenor before them, the 9-day capped at the 30-day; between tenors theta is linear in T
  (flat ATM vol outside). The variance swap is the VIX formula's integral of
  out-of-the-money prices, 2 int P(k) e^-k dk, over the strike range the index actually uses: Cboe stops at the
  last quoted strikes, which in the real 20-40 day chains lie at x = -15 (median; -8 to -22) on the put side and
  x = +3 on the call side, so the integral runs over x in [-15, +5] (Gauss-Legendre, 24 nodes a side; relative
  error < 1e-5). At 30 days the model's variance swap IS the VIX (to the theta table's 0.1 %); beyond the listed
  range a smile with a Lee-bound wing would put unbounded variance in strikes no index uses. `level_scale` (default
  1) multiplies every index level first: a sensitivity for the real chains' own level, which sits ~3 % under the
  indices on calm days (docs/fidelity.md section 2); replay and the verdict keep 1 unless a config says otherwise.

No static arbitrage: psi^2 (1 + |rho|) < 4 and psi sqrt(theta) (1 + |rho|) cap < 3.8 (Gatheral-Jacquier's
sufficient butterfly conditions, the second with the wing cap, which keeps the put wing's slope under Lee's bound
of 2); theta non-decreasing in T and every shape parameter a function of theta alone (calendars);
tests/unit/engine/test_regime_surface.py checks butterflies and calendars on listed strike grids with hypothesis.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import ndtr

from engine.pricing import _all_scalar
from engine.volsurface import BsmSmile, vvix_fallback

__all__ = [
    "X_NODES",
    "RegimeParams",
    "RegimeSurface",
    "SurfaceState",
    "index_term_points",
    "index_variance",
    "shape_f",
    "slice_variance_swap",
    "solve_theta",
    "wing_m",
]

_T30 = 30.0 / 365.0
_T_FLOOR = 1e-6
X_PUT, X_CALL = -15.0, 5.0   # the strike range of the variance swap, in x = k / sqrt(theta) (module docstring)
_N_SIDE = 24


def _nodes() -> tuple[np.ndarray, np.ndarray]:
    t, w = np.polynomial.legendre.leggauss(_N_SIDE)
    u, w = (t + 1.0) / 2.0, w / 2.0
    x = np.concatenate([(X_PUT * u)[::-1], X_CALL * u])
    return x, np.concatenate([(-X_PUT * w)[::-1], X_CALL * w])


X_NODES, _W_NODES = _nodes()   # ascending: the first _N_SIDE nodes are the put side (x < 0)


@dataclass(frozen=True)
class SurfaceState:
    """The market state the surface shape depends on, all known at the snapshot (index closes, or opens)."""

    vix: float
    vix9d: float = math.nan
    vix3m: float = math.nan
    vix6m: float = math.nan
    vvix: float = math.nan
    skew: float = math.nan

    def features(self) -> tuple[float, ...]:
        """(log VIX/20, short slope log VIX9D/VIX, long slope log VIX/VIX3M, log VVIX/100, (SKEW - 130)/10).
        Missing inputs read as neutral: flat slopes, VVIX from the VIX level (the documented fallback of
        engine.volsurface), SKEW 130."""
        v = self.vix
        short = math.log(self.vix9d / v) if _ok(self.vix9d) else 0.0
        long_ = math.log(v / self.vix3m) if _ok(self.vix3m) else 0.0
        vv = self.vvix if _ok(self.vvix) and self.vvix > 40 else vvix_fallback(v)
        sk = self.skew if _ok(self.skew) else 130.0
        return math.log(v / 20.0), short, long_, math.log(vv / 100.0), (sk - 130.0) / 10.0


def _ok(x: float) -> bool:
    return x is not None and 0.0 < x < math.inf   # False for NaN


FEATURES = ("vix", "short", "long", "vvix", "skew")


@dataclass(frozen=True)
class RegimeParams:
    """Shape coefficients. The defaults are `alvh calibrate`'s fit (analysis/surface_fit.py: the fit dates of its
    protocol, ridge 0.3); docs/pricing.md lists the values and the evidence, docs/fidelity.md the errors.
    rho = tanh(rho0 + sum_f rho_f * feature_f)
    psi = exp(psi0 + sum_f psi_f * feature_f) * (theta / theta_30) ** psi_theta, features in SurfaceState order
    (RegimeSurface computes the two sums once per snapshot; psi_at applies the theta term and the clamps)."""

    rho0: float = -0.4977
    rho_vix: float = -0.0099
    rho_short: float = -0.0128
    rho_long: float = 0.4959
    rho_vvix: float = -0.9132
    rho_skew: float = 0.0712
    psi0: float = 0.0056
    psi_theta: float = 0.1827
    psi_vix: float = -0.2082
    psi_short: float = 1.1968
    psi_long: float = -0.1267
    psi_vvix: float = 0.0471
    psi_skew: float = 0.2724
    wing_beta: float = 0.0471      # far-put-wing total-variance growth per unit x beyond wing_x
    wing_x: float = 1.8576
    wing_s: float = 0.5
    wing_cap: float = 2.0        # the wing multiplier saturates here
    short_term_adj: float = -0.024  # index variance at the 9-day tenor scaled by (1 + adj * log(30 / 9))
    level_scale: float = 1.0       # the surface's variance-swap vols as a multiple of the index levels (1: the indices)
    min_vol: float = 0.02
    max_vol: float = 4.0

    def coefficients(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return _coefficients(self)

    def psi_at(self, log_psi30: float, theta: float, theta30: float, rho: float) -> float:
        """psi of the slice with ATM total variance theta, clamped to the no-arbitrage conditions."""
        a = 1.0 + abs(rho)
        psi = math.exp(log_psi30 + self.psi_theta * math.log(theta / theta30))
        return min(psi, 0.995 * 2.0 / math.sqrt(a), 3.8 / (math.sqrt(theta) * a * self.wing_cap))


@lru_cache(maxsize=64)
def _coefficients(p: RegimeParams) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return (tuple(getattr(p, f"rho_{f}") for f in FEATURES), tuple(getattr(p, f"psi_{f}") for f in FEATURES))


_TENORS = tuple((days / 365.0, days / 365.0 * 1e-4) for days in (9, 30, 91, 182))


def index_term_points(state: SurfaceState, scale: float = 1.0) -> list[tuple[float, float]]:
    """(T years, total variance) of the Cboe indices that exist that day, each level times `scale`
    (RegimeParams.level_scale), total variance made non-decreasing."""
    out, run = [], 0.0
    for level, (t, c) in zip((state.vix9d, state.vix, state.vix3m, state.vix6m), _TENORS):
        if level is not None and 0.0 < level < math.inf:
            w = level * level * c * (scale * scale)
            run = max(run, w)
            out.append((t, run))
    if not out:
        raise ValueError("the regime SPX surface needs at least the VIX")
    return out


def index_variance(points: list[tuple[float, float]], T: float) -> float:
    """Index total variance at T: linear in T between the points, flat vol outside."""
    t0, w0 = points[0]
    if T <= t0:
        return w0 / t0 * T
    t1, w1 = points[-1]
    if T >= t1:
        return w1 / t1 * T
    i = 1
    while points[i][0] < T:
        i += 1
    (ta, wa), (tb, wb) = points[i - 1], points[i]
    return wa + (wb - wa) * (T - ta) / (tb - ta)


def shape_f(x, rho, psi):
    """Normalised SSVI slice w / theta at x = k / sqrt(theta)."""
    px = psi * x
    return 0.5 * (1.0 + rho * px + np.sqrt((px + rho) ** 2 + 1.0 - rho * rho))


def wing_m(x, p: RegimeParams):
    u = (-x - p.wing_x) / p.wing_s
    sp = p.wing_s * np.logaddexp(0.0, u)
    c = p.wing_cap - 1.0
    return 1.0 + c * np.tanh(p.wing_beta * sp / c)


_WING_CACHE: dict[tuple[float, float, float, float], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _wing_on_nodes(p: RegimeParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """m/2, x m and x^2 on the nodes: g = f m = m/2 + (rho psi / 2) x m + (m/2) sqrt(psi^2 x^2 + 2 psi rho x + 1)."""
    key = (p.wing_beta, p.wing_x, p.wing_s, p.wing_cap)
    hit = _WING_CACHE.get(key)
    if hit is None:
        m = wing_m(X_NODES, p)
        hit = _WING_CACHE[key] = (0.5 * m, X_NODES * m, X_NODES * X_NODES)
    return hit


def _g_on_nodes(wing: tuple[np.ndarray, np.ndarray, np.ndarray], rho: float, psi: float) -> np.ndarray:
    half_m, xm, x2 = wing
    return half_m * np.sqrt((psi * psi) * x2 + (2.0 * psi * rho) * X_NODES + 1.0) + (0.5 * rho * psi) * xm + half_m


def slice_variance_swap(theta, g, x=X_NODES, w=_W_NODES):
    """Fair total variance 2 int P(k) e^{-k} dk of slices w = theta * g(x) over the nodes x (weights w): P is the
    undiscounted OTM price at forward 1. theta and g broadcast over leading axes (the fitter solves every slice of
    every date at once)."""
    theta = np.asarray(theta, dtype=float)[..., None]
    s = np.sqrt(theta)
    k = x * s
    v = np.sqrt(theta * g)
    d1 = -k / v + 0.5 * v
    d2 = d1 - v
    emk = np.exp(-k)
    y = np.where(x < 0.0, ndtr(-d2) - emk * ndtr(-d1), emk * ndtr(d1) - ndtr(d2))
    return 2.0 * s[..., 0] * np.sum(y * w, axis=-1)


def solve_theta(target, g, iters: int = 8):
    """theta with slice_variance_swap(theta, g) = target (vectorised). VS(theta)/theta depends on theta only
    through the prices' convexity (d ln(VS/theta) / d ln theta ~ 0.03 at 30 days), so the fixed point
    theta <- target theta / VS(theta) gains ~30x a step."""
    target = np.asarray(target, dtype=float)
    th = target / 1.5
    for _ in range(iters):
        th = target * th / slice_variance_swap(th, g)
    return th


# VS/theta as a function of (rho, psi, sqrt(theta)) for one wing shape, tabulated per process: a snapshot's slice
# then costs a table lookup instead of a root solve (the replay builds ~20,000 slices). Trilinear in log(VS/theta)
# on 33 x 81 x 31 nodes, each (rho, psi) column computed on first use; against the exact
# solve the slice's theta is within 0.1 % (0.05 % in vol, 0.01 vol pt at VIX 20) for sqrt(theta) < 0.5 and 0.16 %
# anywhere in the table (tests check it). Outside it (rho > 0.6, sqrt(theta) > 1: a year at 100 vol) the exact
# solve runs.
_RHO_NODES = np.linspace(-0.99, 0.6, 33)
_PSI_NODES = np.linspace(0.0, 2.0, 81)
_S_NODES = np.linspace(0.0, 1.0, 31)
_R0, _DR, _NR = float(_RHO_NODES[0]), float(_RHO_NODES[1] - _RHO_NODES[0]), len(_RHO_NODES)
_DP, _NPSI = float(_PSI_NODES[1] - _PSI_NODES[0]), len(_PSI_NODES)
_DS, _NS = float(_S_NODES[1] - _S_NODES[0]), len(_S_NODES)
_S2_NODES = np.maximum(_S_NODES, 1e-4) ** 2


_NLO = 12   # the low part of a column: s < 0.37 (every slice of 2006-2025 has s < 0.34)


class _LogCTable:
    """log(VS/theta) on the s grid for each (rho, psi) node, computed on first use: the low part (the first _NLO
    s nodes, 40 % of a whole column's ~80 us) or, for a slice beyond it, the whole column (31 nodes). A 20-year replay
    touches ~800 of the 2,673 columns. Both parts hold the same values at the nodes they share."""

    def __init__(self, p: RegimeParams) -> None:
        self._m = wing_m(X_NODES, p)
        self._cols: dict[int, list[float]] = {}
        self._full: dict[int, list[float]] = {}

    def _build(self, i: int, j: int, n: int) -> list[float]:
        g = shape_f(X_NODES, float(_RHO_NODES[i]), float(_PSI_NODES[j])) * self._m
        s2 = _S2_NODES[:n]
        return np.log(slice_variance_swap(s2, g) / s2).tolist()

    def col(self, i: int, j: int) -> list[float]:
        """The column's first _NLO nodes."""
        c = self._cols.get(i * _NPSI + j)
        return c if c is not None else self._store(self._cols, i, j, _NLO)

    def col_full(self, i: int, j: int) -> list[float]:
        c = self._full.get(i * _NPSI + j)
        return c if c is not None else self._store(self._full, i, j, _NS)

    def _store(self, cols: dict[int, list[float]], i: int, j: int, n: int) -> list[float]:
        c = cols[i * _NPSI + j] = self._build(i, j, n)
        return c


_TABLES: dict[tuple[float, float, float, float], _LogCTable] = {}


def _log_c_table(p: RegimeParams) -> _LogCTable:
    key = (p.wing_beta, p.wing_x, p.wing_s, p.wing_cap)
    tab = _TABLES.get(key)
    if tab is None:
        tab = _TABLES[key] = _LogCTable(p)
    return tab


def _node_theta(tab: _LogCTable, target: float, rho: float, log_psi: float, psi_theta: float, x30: float | None,
                cap: float, x: float) -> float | None:
    """theta of a tenor node in one Newton iteration on x = ln theta, psi moving with theta (psi_at): F(x) = x +
    L(psi(x), e^{x/2}) - ln target = 0, L = log(VS/theta) interpolated in the table, dF/dx from the table cell's
    slopes in psi and s. x30 None: the 30-day node itself (psi = psi_30; only the clamps depend on theta). None when
    the path leaves the table (the caller solves exactly)."""
    # with psi fixed (the 30-day node) ln(VS/theta) is nearly linear in ln theta (c ~ 0.006: one step from
    # |f| < 0.1 leaves < 6e-5); where psi moves with theta c is ~10x larger
    tol = 0.1 if x30 is None else 3e-3
    a_rho = 1.0 + abs(rho)
    c1, c2 = 0.995 * 2.0 / math.sqrt(a_rho), 3.8 / (a_rho * cap)
    fr = (rho - _R0) / _DR
    if not 0.0 <= fr <= _NR - 1:
        return None
    i = min(int(fr), _NR - 2)
    a = fr - i
    ln_target = math.log(target)
    jj = -1
    full = False
    for _ in range(12):
        s = math.exp(0.5 * x)
        p0 = math.exp(log_psi + (0.0 if x30 is None else psi_theta * (x - x30)))
        p2 = c2 / s
        if p0 <= c1 and p0 <= p2:
            psi, dpsi = p0, (0.0 if x30 is None else psi_theta * p0)
        elif c1 <= p2:
            psi, dpsi = c1, 0.0
        else:
            psi, dpsi = p2, -0.5 * p2
        fp, fs = psi / _DP, s / _DS
        if not (0.0 <= fp <= _NPSI - 1 and fs <= _NS - 1):
            return None
        j, k = min(int(fp), _NPSI - 2), min(int(fs), _NS - 2)
        b, c = fp - j, fs - k
        if j != jj or (k >= _NLO - 1 and not full):   # psi rarely leaves its cell after the first step
            full = k >= _NLO - 1
            col = tab.col_full if full else tab.col
            c00, c01, c10, c11 = col(i, j), col(i, j + 1), col(i + 1, j), col(i + 1, j + 1)
            jj = j
        # the cell's corners: [psi j or j+1][s k or k+1], rho-interpolated
        v00 = (1 - a) * c00[k] + a * c10[k]
        v01 = (1 - a) * c00[k + 1] + a * c10[k + 1]
        v10 = (1 - a) * c01[k] + a * c11[k]
        v11 = (1 - a) * c01[k + 1] + a * c11[k + 1]
        lo, hi = v00 + (v10 - v00) * b, v01 + (v11 - v01) * b          # at s nodes k, k+1
        f = x + lo + (hi - lo) * c - ln_target
        dl_ds = (hi - lo) / _DS
        dl_dpsi = ((v10 - v00) + ((v11 - v01) - (v10 - v00)) * c) / _DP
        x -= f / (1.0 + dl_ds * 0.5 * s + dl_dpsi * dpsi)
        if -tol < f < tol:   # the step just taken leaves ~c f^2 in ln theta (the table is good to 1e-3)
            break
    return math.exp(x)


_PER_PARAMS: dict[int, tuple] = {}


def _per_params(p: RegimeParams) -> tuple:
    """What every surface of one RegimeParams shares: coefficients, wing on the nodes, wing constants, the VS/theta
    table. Keyed by identity (replay passes one instance to ~10,000 surfaces; hashing the dataclass costs more than
    a surface), with the instance kept in the entry so that a reused id cannot alias another instance."""
    hit = _PER_PARAMS.get(id(p))
    if hit is None or hit[0] is not p:
        rc, pc = _coefficients(p)
        hit = _PER_PARAMS[id(p)] = (p, rc, pc, _wing_on_nodes(p), (p.wing_x, p.wing_s, p.wing_beta, p.wing_cap - 1.0,
                                                                 p.min_vol, p.max_vol), _log_c_table(p))
        if len(_PER_PARAMS) > 256:   # fitters and tests make many instances: keep the cache bounded
            _PER_PARAMS.clear()
            _PER_PARAMS[id(p)] = hit
    return hit[1:]


class RegimeSurface(BsmSmile):
    """SPX implied-vol surface for one snapshot (the interface of engine.volsurface.SpxSurface; prices and greeks
    from engine.volsurface.BsmSmile)."""

    __slots__ = (
        "_carry",
        "_feat",
        "_lpsi",
        "_next",
        "_node_T",
        "_node_th",
        "_omr2",
        "_psi_cap",
        "_pts",
        "_rho",
        "_short",
        "_slices",
        "_table",
        "_th30",
        "_w30",
        "_wing",
        "_wingc",
        "div_yield",
        "params",
        "rate",
        "spot",
        "state",
    )

    def __init__(self, spot: float, rate: float, div_yield: float, state: SurfaceState,
                 params: RegimeParams = RegimeParams()) -> None:
        self.spot = float(spot)
        self.rate = float(rate)
        self.div_yield = float(div_yield)
        self.state = state
        self.params = params
        self._pts = index_term_points(state, params.level_scale)
        self._carry = self.rate - self.div_yield
        self._feat = feats = state.features()
        rc, pc, self._wing, self._wingc, self._table = _per_params(params)
        f0, f1, f2, f3, f4 = feats
        self._rho = rho = math.tanh(params.rho0 + rc[0] * f0 + rc[1] * f1 + rc[2] * f2 + rc[3] * f3 + rc[4] * f4)
        self._omr2 = 1.0 - rho * rho
        self._lpsi = params.psi0 + pc[0] * f0 + pc[1] * f1 + pc[2] * f2 + pc[3] * f3 + pc[4] * f4
        a = 1.0 + abs(rho)   # psi's no-arbitrage clamps (RegimeParams.psi_at)
        self._psi_cap = (0.995 * 2.0 / math.sqrt(a), 3.8 / (a * params.wing_cap))
        self._th30: float | None = None
        self._w30 = math.nan
        self._short: tuple[float, float] | None = None
        self._node_T: list[float] = []
        self._node_th: list[float] = []
        self._next = 0
        self._slices: dict[float, tuple[float, float, float, float]] = {}

    # ---- term structure ---------------------------------------------------------------------------------------
    def index_vol(self, T: float) -> float:
        """Index (variance-swap) vol at T: total variance linear in T between the index points, flat outside."""
        T = max(float(T), _T_FLOOR)
        return math.sqrt(index_variance(self._pts, T) / T)

    def target_variance(self, T: float) -> float:
        """Index total variance at T, below 30 days scaled by the fitted short-term term (1 + adj log(30 d / T))."""
        adj = 1.0 + self.params.short_term_adj * max(0.0, math.log(_T30 / max(T, 1.0 / 365.0)))
        return index_variance(self._pts, T) * adj

    @property
    def rho(self) -> float:
        return self._rho

    def psi(self, T: float) -> float:
        return self._slice(float(T))[1]

    def _solve(self, target: float, theta30: float | None, guess: float) -> float:
        """theta whose slice (psi depends on theta) has variance swap `target`: Newton on the table (_node_theta),
        or outside it the exact solve iterated on psi (d ln theta / d ln psi ~ -0.5, d ln psi / d ln theta =
        psi_theta: ~15x a step). theta30 None: the 30-day slice itself."""
        p = self.params
        th = _node_theta(self._table, target, self._rho, self._lpsi, p.psi_theta,
                         None if theta30 is None else math.log(theta30), p.wing_cap, math.log(guess))
        if th is not None:
            return th
        th = guess
        for _ in range(6):
            psi = p.psi_at(self._lpsi, th, th if theta30 is None else theta30, self._rho)
            th = float(solve_theta(target, _g_on_nodes(self._wing, self._rho, psi)))
        return th

    def _theta30(self) -> float:
        th = self._th30
        if th is None:
            w30 = self._w30 = self.target_variance(_T30)
            # first guess: ln(VS/theta) of the 30-day slice as a quadratic in (rho, psi), fitted on the 2006-2025
            # replay's slices with the default wing (|error| < 0.05 on 90% of them): one Newton step then suffices
            r, q = self._rho, min(math.exp(self._lpsi), 1.99)
            lr = -0.2484 + 0.4498 * r + 0.681 * q - 0.1266 * q * q - 0.3298 * r * q + 0.4642 * r * r
            th = self._th30 = self._solve(w30, None, w30 * math.exp(-min(max(lr, 0.0), 1.5)))
        return th

    def theta(self, T: float) -> float:
        """ATM total variance at T. At each index tenor that exists (9, 30, 91, 182 d) theta is solved so that the
        slice's variance swap equals the index there: 30 days first (the VIX, always exact), longer tenors floored
        at the tenor before them and the 9-day capped at the 30-day, so theta never falls with T; linear in T
        between tenors, flat ATM vol outside them. Tenors are solved only as needed (a 40-day slice needs 30 and
        91 days)."""
        th30 = self._theta30()
        if T <= _T30:
            short = self._short
            if short is None:
                t9 = self._pts[0][0]
                w9 = self.target_variance(t9)
                short = self._short = ((t9, min(th30, self._solve(w9, th30, w9 * th30 / self._w30)))
                                       if t9 < _T30 else (_T30, th30))
            t9, e9 = short
            if T <= t9:
                return e9 * T / t9
            return e9 + (th30 - e9) * (T - t9) / (_T30 - t9)
        Ts, ths, pts = self._node_T, self._node_th, self._pts
        if not Ts:
            Ts.append(_T30)
            ths.append(th30)
            self._next = next((i for i, (t, _) in enumerate(pts) if t > _T30), len(pts))
        while Ts[-1] < T and self._next < len(pts):
            t = pts[self._next][0]
            self._next += 1
            Ts.append(t)
            w = self.target_variance(t)
            ths.append(max(ths[-1], self._solve(w, th30, w * th30 / self._w30)))
        if T >= Ts[-1]:
            return ths[-1] * T / Ts[-1]
        i = 1
        while Ts[i] < T:
            i += 1
        return ths[i - 1] + (ths[i] - ths[i - 1]) * (T - Ts[i - 1]) / (Ts[i] - Ts[i - 1])

    def _slice(self, T: float) -> tuple[float, float, float, float, float, float]:
        """(theta, psi, forward, sqrt(theta), 1/sqrt(theta), theta/T) at T, memoised: a snapshot's legs share a few
        expiries, and the scalar smile reads the last three."""
        hit = self._slices.get(T)
        if hit is None:
            T1 = max(T, _T_FLOOR)
            th = self.theta(T1)
            sth = math.sqrt(th)
            c1, c2 = self._psi_cap   # RegimeParams.psi_at, inlined
            psi = min(math.exp(self._lpsi + self.params.psi_theta * math.log(th / self._th30)), c1, c2 / sth)
            hit = (th, psi, self.spot * math.exp(self._carry * T1), sth, 1.0 / sth, th / T1)
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
        hit = self._slices.get(T)
        _, psi, F, _, inv_sth, th_T = hit if hit is not None else self._slice(T)
        x = math.log(K / F) * inv_sth
        rho = self._rho
        px = psi * x
        f = 0.5 * (1.0 + rho * px + math.sqrt((px + rho) ** 2 + self._omr2))
        wx, ws, wb, wc, lo, hi = self._wingc
        u = (-x - wx) / ws
        if u > -25.0:   # below, the wing adds < 1e-12 of variance
            sp = ws * (u + math.log1p(math.exp(-u)) if u > 0.0 else math.log1p(math.exp(u)))
            f *= 1.0 + wc * math.tanh(wb * sp / wc)
        v = math.sqrt(th_T * f)
        return lo if v < lo else (min(v, hi))

    def vol(self, K, T):
        """Implied vol at strike K, expiry T (years); broadcasts over K and T."""
        if _all_scalar(K, T):
            return self._vol_scalar(float(K), float(T))
        K, T = np.broadcast_arrays(np.asarray(K, dtype=float), np.maximum(np.asarray(T, dtype=float), _T_FLOOR))
        out = np.empty(K.shape)
        flatK, flatT, flat = K.ravel(), T.ravel(), out.reshape(-1)
        for t in np.unique(flatT):
            sel = flatT == t
            th, psi, F, sth, _, _ = self._slice(float(t))
            x = np.log(flatK[sel] / F) / sth
            w = th * shape_f(x, self._rho, psi) * wing_m(x, self.params)
            flat[sel] = np.sqrt(w / t)
        p = self.params
        return np.clip(out, p.min_vol, p.max_vol)

    def variance_swap_vol(self, T: float) -> float:
        """The model's own variance-swap vol at T, integrated from its smile over the index's strike range (the
        index vol at the index tenors by construction)."""
        T = max(float(T), _T_FLOOR)
        th, psi = self._slice(T)[:2]
        g = _g_on_nodes(self._wing, self._rho, psi)
        return math.sqrt(float(slice_variance_swap(th, g)) / T)

    def __repr__(self) -> str:
        return f"RegimeSurface(spot={self.spot}, r={self.rate}, q={self.div_yield}, rho={self._rho:.3f}, state={self.state})"
