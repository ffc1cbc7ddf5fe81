"""VIX options from real quotes: the VIX-option smile (engine.volsurface.VixOptionSurface: ATM level against VVIX,
term decay, call skew) fitted to the three VIX option chains in the data, each expiry on its own forward.

Chains (SOURCES.md section 10): 2019-08-29 (downloaded 09:28 ET, before the open: the quotes are the prior close or
early global-trading-hours quotes, so the VVIX that goes with them is 2019-08-28's close), 2021-04-26 (DataShop
intervals; the 16:15 ET stamp, the close) and 2023-02-15 (Gatheral's end-of-day implied vols). The forward of each
expiry is its own: put-call parity (2019), the file's implied_underlying_price (2021) or Fwd (2023); a VIX option
is an option on the VX future of its expiry, never on spot VIX (analysis.chain_iv).

Model IVs are evaluated at the market's log-moneyness ln(K/F) and time to the 09:30 ET settlement. The ATM term
structure is a mean-reverting variance, atm(T)^2 = L^2 + (S^2 - L^2)(1 - e^-kT)/(kT) with the short end S tied to
VVIX: the three chains' term structures (20-day ATM 1.39 falling to 0.82 at 111 days in 2019, 0.99 to 0.93 in
2023) leave a power law in T 9 vol points off on two of them. Fitted: atm_ratio (S / VVIX), long_vol (L), kappa
and skew on the calls and puts with |delta| 0.10-0.50 and 14-120 days to expiry of all three chains (soft-L1,
each chain weighted equally); with three chains there is no chain left to hold out, so the report also gives each
chain's error when the other two are fitted (leave-one-chain-out).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.chain_iv import chain_market_iv
from engine.volsurface import VixOptionParams, VixOptionSurface, front_future

CHAINS = {  # date -> (file under vix_option_chains/, which snapshot, the VVIX close that goes with the quotes)
    "2019-08-29": ("vix_chain_2019-08-29_0928ET_cboe_quotedata.dat", 0, "2019-08-28"),
    "2021-04-26": ("vix_options_intervals_2021-04-26_cboe_datashop_sample.csv", -1, "2021-04-26"),
    "2023-02-15": ("vix_ivols_2023-02-15_gatheral.csv", 0, "2023-02-15"),
}
FIT_FIELDS = ("atm_ratio", "long_vol", "long_vol_contango", "kappa", "skew_vol")
BOUNDS = {"atm_ratio": (0.3, 3.0), "long_vol": (0.0, 2.0), "long_vol_contango": (-10.0, 10.0), "kappa": (0.1, 100.0),
          "skew_vol": (0.0, 3.0)}
FIT_DELTA = (0.10, 0.50)
FIT_DTE = (14, 120)
START = {"atm_ratio": 1.1, "long_vol": 0.5, "long_vol_contango": 0.0, "kappa": 10.0, "skew_vol": 0.8}
TARGET = 3.0   # acceptance: median |IV error| <= 3 vol points per chain, 10-50 delta calls, 14-120 DTE


def load_vix_market(data_dir, panel) -> pd.DataFrame:
    """Market IVs of every OTM VIX option of the three chains, with the chain date and the VVIX of its quotes."""
    from adapters.data.chain_layouts import load_option_file

    parts = []
    for date, (name, which, vvix_day) in CHAINS.items():
        snap = load_option_file(Path(data_dir) / "vix_option_chains" / name)[which]
        mk = chain_market_iv(snap)
        day = pd.Timestamp(vvix_day)
        vvix, vix = (float(panel.daily.loc[day, c]) for c in ("vvix_close", "vix_close"))
        parts.append(mk.assign(date=date, vvix=vvix, vix=vix, front=_front_vx(panel, day, date)))
    return pd.concat(parts, ignore_index=True)


def _front_vx(panel, day: pd.Timestamp, chain_date: str) -> float:
    """The front VX settlement the replay would see with these quotes (engine.volsurface.front_future, as
    MarketModel.vx_front): settled on `day`, counted from the chain's date."""
    vx = panel.vx[pd.DatetimeIndex(panel.vx["date"]) == day]
    curve = {pd.Timestamp(e).date(): float(v) for e, v in zip(vx["expiry"], vx["settle"])}
    front = front_future(curve, pd.Timestamp(chain_date).date(), _DEFAULT_PARAMS)
    if not math.isfinite(front):
        raise ValueError(f"no VX settlement on {day.date()} at least {_DEFAULT_PARAMS.front_min_days:g} days "
                         f"before expiry: the VIX option fit needs the front future")
    return front


def model_iv(params: VixOptionParams, mk: pd.DataFrame) -> np.ndarray:
    out = np.empty(len(mk))
    for (F, vvix, vix, front), idx in mk.groupby(["F", "vvix", "vix", "front"]).indices.items():
        g = mk.iloc[idx]
        surf = VixOptionSurface(F, 0.0, vvix, params, vix=vix, front=front)
        out[idx] = surf.vol(g["strike"].to_numpy(), g["T"].to_numpy())
    return out


def _fit_rows(mk: pd.DataFrame) -> pd.DataFrame:
    return mk[mk["abs_delta"].between(*FIT_DELTA) & mk["dte"].between(*FIT_DTE)]


_DEFAULT_PARAMS = VixOptionParams()


def fit_vix_options(mk: pd.DataFrame, base: VixOptionParams = _DEFAULT_PARAMS, dates=None) -> VixOptionParams:
    """Fit FIT_FIELDS on the chains `dates` (all by default); the smile's skew is additive (skew = 0) and the
    contango feature is clipped to the range those chains span, so the long end never extrapolates beyond them."""
    from scipy.optimize import least_squares

    sub = _fit_rows(mk if dates is None else mk[mk["date"].isin(dates)])
    c = np.log(sub["front"] / sub["vix"])
    base = replace(base, skew=0.0, contango_min=round(float(c.min()), 4), contango_max=round(float(c.max()), 4))
    w = 1.0 / np.sqrt(sub.groupby("date")["k"].transform("size").to_numpy())
    iv = sub["iv_mkt"].to_numpy()

    def resid(x):
        return (model_iv(replace(base, **dict(zip(FIT_FIELDS, x))), sub) - iv) * 100.0 * w

    warm = base.long_vol_contango != 0.0 or base.skew_vol != 0.0      # base is already a fit of this form
    x0 = np.array([getattr(base, f) if warm else START[f] for f in FIT_FIELDS])
    lo = np.array([BOUNDS[f][0] for f in FIT_FIELDS])
    hi = np.array([BOUNDS[f][1] for f in FIT_FIELDS])
    sol = least_squares(resid, np.clip(x0, lo, hi), bounds=(lo, hi), loss="soft_l1", f_scale=1.0, x_scale="jac")
    return replace(base, **{f: round(float(v), 4) for f, v in zip(FIT_FIELDS, sol.x)})


def fitted_values(p: VixOptionParams) -> dict[str, float]:
    """Every field a fit sets: FIT_FIELDS, the skew it fixes and the contango range of its chains."""
    return {f: getattr(p, f) for f in (*FIT_FIELDS, "skew", "contango_min", "contango_max")}


def errors(params: VixOptionParams, mk: pd.DataFrame) -> pd.DataFrame:
    e = mk.copy()
    e["iv_model"] = model_iv(params, e)
    e["iv_err"] = (e["iv_model"] - e["iv_mkt"]) * 100.0
    return e


def per_chain(err: pd.DataFrame) -> pd.DataFrame:
    """Per chain: median |IV error| (vol points) of the acceptance set (10-50 delta calls, 14-120 DTE), its bias,
    and the same for puts."""
    rows = []
    for date, g in _fit_rows(err).groupby("date"):
        c, p = g[g["right"] == "C"], g[g["right"] == "P"]
        rows.append({"date": date, "vvix": float(g["vvix"].iloc[0]), "n_calls": len(c),
                     "calls_median_abs": float(c["iv_err"].abs().median()), "calls_bias": float(c["iv_err"].median()),
                     "n_puts": len(p), "puts_median_abs": float(p["iv_err"].abs().median()) if len(p) else math.nan,
                     "met": float(c["iv_err"].abs().median()) <= TARGET})
    return pd.DataFrame(rows)


def per_expiry(err: pd.DataFrame) -> pd.DataFrame:
    """Per chain and expiry (calls, 10-50 delta): forward, days, market and model ATM-ish level, median error."""
    g = _fit_rows(err)
    g = g[g["right"] == "C"]
    return (g.groupby(["date", "expiry", "root"]).agg(F=("F", "first"), dte=("dte", "first"), n=("iv_err", "size"),
                                                      iv_mkt=("iv_mkt", "median"), iv_model=("iv_model", "median"),
                                                      median_abs=("iv_err", lambda s: s.abs().median()),
                                                      bias=("iv_err", "median")).reset_index())


@dataclass
class VixOptionFit:
    params: VixOptionParams
    before: VixOptionParams
    table: pd.DataFrame          # per chain: fitted (in sample), leave-one-chain-out, and before fitting
    expiries: pd.DataFrame
    errors: pd.DataFrame

    def fitted(self) -> dict[str, float]:
        return fitted_values(self.params)


def run_vix_option_fit(data_dir, panel, base: VixOptionParams = _DEFAULT_PARAMS) -> VixOptionFit:
    mk = load_vix_market(data_dir, panel)
    params = fit_vix_options(mk, base)
    err = errors(params, mk)
    tab = per_chain(err).set_index("date")
    before = per_chain(errors(base, mk)).set_index("date")
    tab["before_calls_median_abs"] = before["calls_median_abs"]
    for d in CHAINS:
        loo = fit_vix_options(mk, base, dates=[x for x in CHAINS if x != d])
        tab.loc[d, "loo_calls_median_abs"] = per_chain(errors(loo, mk[mk["date"] == d]))["calls_median_abs"].iloc[0]
    return VixOptionFit(params, base, tab.reset_index(), per_expiry(err), err)


def params_dict(p: VixOptionParams) -> dict[str, float]:
    return asdict(p)
