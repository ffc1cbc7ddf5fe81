"""`alvh validate` as an analysis: every fidelity check on one window, and the acceptance figures of issue #4.

``run_validation`` runs the ETP tracking (analysis.etp_tracking), the SPX surface errors on every real chain
(analysis.spx_surface) and the CNDR/VXTH replicas (analysis.replicas); ``acceptance`` turns them into met/short
rows. analysis.validation_plots draws them and analysis.validation_report writes the tables, report and summary.
"""
from __future__ import annotations

import math
import time
import tomllib
from dataclasses import dataclass, field

import pandas as pd

from analysis import etp_tracking, replicas, spx_surface
from config.settings import CONFIG_DIR, deep_merge, load_config
from engine.marketmodel import PricingParams

CALIBRATED_TOML = CONFIG_DIR / "calibrated.toml"
FULL_START, FULL_END = "2006-01-01", "2025-12-31"


def pricing_for(config: str | None) -> tuple[PricingParams, str]:
    """--config's pricing section; without it, the defaults with config/calibrated.toml's [pricing] on top."""
    if config:
        return load_config(config).pricing, str(config)
    if CALIBRATED_TOML.exists():
        data = tomllib.loads(CALIBRATED_TOML.read_text())
        base = PricingParams().model_dump()
        return PricingParams.model_validate(deep_merge(base, data.get("pricing", {}))), str(CALIBRATED_TOML)
    return PricingParams(), "<defaults>"


@dataclass
class Validation:
    start: str
    end: str
    pricing_source: str
    etps: list
    crosscheck: pd.DataFrame
    surface_errors: dict
    surface_summary: pd.DataFrame
    surface_buckets: pd.DataFrame
    cndr: replicas.CndrStats | None
    vxth_quarterly: pd.DataFrame | None
    vxth_strategy: object
    vxth_weights: pd.DataFrame | None
    sensitivity: replicas.VxthSensitivity | None
    acceptance: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def _window(args_start, args_end, lo=FULL_START, hi=FULL_END) -> tuple[str, str]:
    s = pd.Timestamp(args_start or lo)
    e = pd.Timestamp(args_end or hi)
    return str(s.date()), str(e.date())


def run_validation(panel, data_dir, start=None, end=None, pricing=None, pricing_source="<defaults>",
                   sensitivity: bool = True) -> Validation:
    from analysis.calibration import load_chain_data

    t0 = time.perf_counter()
    pricing = pricing or PricingParams()
    s, e = _window(start, end)
    etps = etp_tracking.etp_comparisons(panel, start if start else None, e)
    cross = etp_tracking.etp_crosscheck(panel)
    chains = load_chain_data(data_dir)
    errs = {d: spx_surface.surface_errors(c.chain, panel, pricing, market=c.market) for d, c in chains.items()}
    summ = spx_surface.surface_summary(errs) if errs else pd.DataFrame()
    out_dates = [d for d in errs if d not in spx_surface.CALIBRATION_CHAINS]
    buckets = spx_surface.bucket_errors(pd.concat([errs[d] for d in out_dates])) if out_dates else pd.DataFrame()
    res, cndr = replicas.run_cndr(panel, pricing, s, e)
    cstats = replicas.cndr_stats(res, cndr)
    _, vx = replicas.run_vxth(panel, pricing, s, e)
    q = replicas.vxth_quarterly(vx)
    weights = replicas.vx_weight_bracket_check(panel, vx)
    sens = None
    if sensitivity:
        quarters = sorted(set(replicas.payoff_quarters(q)) | {k for k in replicas.VXTH_PUBLISHED if pd.Period(k) in q.index})
        if quarters:
            sens = replicas.vxth_sensitivity(panel, pricing, quarters, s, e)
    v = Validation(s, e, pricing_source, etps, cross, errs, summ, buckets, cstats, q, vx, weights, sens)
    v.acceptance = acceptance(v)
    v.seconds = time.perf_counter() - t0
    return v


def acceptance(v: Validation) -> list[dict]:
    rows = []
    for c in v.etps:
        dt_, wk_ = c.target
        rows.append({"check": f"{etp_tracking.BLEND_NAMES[c.kind]} vs {c.name}: daily return correlation", "value": c.daily_corr,
                     "target": f">= {dt_}", "met": c.daily_corr >= dt_, "window": f"{c.start.date()}..{c.end.date()}"})
        rows.append({"check": f"{etp_tracking.BLEND_NAMES[c.kind]} vs {c.name}: weekly return correlation", "value": c.weekly_corr,
                     "target": f">= {wk_}", "met": c.weekly_corr >= wk_, "window": f"{c.start.date()}..{c.end.date()}"})
        if math.isfinite(c.daily_corr_clean):
            rows.append({"check": f"{etp_tracking.BLEND_NAMES[c.kind]} vs {c.name}: daily / weekly correlation without the "
                                  f"{c.flagged_days} days VXX and VIXY disagree by > 4 % (source-data errors)",
                         "value": f"{c.daily_corr_clean:.4f} / {c.weekly_corr_clean:.4f}", "target": f">= {dt_} / {wk_}",
                         "met": c.daily_corr_clean >= dt_ and c.weekly_corr_clean >= wk_, "window": "informational"})
        n_ok, n = c.years_within()
        rows.append({"check": f"{c.name}: full years with |ETP - (replica - fee)| <= 1 pt", "value": f"{n_ok}/{n}",
                     "target": "all", "met": n > 0 and n_ok == n,
                     "window": f"annualised gap over the window {c.annualised_gap * 100:+.2f} pt/yr"})
    if len(v.surface_summary):
        out = v.surface_summary[v.surface_summary["sample"] == "out"]
        pooled = spx_surface.pooled_median(v.surface_errors, list(out["date"]))
        rows.append({"check": "SPX surface out of sample: pooled median |IV error|, 10-30 delta, 20-60 DTE (vol pts)",
                     "value": pooled, "target": "<= 1.0", "met": pooled <= 1.0, "window": ", ".join(out["date"])})
        for _, r in out.iterrows():
            rows.append({"check": f"SPX surface {r['date']}: median |IV error| (vol pts)", "value": r["median_abs_iv_err"],
                         "target": "<= 1.5", "met": r["median_abs_iv_err"] <= 1.5, "window": "out of sample"})
    q = v.vxth_quarterly
    if q is not None:
        for k, (pub, spx_pub) in replicas.VXTH_PUBLISHED.items():
            per = pd.Period(k)
            if per not in q.index:
                continue
            val = float(q.loc[per, "vxth"])
            tol = replicas.VXTH_TOLERANCE[k]
            rows.append({"check": f"VXTH replica {k} (published {pub * 100:+.1f}%)", "value": val,
                         "target": f"within {tol * 100:.0f} pts", "met": abs(val - pub) <= tol,
                         "window": f"S&P 500 TR replica {q.loc[per, 'spx_tr'] * 100:+.1f}% (published {spx_pub * 100:+.1f}%)"})
    return rows
