"""`alvh calibrate`: fit the pricing parameters on real quotes and report every fit in and out of sample.

- SPX surface (engine.regime_surface.RegimeParams, the model replay uses): analysis.surface_fit on the OTM options
  (|delta| 0.03-0.50, 7-90 DTE) of the fit dates of its protocol (surface_fit.FIT_DATES: a day or two of each regime
  in the data, four of the eight stressed days held out), every other real SPX chain out of sample.
- SPX option spread model (execution.spreads.spx_option base and pct): median (L1) fit of the quoted half-spread on
  the three early Cboe snapshots (2022-02-04, 2022-06-10, 2023-02-07), out of sample on the later three. These are
  the only full chains with end-of-day spreads in the regular layout; the vendor file's 2018 spreads are not used.
- VIX-option smile (engine.volsurface.VixOptionParams): analysis.vix_options on the three real VIX chains (level tied
  to VVIX, mean-reverting term structure, call skew), each chain also scored with the other two fitted.

Outputs a TOML fragment (calibrated.toml in the working directory, or --out) with the values and the data they
came from; config/calibrated.toml in the repository is the committed copy.
"""
from __future__ import annotations

import datetime as dt
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import spx_surface, surface_fit, vix_options
from analysis.chain_iv import chain_market_iv
from analysis.config_files import toml_value
from engine.execution import ExecutionParams, SpreadParams
from engine.marketmodel import PricingParams
from engine.regime_surface import RegimeParams

SPREAD_IN_SAMPLE = ("2022-02-04", "2022-06-10", "2023-02-07")


# ------------------------------------------------------------------------------------------------------------
# SPX surface
# ------------------------------------------------------------------------------------------------------------
@dataclass
class SurfaceCalibration:
    fit: surface_fit.SurfaceFit
    before: RegimeParams
    dates: pd.DataFrame          # per date: sample, VIX, median |error| before and after the fit, 3-10 delta puts

    def params(self) -> dict[str, float]:
        return {n: getattr(self.fit.params, n) for n in surface_fit.SHAPE_FIELDS}


def calibrate_surface(panel, data_dir, before: RegimeParams) -> SurfaceCalibration:
    from analysis.chain_iv import market_table

    data = surface_fit.build_fit_data(market_table(data_dir, underlyings=("SPX",)), panel)
    fit = surface_fit.fit_surface(data, base=before)
    vix = panel.daily["vix_close"]
    after = spx_surface.per_date(surface_fit.surface_errors(fit.params, data, vix))
    prior = spx_surface.per_date(surface_fit.surface_errors(before, data, vix))
    dates = after.merge(prior[["date", "median_abs"]], on="date", suffixes=("", "_before"))
    return SurfaceCalibration(fit, before, dates)


# ------------------------------------------------------------------------------------------------------------
# SPX spread
# ------------------------------------------------------------------------------------------------------------
@dataclass
class ChainData:
    date: str
    market: pd.DataFrame       # chain_iv.chain_market_iv rows
    chain: object


def load_chain_data(data_dir, dates=None) -> dict[str, ChainData]:
    """The six Cboe delayed-quotes snapshots of shared/data/spx_option_chains (layout B) with their market IVs."""
    from adapters.data.chains import list_chains, load_chain

    out = {}
    for path in list_chains(data_dir):
        ch = load_chain(path)
        d = str(ch.trade_date.date())
        if dates is not None and d not in dates:
            continue
        out[d] = ChainData(d, chain_market_iv(ch), ch)
    return out


@dataclass
class SpreadFit:
    base: float
    pct: float
    default: SpreadParams
    table: pd.DataFrame   # per date: median |error| of the half-spread, default vs fitted


def _stress(vix: float, k: float) -> float:
    return 1.0 + k * max(0.0, (vix - 20.0) / 20.0)


def fit_spx_spread(panel, chains: dict[str, ChainData], in_sample=SPREAD_IN_SAMPLE,
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
# Everything, and the TOML
# ------------------------------------------------------------------------------------------------------------
@dataclass
class Calibration:
    surface: SurfaceCalibration
    spread: SpreadFit
    vix: vix_options.VixOptionFit
    created: str = field(default_factory=lambda: dt.date.today().isoformat())

    def pricing(self, base: PricingParams | None = None) -> PricingParams:
        base = base or PricingParams()
        return base.model_copy(update={"spx_model": "regime",
                                       "spx_surface": {**base.spx_surface, **self.surface.params()},
                                       "vix_options": {**base.vix_options, **self.vix.fitted()}})


def run_calibration(panel, data_dir, base: PricingParams | None = None) -> Calibration:
    base = base or PricingParams()
    surface = calibrate_surface(panel, data_dir, base.regime_params())
    spread = fit_spx_spread(panel, load_chain_data(data_dir))
    vix = vix_options.run_vix_option_fit(data_dir, panel, base.vix_option_params())
    return Calibration(surface, spread, vix)


def calibrated_toml(cal: Calibration, execution: ExecutionParams | None = None) -> str:
    s, sp, v = cal.surface, cal.spread, cal.vix
    ins = s.dates[s.dates["sample"] == "in"]["date"].tolist()
    lines = [
        "# Calibrated pricing values, written by `alvh calibrate` (analysis/calibration.py). docs/fidelity.md explains",
        "# the method; every value below names the data it was fitted on.",
        "",
        "[pricing]",
        'spx_model = "regime"',
        "",
        "[pricing.spx_surface]",
        *textwrap.wrap(f"Regime SPX surface fitted on the real SPX chains of {', '.join(ins)} only (OTM options, |delta| "
                       f"0.03-0.50, 7-90 DTE, soft-L1 on implied vol at the parity forward's moneyness, ridge "
                       f"{surface_fit.RIDGE:g} on the state slopes). Median |IV error| (vol points, 3-50 delta) fitted "
                       "(before) on every SPX chain date:", 112, initial_indent="# ", subsequent_indent="# "),
    ]
    for r in s.dates.itertuples():
        lines.append(f"#   {r.date} {r.sample:>3}-sample VIX {r.vix:5.1f}: {r.median_abs:.2f} ({r.median_abs_before:.2f})")
    for k, val in s.params().items():
        lines.append(f"{k} = {toml_value(float(val))}")
    t = v.table
    lines += [
        "",
        "[pricing.vix_options]",
        "# VIX-option smile fitted on the three real VIX chains (analysis/vix_options.py), each expiry on its own forward.",
        "# Median |IV error| of 10-50 delta calls at 14-120 DTE (vol points): fitted on all three / with that chain",
        "# held out / before fitting:",
    ]
    for r in t.itertuples():
        lines.append(f"#   {r.date}: {r.calls_median_abs:.2f} / {r.loo_calls_median_abs:.2f} / {r.before_calls_median_abs:.2f}")
    for k, val in v.fitted().items():
        lines.append(f"{k} = {toml_value(float(val))}")
    ex = execution or ExecutionParams()
    lines += [
        "",
        "# Spread model: spx_option base/pct fitted (median absolute error of the quoted half-spread) on the three",
        "# early Cboe chain snapshots; the other classes keep their defaults (all four are listed because the table",
        "# replaces the whole default mapping). Median |half-spread error|:",
    ]
    st = sp.table.set_index("date")
    for d in st.index:
        lines.append(f"#   {d} {st.at[d, 'sample']}-sample: {st.at[d, 'mae_fitted']:.3f} (default {st.at[d, 'mae_default']:.3f}),"
                     f" median half-spread {st.at[d, 'median_half_spread']:.3f}")
    for cls, spec in ex.spreads.items():
        vals = spec.model_dump()
        if cls == "spx_option":
            vals.update(base=sp.base, pct=sp.pct)
        lines.append(f"[execution.spreads.{cls}]")
        lines += [f"{k} = {toml_value(float(x))}" for k, x in vals.items()]
    return "\n".join(lines) + "\n"


def format_report(cal: Calibration) -> str:
    s, sp, v = cal.surface, cal.spread, cal.vix
    out = [f"SPX regime surface fitted on {', '.join(s.fit.fit_dates)} ({s.fit.n_options} options)"]
    out.append("  " + ", ".join(f"{k} {getattr(s.before, k):.4g} -> {val:.4g}" for k, val in s.params().items()))
    out.append(s.dates.round(3).to_string(index=False))
    out.append(f"SPX spread model: base {sp.default.base} -> {sp.base}, pct {sp.default.pct} -> {sp.pct}")
    out.append(sp.table.round(4).to_string(index=False))
    out.append("VIX options: " + ", ".join(f"{k} {getattr(v.before, k):.4g} -> {val:.4g}" for k, val in v.fitted().items()))
    out.append(v.table.round(3).to_string(index=False))
    return "\n".join(out)


def write_calibrated(cal: Calibration, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(calibrated_toml(cal))
    return path
