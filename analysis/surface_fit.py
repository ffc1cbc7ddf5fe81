"""Fit and measure the regime-aware SPX surface (engine.regime_surface) on every real SPX chain in the data.

Market side: analysis.chain_iv (Black-76 IVs of OTM mids on each expiry's parity forward). Model side: the surface
built from the day's close state (VIX, VIX9D, VIX3M, VIX6M, VVIX, SKEW from the panel, as replay's close snapshot
carries them), evaluated at the market's log-moneyness ln(K/F) and time to settlement
(matched moneyness: isolates the surface from the 4:00 vs 4:15 pm spot gap and the dividend assumption). The model
here is the engine's formulas vectorised over every slice of every date, so a least-squares fit of all shape
coefficients takes seconds; a test checks it equals RegimeSurface.vol.

Protocol (docs/fidelity.md): FIT_DATES are fitted, every other SPX date is out of sample; four of the eight
stressed dates (VIX >= 25) are out of sample. Errors are reported per date and per bucket: 3-10, 10-30, 30-50
delta, puts and calls separately, 7-20, 20-60, 60-90 days to expiry.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
import pandas as pd

from engine.regime_surface import (
    FEATURES,
    X_NODES,
    RegimeParams,
    SurfaceState,
    index_term_points,
    shape_f,
    slice_variance_swap,
    wing_m,
)

# In sample: one or two days of each regime the data hold, calm and stressed: January 2018 (VIX 9-12), the
# February 2018 spike's eve, first and fourth day and its tail, October 2018, 2020-09-04, and the 2022-23 Cboe chains
# that were the previous calibration set. Out of sample: 2004, 2010, 2019, 2022-01, 2023-02-15, 2023-08..2024-01,
# the rest of January and February 2018 (2018-02-06, -07, -09 and -12 are four of the eight stressed dates) and
# 2018-10-16..19. 2018-02-05 is in sample because it is the one day in the data with the index term structure of a
# crash (VIX9D/VIX 1.59, VIX/VIX3M 1.33): a held-out crash elsewhere has only it to be learnt from.
FIT_DATES = ("2018-01-08", "2018-01-18", "2018-02-02", "2018-02-05", "2018-02-08", "2018-02-13", "2018-02-16",
             "2018-10-15", "2020-09-04", "2022-02-04", "2022-06-10", "2023-02-07")
FIT_DELTA = (0.03, 0.50)
FIT_DTE = (7, 90)
# Fitted: the level/shape intercepts, the term exponent, the wing, the short-term level term and the state slopes.
SHAPE_FIELDS = ("rho0", "psi0", "psi_theta", "wing_beta", "wing_x", "short_term_adj",
                *(f"rho_{f}" for f in FEATURES), *(f"psi_{f}" for f in FEATURES))
BOUNDS = {"rho0": (-3.0, 0.5), "psi0": (-2.0, 1.0), "psi_theta": (0.0, 0.6), "wing_beta": (0.0, 0.3),
          "wing_x": (1.0, 5.0), "short_term_adj": (-0.1, 0.1)}
_DEFAULT_BOUND = (-3.0, 3.0)
RIDGE = 0.3          # chosen by leave-one-episode-out cross-validation (docs/fidelity.md)
def state_on(panel, date) -> SurfaceState:
    """The close state of `date` (what replay's close snapshot carries)."""
    d = panel.daily
    day = pd.Timestamp(date)
    r = d.loc[day]
    g = lambda c: float(r[c]) if c in r and pd.notna(r[c]) else math.nan
    return SurfaceState(g("vix_close"), g("vix9d_close"), g("vix3m_close"), g("vix6m_close"), g("vvix_close"),
                        g("skew_close"))


@dataclass
class FitData:
    """Every OTM SPX option to fit or score: one row each, with its slice id and the day's state."""

    options: pd.DataFrame        # date, slice, k, T, iv_mkt, abs_delta, right, dte, root, expiry, mid, ...
    slices: pd.DataFrame         # slice -> date, expiry, root, T
    states: dict[pd.Timestamp, SurfaceState]

    def subset(self, mask) -> FitData:
        """The options under `mask`, with slices renumbered to the ones they use."""
        opt = self.options[mask]
        used = np.unique(opt["slice"].to_numpy())
        remap = -np.ones(len(self.slices), dtype=int)
        remap[used] = np.arange(len(used))
        return FitData(opt.assign(slice=remap[opt["slice"].to_numpy()]).reset_index(drop=True),
                       self.slices.iloc[used].reset_index(drop=True), self.states)


def build_fit_data(market: pd.DataFrame, panel) -> FitData:
    """`market`: chain_iv.chain_market_iv rows of SPX chains with a `date` column."""
    m = market[(market["dte"] >= FIT_DTE[0]) & (market["dte"] <= FIT_DTE[1])].copy()
    states = {d: state_on(panel, d) for d in m["date"].unique()}
    keys = m[["date", "expiry", "root", "T"]].drop_duplicates(["date", "expiry", "root"]).reset_index(drop=True)
    keys["slice"] = np.arange(len(keys))
    m = m.merge(keys[["date", "expiry", "root", "slice"]], on=["date", "expiry", "root"])
    return FitData(m.reset_index(drop=True), keys, states)


def _psi(params: RegimeParams, lpsi, theta, theta30, rho):
    a = 1.0 + np.abs(rho)
    return np.minimum.reduce([np.exp(lpsi + params.psi_theta * np.log(theta / theta30)), 0.995 * 2.0 / np.sqrt(a),
                              3.8 / (np.sqrt(theta) * a * params.wing_cap)])


def _adj(params: RegimeParams, T):
    return 1.0 + params.short_term_adj * np.maximum(0.0, np.log((30 / 365) / np.maximum(T, 1 / 365)))


def _theta_nodes(params: RegimeParams, rho, lpsi, target, is30, owner, iters: int = 12):
    """RegimeSurface._theta_nodes for many dates at once: each node's theta with variance swap = target, psi at
    that theta (relative to its date's theta_30); one fixed point over all nodes, solved exactly (no table)."""
    wing = wing_m(X_NODES, params)[None, :]
    i30 = np.flatnonzero(is30)
    where30 = np.empty(int(owner.max()) + 1, dtype=int)
    where30[owner[i30]] = i30
    th = target / 1.5
    for _ in range(iters):
        th30 = th[where30[owner]]
        psi = _psi(params, lpsi, th, np.where(is30, th, th30), rho)
        g = shape_f(X_NODES[None, :], rho[:, None], psi[:, None]) * wing
        th = target * th / slice_variance_swap(th, g)
    return th, th[where30[owner]]


def model_iv(params: RegimeParams, data: FitData) -> np.ndarray:
    """Model IV of every option in data.options: RegimeSurface's formulas (rho, psi with psi_at's clamps, the tenor
    solve, theta's interpolation) vectorised over dates and slices."""
    dates = list(data.states)
    di = {d: i for i, d in enumerate(dates)}
    X = np.array([data.states[d].features() for d in dates]).reshape(len(dates), len(FEATURES))
    rc, pc = params.coefficients()
    rho_d = np.tanh(params.rho0 + X @ np.array(rc))
    lpsi_d = params.psi0 + X @ np.array(pc)
    pts = {d: index_term_points(data.states[d], params.level_scale) for d in dates}
    nd = np.array([di[d] for d in dates for _ in pts[d]])
    nT = np.array([t for d in dates for t, _ in pts[d]])
    target = np.array([w for d in dates for _, w in pts[d]]) * _adj(params, nT)
    th_n, th30_n = _theta_nodes(params, rho_d[nd], lpsi_d[nd], target, nT == 30 / 365, nd)
    th30_d = np.empty(len(dates))
    th30_d[nd] = th30_n
    sd = np.array([di[d] for d in data.slices["date"]])
    T = data.slices["T"].to_numpy()
    theta = np.empty(len(T))
    for i in range(len(dates)):   # 30 days exact, the 9-day capped at it, longer tenors floored: see theta()
        sel_n, sel_s = nd == i, sd == i
        if not sel_s.any():
            continue
        tn, wn = nT[sel_n], th_n[sel_n].copy()
        k30 = int(np.flatnonzero(np.isclose(tn, 30 / 365))[0])
        wn[:k30] = np.minimum(wn[:k30], wn[k30])
        wn[k30:] = np.maximum.accumulate(wn[k30:])
        t = T[sel_s]
        theta[sel_s] = np.where(t <= tn[0], wn[0] * t / tn[0], np.where(t >= tn[-1], wn[-1] * t / tn[-1],
                                                                          np.interp(t, tn, wn)))
    rho = rho_d[sd]
    psi = _psi(params, lpsi_d[sd], theta, th30_d[sd], rho)
    s = data.options["slice"].to_numpy()
    x = data.options["k"].to_numpy() / np.sqrt(theta[s])
    w = theta[s] * shape_f(x, rho[s], psi[s]) * wing_m(x, params)
    return np.clip(np.sqrt(w / data.options["T"].to_numpy()), params.min_vol, params.max_vol)


def with_values(base: RegimeParams, names: Sequence[str], x) -> RegimeParams:
    return RegimeParams(**{**asdict(base), **dict(zip(names, map(float, x)))})


@dataclass
class SurfaceFit:
    params: RegimeParams
    fit_dates: tuple[str, ...]
    cost: float
    n_options: int


_DEFAULT_PARAMS = RegimeParams()


def fit_surface(data: FitData, fit_dates: Sequence[str] = FIT_DATES, base: RegimeParams = _DEFAULT_PARAMS,
                names: Sequence[str] = SHAPE_FIELDS, ridge: float = RIDGE) -> SurfaceFit:
    """Soft-L1 least squares on the IV error (vol points) of the fit dates' OTM options, |delta| 0.03-0.50, 7-90
    DTE; each date weighs the same whatever its option count (a Cboe chain holds 50x the options of a vendor day).
    The state slopes (rho_<feature>, psi_<feature>) carry a ridge penalty `ridge` x slope^2 per fit date: with a
    dozen fit dates, a slope the dates do not pin down stays near zero instead of extrapolating."""
    from scipy.optimize import least_squares

    fd = pd.to_datetime(list(fit_dates))
    opt = data.options
    sub = data.subset((opt["date"].isin(fd) & opt["abs_delta"].between(*FIT_DELTA)).to_numpy())
    wts = 1.0 / np.sqrt(sub.options.groupby("date")["k"].transform("size").to_numpy())
    iv = sub.options["iv_mkt"].to_numpy()

    slope = np.array([n.startswith(("rho_", "psi_")) and n != "psi_theta" for n in names])
    pen = math.sqrt(ridge * sub.options["date"].nunique())

    def resid(x):
        fit = (model_iv(with_values(base, names, x), sub) - iv) * 100.0 * wts
        return np.concatenate([fit, pen * x[slope]]) if ridge > 0 else fit

    x0 = np.array([getattr(base, n) for n in names])
    lo = np.array([BOUNDS.get(n, _DEFAULT_BOUND)[0] for n in names])
    hi = np.array([BOUNDS.get(n, _DEFAULT_BOUND)[1] for n in names])
    sol = least_squares(resid, np.clip(x0, lo + 1e-9, hi - 1e-9), bounds=(lo, hi), loss="soft_l1", f_scale=0.1,
                        x_scale="jac")
    return SurfaceFit(with_values(base, names, np.round(sol.x, 4)), tuple(fit_dates), float(sol.cost),
                      len(sub.options))


def surface_errors(params: RegimeParams, data: FitData, vix: pd.Series, fit_dates: Sequence[str] = FIT_DATES) -> pd.DataFrame:
    """One row per option: model (this module's vectorised model) and market IV, error (vol points), annotated as
    analysis.spx_surface annotates the replay model's errors."""
    from analysis.spx_surface import annotate

    e = data.options.copy()
    e["iv_model"] = model_iv(params, data)
    e["iv_err"] = (e["iv_model"] - e["iv_mkt"]) * 100.0
    return annotate(e, vix, fit_dates)


def params_table(p: RegimeParams) -> dict[str, float]:
    return {f.name: getattr(p, f.name) for f in fields(p)}
