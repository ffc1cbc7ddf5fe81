"""`alvh calibrate`: fit the pricing parameters on early data only and report the fit on later data.

- SPX surface shape (engine.volsurface.SkewParams): least squares on the implied-vol error of the three earliest
  Cboe chain snapshots (2022-02-04, 2022-06-10, 2023-02-07), all out-of-the-money options with |delta| 0.03-0.50
  and 7-90 days to expiry; the three later chains (2023-08-18, 2023-09-14, 2024-01-05) are out of sample.
  The model is evaluated exactly as replay builds it at the close (analysis.spx_surface.surface_errors).
- SPX option spread model (execution.spreads.spx_option base and pct): median (L1) fit of the quoted
  half-spread on the same three early chains, out of sample on the later three. No option quotes from
  2006-2015 exist in shared/data, so the spread model can only be fitted on the chain snapshots.
- VIX-option vol mapping (engine.volsurface.VixOptionParams), VX futures settlements and VVIX 2007-2015 only
  (VVIX before 2007 is unreliable), 2016-2025 out of sample. With no VIX option quotes in the data, two things
  are identified:
    * term_beta, the maturity decay of the ATM vol: the realized variance of each VX contract's daily
      log-changes, relative to VVIX^2, as a function of days to expiry, accumulated over an option's life
      (the vol an option of maturity T would realize) and fitted as a power law in T;
    * atm_ratio: VVIX is the 30-day model-free (variance-swap) vol of VIX options, so the 30-day ATM vol must
      be VVIX divided by the smile's variance-swap/ATM ratio, which the model's own smile (skew, caps) fixes.
  The skew itself cannot be identified without option quotes; it stays a documented assumption, and the
  realized/implied ratio (the volatility risk premium) is reported, not used.

Outputs a TOML fragment (config/calibrated.toml) with the values and the windows they came from.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import spx_surface as F
from engine.execution import ExecutionParams, SpreadParams
from engine.marketmodel import PricingParams
from engine.pricing import black76_price
from engine.volsurface import SkewParams, VixOptionParams, VixOptionSurface

SKEW_FIT_FIELDS = ("atm_ratio", "atm_ratio_term_exp", "slope", "slope_term_exp", "curvature", "call_wing_floor")
SKEW_BOUNDS = {
    "atm_ratio": (0.5, 1.2), "atm_ratio_term_exp": (-0.3, 0.3), "slope": (-0.6, 0.0), "slope_term_exp": (-0.5, 1.0),
    "curvature": (0.0, 0.1), "call_wing_floor": (0.4, 1.0),
}
FIT_DELTA = (0.03, 0.50)
FIT_DTE = (7, 90)
VIX_IN_SAMPLE = ("2007-01-01", "2015-12-31")
VIX_OUT_SAMPLE = ("2016-01-01", "2025-12-31")


# ------------------------------------------------------------------------------------------------------------
# SPX skew
# ------------------------------------------------------------------------------------------------------------
@dataclass
class ChainData:
    date: str
    market: pd.DataFrame       # fidelity.chain_market_iv rows restricted to the fit window
    chain: object


def load_chain_data(data_dir, dates=None) -> dict[str, ChainData]:
    from adapters.data.chains import list_chains, load_chain

    out = {}
    for path in list_chains(data_dir):
        ch = load_chain(path)
        d = str(ch.trade_date.date())
        if dates is not None and d not in dates:
            continue
        mk = F.chain_market_iv(ch)
        out[d] = ChainData(d, mk, ch)
    return out


def _fit_frame(mk: pd.DataFrame) -> pd.DataFrame:
    lo, hi = FIT_DELTA
    a, b = FIT_DTE
    return mk[(mk["abs_delta"] >= lo) & (mk["abs_delta"] <= hi) & (mk["dte"] >= a) & (mk["dte"] <= b)]


def skew_errors(panel, chains: dict[str, ChainData], pricing: PricingParams) -> dict[str, pd.DataFrame]:
    return {d: F.surface_errors(c.chain, panel, pricing, market=c.market) for d, c in chains.items()}


@dataclass
class SkewFit:
    params: dict[str, float]
    default_params: dict[str, float]
    in_sample: list[str]
    out_sample: list[str]
    summary_default: pd.DataFrame
    summary_fitted: pd.DataFrame
    errors_fitted: dict[str, pd.DataFrame]
    errors_default: dict[str, pd.DataFrame]
    div_yield_implied: pd.DataFrame
    cost: float = math.nan


def fit_spx_skew(panel, chains: dict[str, ChainData], base: PricingParams | None = None,
                 in_sample=F.CALIBRATION_CHAINS) -> SkewFit:
    """Least-squares (soft-L1, 1 vol point scale) fit of SKEW_FIT_FIELDS on the in-sample chains."""
    from scipy.optimize import least_squares

    from analysis.spx_surface import close_snapshot_model
    from engine.instruments import spx_option
    from engine.marketmodel import MarketModel

    base = base or PricingParams()
    start = base.skew()
    ins = [d for d in in_sample if d in chains]
    # Pre-compute per chain: the close model's inputs and the option set
    prepared = []
    for d in ins:
        mk = _fit_frame(chains[d].market)
        mk = mk[(mk["dte"] >= 7) & (mk["dte"] <= 90)]
        m0 = close_snapshot_model(panel, chains[d].chain.trade_date, base)
        opts = [spx_option(e.date(), k, r, root) for e, k, r, root in zip(mk["expiry"], mk["strike"], mk["right"], mk["root"])]
        Tm = np.array([m0.years_to(o) for o in opts])
        prepared.append((m0.snapshot, Tm, mk["strike"].to_numpy() / mk["F"].to_numpy(), mk["iv_mkt"].to_numpy()))
    names = list(SKEW_FIT_FIELDS)
    x0 = np.array([getattr(start, n) for n in names])
    lo = np.array([SKEW_BOUNDS[n][0] for n in names])
    hi = np.array([SKEW_BOUNDS[n][1] for n in names])
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)
    other = {f.name: getattr(start, f.name) for f in fields(SkewParams) if f.name not in names}

    def resid(x):
        sk = SkewParams(**other, **dict(zip(names, x)))
        out = []
        for snap, Tm, moneyness, iv in prepared:
            s = MarketModel(snap, base, skew=sk).surface
            Fm = s.forward(Tm)
            out.append((s.vol(Fm * moneyness, Tm) - iv) * 100.0 / math.sqrt(len(iv)))
        return np.concatenate(out)

    sol = least_squares(resid, x0, bounds=(lo, hi), loss="soft_l1", f_scale=1.0 / math.sqrt(600), x_scale="jac")
    fitted = {**{n: float(round(v, 4)) for n, v in zip(names, sol.x)}}
    pr_fit = base.model_copy(update={"spx_skew": {**base.spx_skew, **fitted}})
    err_default = skew_errors(panel, chains, base)
    err_fit = skew_errors(panel, chains, pr_fit)
    # implied dividend yield against the simulator's spot and T-bill rate (diagnostic)
    rows = []
    for d, c in chains.items():
        fw = F.chain_forwards(c.chain)
        fw = fw[(fw["dte"] >= 20) & (fw["dte"] <= 180)]
        m0 = close_snapshot_model(panel, c.chain.trade_date, base)
        q = m0.rate - np.log(fw["F"] / m0.spot) / fw["T"]
        rows.append({"date": d, "sample": "in" if d in ins else "out", "q_vs_tbill_and_close": float(q.median()),
                     "q_parity": float(fw["q_impl"].median()), "r_parity": float(fw["r_impl"].median()),
                     "r_tbill": m0.rate})
    return SkewFit(params=fitted, default_params={n: getattr(start, n) for n in names}, in_sample=ins,
                   out_sample=[d for d in chains if d not in ins], summary_default=F.surface_summary(err_default),
                   summary_fitted=F.surface_summary(err_fit), errors_fitted=err_fit, errors_default=err_default,
                   div_yield_implied=pd.DataFrame(rows), cost=float(sol.cost))


# ------------------------------------------------------------------------------------------------------------
# SPX spread model
# ------------------------------------------------------------------------------------------------------------
@dataclass
class SpreadFit:
    base: float
    pct: float
    default: SpreadParams
    table: pd.DataFrame   # per date: median |error| of the half-spread, default vs fitted


def _stress(vix: float, k: float) -> float:
    return 1.0 + k * max(0.0, (vix - 20.0) / 20.0)


def fit_spx_spread(panel, chains: dict[str, ChainData], in_sample=F.CALIBRATION_CHAINS,
                   execution: ExecutionParams | None = None) -> SpreadFit:
    """Median fit of half-spread = (base + pct * mid) * stress(VIX) on OTM SPX/SPXW options with |delta| 0.05-0.50
    and 7-90 DTE (min_half/max_half/tick and the stress slope stay as configured)."""
    from scipy.optimize import minimize

    ex = execution or ExecutionParams()
    sp = ex.spreads["spx_option"]
    data = {}
    for d, c in chains.items():
        mk = c.market
        mk = mk[(mk["abs_delta"] >= 0.05) & (mk["abs_delta"] <= 0.5) & (mk["dte"] >= 7) & (mk["dte"] <= 90)]
        vix = float(panel.daily.loc[c.chain.trade_date, "vix_close"])
        data[d] = (mk["mid"].to_numpy(), ((mk["ask"] - mk["bid"]) / 2.0).to_numpy(), _stress(vix, ex.stress_vix_k))

    def model(b, p, mid, stress):
        return np.clip(b + p * mid, sp.min_half, sp.max_half) * stress

    ins = [d for d in in_sample if d in data]

    def loss(x):
        return sum(np.abs(model(x[0], x[1], mid, st) - h).mean() for mid, h, st in (data[d] for d in ins))

    sol = minimize(loss, np.array([sp.base, sp.pct]), method="Nelder-Mead", options={"xatol": 1e-5, "fatol": 1e-7})
    b, p = float(max(sol.x[0], 0.0)), float(max(sol.x[1], 0.0))
    rows = []
    for d, (mid, h, st) in data.items():
        rows.append({"date": d, "sample": "in" if d in ins else "out", "n": len(mid),
                     "median_half_spread": float(np.median(h)),
                     "mae_default": float(np.median(np.abs(model(sp.base, sp.pct, mid, st) - h))),
                     "mae_fitted": float(np.median(np.abs(model(b, p, mid, st) - h))),
                     "bias_fitted": float(np.median(model(b, p, mid, st) - h))})
    return SpreadFit(round(b, 4), round(p, 5), sp, pd.DataFrame(rows))


# ------------------------------------------------------------------------------------------------------------
# VIX-option vol mapping
# ------------------------------------------------------------------------------------------------------------
def vx_variance_by_tau(panel, start, end) -> pd.DataFrame:
    """Daily log-changes of every VX contract's settlement, normalised by the prior day's VVIX^2/252, with the
    contract's calendar days to expiry (5-220)."""
    dates, expiries, settle = panel.vx_matrix()
    vvix = panel.daily["vvix_close"].to_numpy()
    D = dates.to_numpy().astype("datetime64[D]")
    E = np.asarray(expiries).astype("datetime64[D]")
    lo, hi = np.datetime64(pd.Timestamp(start).date()), np.datetime64(pd.Timestamp(end).date())
    parts = []
    for i in range(len(D) - 1):
        if not (lo <= D[i] <= hi) or not math.isfinite(vvix[i]):
            continue
        tau = (E - D[i]).astype(int)
        ok = (tau >= 1) & (tau <= 220) & np.isfinite(settle[i]) & np.isfinite(settle[i + 1]) & (E > D[i + 1])
        j = np.flatnonzero(ok)
        if not len(j):
            continue
        r = np.log(settle[i + 1, j] / settle[i, j])
        parts.append(pd.DataFrame({"date": D[i], "tau": tau[j], "z2": r * r / ((vvix[i] / 100.0) ** 2 / 252.0)}))
    return pd.concat(parts, ignore_index=True)


def realized_option_vol_ratio(z: pd.DataFrame, maturities=(7, 14, 21, 30, 45, 60, 90, 120, 180)) -> pd.Series:
    """Vol an option of maturity T would realize on its VX future, as a multiple of VVIX: the square root of the
    mean normalised variance over days-to-expiry 1..T."""
    by_tau = z.groupby("tau")["z2"].mean()
    out = {}
    for T in maturities:
        v = by_tau.loc[(by_tau.index >= 1) & (by_tau.index <= T)]
        out[T] = math.sqrt(v.mean()) if len(v) else math.nan
    return pd.Series(out, name="realized/VVIX")


def smile_varswap_ratio(params: VixOptionParams, T: float = 30 / 365) -> float:
    """Model-free (variance-swap) vol of the model's VIX-option smile at maturity T divided by its ATM vol."""
    p1 = VixOptionParams(**{**asdict(params), "atm_ratio": 1.0, "min_vol": 1e-4, "max_vol": 50.0})
    s = VixOptionSurface(20.0, 0.0, 100.0, p1)
    K = np.linspace(0.2, 400.0, 80001)
    call = K >= 20.0
    otm = black76_price(20.0, K, T, 0.0, s.vol(K, T), call)
    var = 2.0 * np.trapezoid(otm / K ** 2, K) / T
    return float(math.sqrt(var) / s.atm_vol(T))


@dataclass
class VixFit:
    params: dict[str, float]
    default_params: dict[str, float]
    ratios_in: pd.Series
    ratios_out: pd.Series
    beta_in: float
    beta_out: float
    varswap_ratio: float
    realized_over_implied_30d_in: float
    realized_over_implied_30d_out: float


def _power_fit(r: pd.Series) -> tuple[float, float]:
    x = np.log(np.asarray(r.index, dtype=float) / 30.0)
    y = np.log(r.to_numpy())
    slope, icpt = np.polyfit(x, y, 1)
    return -float(slope), float(math.exp(icpt))


def fit_vix_options(panel, base: VixOptionParams | None = None) -> VixFit:
    base = base or VixOptionParams()
    zin = vx_variance_by_tau(panel, *VIX_IN_SAMPLE)
    zout = vx_variance_by_tau(panel, *VIX_OUT_SAMPLE)
    rin, rout = realized_option_vol_ratio(zin), realized_option_vol_ratio(zout)
    # fit on maturities from 14 days (a 7-day option's realized vol is dominated by a handful of expiry weeks)
    beta_in, _c_in = _power_fit(rin.loc[14:])
    beta_out, _c_out = _power_fit(rout.loc[14:])
    beta = round(beta_in, 3)
    vs = smile_varswap_ratio(VixOptionParams(**{**asdict(base), "term_beta": beta}))
    atm = round(1.0 / vs, 4)
    return VixFit(params={"atm_ratio": atm, "term_beta": beta},
                  default_params={"atm_ratio": base.atm_ratio, "term_beta": base.term_beta},
                  ratios_in=rin, ratios_out=rout, beta_in=beta_in, beta_out=beta_out, varswap_ratio=vs,
                  realized_over_implied_30d_in=float(rin.loc[30] / atm), realized_over_implied_30d_out=float(rout.loc[30] / atm))


# ------------------------------------------------------------------------------------------------------------
# Everything, and the TOML
# ------------------------------------------------------------------------------------------------------------
@dataclass
class Calibration:
    skew: SkewFit
    spread: SpreadFit
    vix: VixFit
    created: str = field(default_factory=lambda: dt.date.today().isoformat())

    def pricing(self, base: PricingParams | None = None) -> PricingParams:
        base = base or PricingParams()
        return base.model_copy(update={"spx_skew": {**base.spx_skew, **self.skew.params},
                                       "vix_options": {**base.vix_options, **self.vix.params}})


def run_calibration(panel, data_dir, base: PricingParams | None = None) -> Calibration:
    base = base or PricingParams()
    chains = load_chain_data(data_dir)
    skew = fit_spx_skew(panel, chains, base)
    spread = fit_spx_spread(panel, chains)
    vix = fit_vix_options(panel, base.vix_option_params())
    return Calibration(skew, spread, vix)


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def calibrated_toml(cal: Calibration, execution: ExecutionParams | None = None) -> str:
    s, sp, v = cal.skew, cal.spread, cal.vix
    sd, sf = s.summary_default.set_index("date"), s.summary_fitted.set_index("date")
    lines = [
        "# Calibrated pricing values, written by `alvh calibrate` (analysis/calibration.py). docs/fidelity.md explains",
        "# the method; every value below names the data window it was fitted on.",
        "",
        "[pricing.spx_skew]",
        f"# Fitted on the Cboe SPX chain snapshots {', '.join(s.in_sample)} only (OTM options, |delta| 0.03-0.50,",
        "# 7-90 DTE, soft-L1 least squares on implied vol at the parity forward's moneyness).",
        "# Median |IV error| for 10-30 delta, 20-60 DTE (vol points), fitted (default before fitting):",
    ]
    for d in sf.index:
        tag = "in-sample " if d in s.in_sample else "out-of-sample"
        lines.append(f"#   {d} {tag}: {sf.at[d, 'median_abs_iv_err']:.2f} ({sd.at[d, 'median_abs_iv_err']:.2f})")
    lines.append(f"#   pooled out-of-sample: {F.pooled_median(s.errors_fitted, s.out_sample):.2f}")
    for k, val in s.params.items():
        lines.append(f"{k} = {_fmt(val)}")
    lines += [
        "",
        "[pricing.vix_options]",
        f"# Fitted on VX futures settlements and VVIX {VIX_IN_SAMPLE[0]}..{VIX_IN_SAMPLE[1]} only (no VIX option quotes exist in",
        "# shared/data). term_beta: power-law decay of the vol a VIX option of maturity T realizes on its VX future",
        f"# (in-sample {v.beta_in:.3f}; the same fit on {VIX_OUT_SAMPLE[0][:4]}-{VIX_OUT_SAMPLE[1][:4]} gives {v.beta_out:.3f}).",
        "# atm_ratio: VVIX is the 30-day variance-swap vol of VIX options, so ATM = VVIX / (variance-swap/ATM ratio of",
        f"# the model smile) = 1 / {v.varswap_ratio:.4f}. Realized/implied at 30 days: {v.realized_over_implied_30d_in:.2f} in-sample,",
        f"# {v.realized_over_implied_30d_out:.2f} out-of-sample (the volatility risk premium; reported, not fitted). skew unchanged.",
    ]
    for k, val in v.params.items():
        lines.append(f"{k} = {_fmt(val)}")
    ex = execution or ExecutionParams()
    lines += [
        "",
        "# Spread model: spx_option base/pct fitted (median absolute error of the quoted half-spread) on the same three",
        "# early chain snapshots; the other classes keep their defaults (all four are listed because the table",
        "# replaces the whole default mapping). Median |half-spread error| out of sample:",
    ]
    t = sp.table.set_index("date")
    for d in t.index:
        lines.append(f"#   {d} {t.at[d, 'sample']}-sample: {t.at[d, 'mae_fitted']:.3f} (default {t.at[d, 'mae_default']:.3f}),"
                     f" median half-spread {t.at[d, 'median_half_spread']:.3f}")
    for cls, spec in ex.spreads.items():
        vals = spec.model_dump()
        if cls == "spx_option":
            vals.update(base=sp.base, pct=sp.pct)
        lines.append(f"[execution.spreads.{cls}]")
        lines += [f"{k} = {_fmt(float(x))}" for k, x in vals.items()]
    return "\n".join(lines) + "\n"


def format_report(cal: Calibration) -> str:
    s, sp, v = cal.skew, cal.spread, cal.vix
    out = ["SPX surface (SkewParams) fitted on " + ", ".join(s.in_sample)]
    out.append("  " + ", ".join(f"{k} {s.default_params[k]:.4g} -> {val:.4g}" for k, val in s.params.items()))
    cols = ["date", "sample", "n_accept", "median_abs_iv_err", "median_iv_err", "median_abs_price_err_pct"]
    both = s.summary_default[cols].merge(s.summary_fitted[cols], on=["date", "sample", "n_accept"],
                                         suffixes=("_default", "_fitted"))
    out.append(both.round(3).to_string(index=False))
    out.append(f"  pooled out-of-sample median |IV error| (10-30 delta, 20-60 DTE): "
               f"default {F.pooled_median(s.errors_default, s.out_sample):.3f}, "
               f"fitted {F.pooled_median(s.errors_fitted, s.out_sample):.3f}")
    out.append("implied dividend yield (diagnostic):")
    out.append(s.div_yield_implied.round(4).to_string(index=False))
    out.append(f"SPX spread model: base {sp.default.base} -> {sp.base}, pct {sp.default.pct} -> {sp.pct}")
    out.append(sp.table.round(4).to_string(index=False))
    out.append(f"VIX options: atm_ratio {v.default_params['atm_ratio']} -> {v.params['atm_ratio']}, "
               f"term_beta {v.default_params['term_beta']} -> {v.params['term_beta']} (out-of-sample beta {v.beta_out:.3f})")
    out.append(pd.DataFrame({"in-sample realized/VVIX": v.ratios_in, "out-of-sample": v.ratios_out}).round(3).T.to_string())
    return "\n".join(out)


def write_calibrated(cal: Calibration, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(calibrated_toml(cal))
    return path
