"""Fit and measure the regime-aware SPX surface (engine.spx_surface) on every real SPX chain in the data.

Market side: analysis.chain_iv (Black-76 IVs of OTM mids on each expiry's parity forward). Model side: the
surface built from the day's close state (VIX, VIX9D, VIX3M, VIX6M, VVIX, SKEW from the panel), evaluated at the
market's log-moneyness ln(K/F) and time to settlement (matched moneyness: isolates the surface from the 4:00 vs
4:15 pm spot gap and the dividend assumption), vectorised over every slice of every date so that a least-squares
fit of all shape coefficients takes seconds.

Protocol (docs/fidelity.md): FIT_DATES are fitted, every other SPX date is out of sample; half of the stressed
dates (VIX >= 25) are out of sample. Errors are reported per date and per bucket: 3-10, 10-30, 30-50 delta, puts
and calls separately, 7-20, 20-60, 60-90 days to expiry.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
import pandas as pd

from engine.spx_surface import RegimeParams, SurfaceState, index_term_points, shape_f, solve_theta, wing_m, _X

# In sample: calm and stressed days from each regime the data hold (2004, 2010, January 2018, the February 2018
# spike's first and fourth day and its tail, October 2018, 2020-09-04, the 2022-24 Cboe chains' early three).
FIT_DATES = ("2004-01-02", "2010-09-17", "2018-01-04", "2018-01-11", "2018-01-18", "2018-02-02", "2018-02-05",
             "2018-02-08", "2018-02-13", "2018-02-16", "2018-10-15", "2018-10-17", "2020-09-04", "2022-02-04",
             "2022-06-10", "2023-02-07")
FIT_DELTA = (0.03, 0.50)
FIT_DTE = (7, 90)
DELTA_BUCKETS = ((0.03, 0.10), (0.10, 0.30), (0.30, 0.50))
DTE_BUCKETS = ((7, 20), (20, 60), (60, 91))
STRESS_VIX = 25.0
SHAPE_FIELDS = ("rho0", "rho_vix", "rho_short", "rho_long", "rho_vvix", "rho_skew", "psi0", "psi_T", "psi_vix",
                "psi_short", "psi_long", "psi_vvix", "psi_skew", "wing_beta", "wing_x", "short_term_adj")
BOUNDS = {"rho0": (-3.0, 0.5), "psi0": (-2.0, 1.0), "psi_T": (0.0, 0.6), "wing_beta": (0.0, 0.3),
          "wing_x": (1.5, 5.0), "short_term_adj": (-0.1, 0.1)}
_DEFAULT_BOUND = (-3.0, 3.0)


def state_on(panel, date) -> SurfaceState:
    """The close state of `date` (what replay's close snapshot carries)."""
    r = panel.daily.loc[pd.Timestamp(date)]
    g = lambda c: float(r[c]) if c in r and pd.notna(r[c]) else math.nan
    return SurfaceState(g("vix_close"), g("vix9d_close"), g("vix3m_close"), g("vix6m_close"), g("vvix_close"),
                        g("skew_close"))


@dataclass
class FitData:
    """Every OTM SPX option to fit or score: one row each, with its slice id and the day's state."""

    options: pd.DataFrame        # date, slice, k, T, iv_mkt, abs_delta, right, dte, root, expiry, mid, ...
    slices: pd.DataFrame         # slice -> date, T
    states: dict[pd.Timestamp, SurfaceState]


def build_fit_data(market: pd.DataFrame, panel) -> FitData:
    """`market`: chain_iv.chain_market_iv rows of SPX chains with a `date` column."""
    m = market[(market["dte"] >= FIT_DTE[0]) & (market["dte"] <= FIT_DTE[1])].copy()
    states = {d: state_on(panel, d) for d in m["date"].unique()}
    keys = m[["date", "expiry", "root", "T"]].drop_duplicates(["date", "expiry", "root"]).reset_index(drop=True)
    keys["slice"] = np.arange(len(keys))
    m = m.merge(keys[["date", "expiry", "root", "slice"]], on=["date", "expiry", "root"])
    return FitData(m.reset_index(drop=True), keys, states)


def _feature_matrix(data: FitData) -> np.ndarray:
    return np.array([data.states[d].features() for d in data.slices["date"]])


def _index_variance(state: SurfaceState, T: float) -> float:
    pts = index_term_points(state)
    Ts = [t for t, _ in pts]
    ws = [w for _, w in pts]
    if T <= Ts[0]:
        return ws[0] / Ts[0] * T
    if T >= Ts[-1]:
        return ws[-1] / Ts[-1] * T
    return float(np.interp(T, Ts, ws))


def model_iv(params: RegimeParams, data: FitData) -> np.ndarray:
    """Model IV of every option in data.options (vectorised RegimeSurface: same formulas, exact theta solve)."""
    X = _feature_matrix(data)
    rc, pc = params.coefficients()
    T = data.slices["T"].to_numpy()
    rho = np.tanh(params.rho0 + X @ np.array(rc))
    te = np.clip(T * 365.0, params.term_min_days, params.term_max_days) / 30.0
    psi = np.exp(params.psi0 + params.psi_T * np.log(te) + X @ np.array(pc))
    psi = np.minimum(psi, 0.995 * 2.0 / np.sqrt(1.0 + np.abs(rho)))
    target = np.array([_index_variance(data.states[d], t) for d, t in zip(data.slices["date"], T)])
    target *= 1.0 + params.short_term_adj * np.maximum(0.0, np.log((30 / 365) / np.maximum(T, 1 / 365)))
    g = shape_f(_X[None, :], rho[:, None], psi[:, None]) * wing_m(_X[None, :], params)
    theta = solve_theta(target, g)
    s = data.options["slice"].to_numpy()
    x = data.options["k"].to_numpy() / np.sqrt(theta[s])
    w = theta[s] * shape_f(x, rho[s], psi[s]) * wing_m(x, params)
    return np.clip(np.sqrt(w / data.options["T"].to_numpy()), params.min_vol, params.max_vol)


def with_values(base: RegimeParams, names: Sequence[str], x: Iterable[float]) -> RegimeParams:
    return RegimeParams(**{**asdict(base), **dict(zip(names, map(float, x)))})


@dataclass
class SurfaceFit:
    params: RegimeParams
    fit_dates: tuple[str, ...]
    cost: float


def fit_surface(data: FitData, fit_dates: Sequence[str] = FIT_DATES, base: RegimeParams = RegimeParams(),
                names: Sequence[str] = SHAPE_FIELDS) -> SurfaceFit:
    """Soft-L1 least squares on the IV error (vol points) of the fit dates' OTM options, |delta| 0.03-0.50, 7-90
    DTE; each date weighs the same whatever its option count."""
    from scipy.optimize import least_squares

    fd = pd.to_datetime(list(fit_dates))
    opt = data.options
    sel = opt["date"].isin(fd) & opt["abs_delta"].between(*FIT_DELTA)
    sub = FitData(opt[sel].copy(), data.slices, data.states)
    used = np.unique(sub.options["slice"])
    remap = -np.ones(len(data.slices), dtype=int)
    remap[used] = np.arange(len(used))
    sub.slices = data.slices.iloc[used].reset_index(drop=True)
    sub.options["slice"] = remap[sub.options["slice"].to_numpy()]
    per_date = sub.options.groupby("date")["k"].transform("size").to_numpy()
    wts = 1.0 / np.sqrt(per_date)
    iv = sub.options["iv_mkt"].to_numpy()

    def resid(x):
        return (model_iv(with_values(base, names, x), sub) - iv) * 100.0 * wts

    x0 = np.array([getattr(base, n) for n in names])
    lo = np.array([BOUNDS.get(n, _DEFAULT_BOUND)[0] for n in names])
    hi = np.array([BOUNDS.get(n, _DEFAULT_BOUND)[1] for n in names])
    sol = least_squares(resid, np.clip(x0, lo + 1e-9, hi - 1e-9), bounds=(lo, hi), loss="soft_l1", f_scale=0.1,
                        x_scale="jac")
    return SurfaceFit(with_values(base, names, np.round(sol.x, 5)), tuple(fit_dates), float(sol.cost))


def _bucket(x: pd.Series, edges, fmt) -> pd.Series:
    out = pd.Series(pd.NA, index=x.index, dtype="object")
    for lo, hi in edges:
        out[(x >= lo) & (x < hi)] = fmt(lo, hi)
    return out


def surface_errors(params: RegimeParams, data: FitData, vix: pd.Series) -> pd.DataFrame:
    """One row per option: model and market IV, error (model - market, vol points), buckets, sample tag."""
    e = data.options.copy()
    e["iv_model"] = model_iv(params, data)
    e["iv_err"] = (e["iv_model"] - e["iv_mkt"]) * 100.0
    e["delta_bucket"] = _bucket(e["abs_delta"], DELTA_BUCKETS, lambda a, b: f"{a * 100:.0f}-{b * 100:.0f}d")
    e["dte_bucket"] = _bucket(e["dte"], DTE_BUCKETS, lambda a, b: f"{a}-{b - 1 if b == 91 else b}")
    e["side"] = np.where(e["right"] == "P", "put", "call")
    e["vix"] = e["date"].map(vix)
    return e


def per_date(err: pd.DataFrame, fit_dates: Sequence[str] = FIT_DATES) -> pd.DataFrame:
    """Per date: median |IV error| of OTM 3-50 delta options 7-90 DTE, bias, count, the 3-10 delta put bucket, and
    the acceptance target that applies at that VIX."""
    fd = set(pd.to_datetime(list(fit_dates)))
    e = err[err["abs_delta"].between(0.03, 0.50)]
    rows = []
    for (d, und), g in e.groupby(["date", "und"]):
        p310 = g[(g["side"] == "put") & (g["delta_bucket"] == "3-10d")]["iv_err"]
        vix = float(g["vix"].iloc[0])
        rows.append({"date": d.date(), "und": und, "sample": "in" if d in fd else "out", "vix": vix, "n": len(g),
                     "median_abs": float(g["iv_err"].abs().median()), "bias": float(g["iv_err"].median()),
                     "put_3_10_abs": float(p310.abs().median()) if len(p310) else math.nan,
                     "target": 1.0 if vix < 20 else (2.0 if vix >= STRESS_VIX else math.nan)})
    return pd.DataFrame(rows)


def bucket_table(err: pd.DataFrame, by: Sequence[str] = ("date", "side", "delta_bucket", "dte_bucket")) -> pd.DataFrame:
    e = err.dropna(subset=["delta_bucket", "dte_bucket"])
    return (e.groupby(list(by)).agg(n=("iv_err", "size"), median_abs=("iv_err", lambda s: s.abs().median()),
                                    bias=("iv_err", "median")).reset_index())


def params_table(p: RegimeParams) -> dict[str, float]:
    return {f.name: getattr(p, f.name) for f in fields(p)}
