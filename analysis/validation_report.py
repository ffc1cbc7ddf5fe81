"""What `alvh validate` writes: report.md (every table), summary.json (the acceptance figures with met/short
flags), CSV tables and the plots of analysis.validation_plots; and the console lines of the acceptance figures.
"""
from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import condor_check, etp_tracking, spx_surface
from analysis.tasks import run_forked
from analysis.validation import Validation
from analysis.validation_plots import plot_cndr, plot_etps, plot_surface, plot_vix_options, plot_vxth


def _md(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    if df is None or df.empty:
        return "(none)\n"
    cols = list(df.columns)
    out = ["| " + " | ".join(str(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            x = r[c]
            if isinstance(x, (float, np.floating)):
                cells.append("" if not math.isfinite(x) else format(x, floatfmt))
            else:
                cells.append(str(x))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def _pct(df: pd.DataFrame, cols) -> pd.DataFrame:
    df = df.copy()
    for c in cols:
        df[c] = df[c] * 100.0
    return df


def write_report(v: Validation, out: Path, plots: list[Path]) -> Path:
    lines = [f"# alvh validate: {v.start} .. {v.end}", "",
             f"Pricing: {v.pricing_source}. Run time {v.seconds:.1f} s.", "", "## Acceptance figures (issues #4 and #9)", ""]
    acc = pd.DataFrame(v.acceptance)
    if len(acc):
        acc["value"] = [f"{x:.4f}" if isinstance(x, float) else x for x in acc["value"]]
        acc["met"] = ["" if m is None else ("met" if m else "SHORT") for m in acc["met"]]
    lines.append(_md(acc))
    lines += ["## 1. Constant-maturity VX blends vs VIX ETPs", ""]
    rows = [{"ETP": c.name, "blend": etp_tracking.BLEND_NAMES[c.kind], "window": f"{c.start.date()}..{c.end.date()}",
             "days": c.days, "daily corr": c.daily_corr, "weekly corr": c.weekly_corr,
             "daily corr ex 2018-02-05/06": c.daily_corr_ex_spikes, "weekly corr ex": c.weekly_corr_ex_spikes,
             "tracking error (ann.)": c.tracking_error, "fee": c.fee, "annualised gap (pt/yr)": c.annualised_gap * 100}
            for c in v.etps]
    lines.append(_md(pd.DataFrame(rows), ".4f"))
    lines += [("Before and after VX daily settlement moved from 4:15 pm to 4:00 pm ET (2020-10-26), and (VXX) without "
               "the days on which VXX and VIXY disagree by more than 4 %:"), ""]
    rows = [{"ETP": c.name, "daily corr before 2020-10-26": c.daily_corr_before_change,
             "daily corr since": c.daily_corr_since_change, "weekly corr since": c.weekly_corr_since_change,
             "daily corr without flagged days": c.daily_corr_clean, "weekly corr without flagged days": c.weekly_corr_clean,
             "flagged days": c.flagged_days} for c in v.etps]
    lines.append(_md(pd.DataFrame(rows), ".4f"))
    for c in v.etps:
        lines += [f"### {c.name}: annual returns (%), replica with T-bill interest less the {c.fee * 100:.2f}% fee", ""]
        a = _pct(c.annual, ["etp", "replica", "replica_less_fee", "gap"])
        lines.append(_md(a, ".2f"))
        lines += [f"Largest daily differences ({c.name} - replica):", ""]
        w = c.worst_days.reset_index().rename(columns={"index": "date"})
        w["date"] = [str(pd.Timestamp(x).date()) for x in w["date"]]
        lines.append(_md(_pct(w, ["etp", "blend", "replica_tr", "diff"]), ".2f"))
    lines += ["### VXX vs VIXY cross-check (same index, same 4:00 pm close): days differing by more than 4 %", ""]
    cc = v.crosscheck.reset_index()
    cc["date"] = [str(pd.Timestamp(x).date()) for x in cc["date"]]
    lines.append(_md(_pct(cc, [c for c in cc.columns if c != "date"]), ".2f"))
    lines += ["## 2. SPX surface vs every real SPX chain", "",
              ("The model replay builds at each chain date's close, at the market's log-moneyness (vol points, model - "
               "market). OTM options, 3-50 delta, 7-90 DTE; `in` = a date the surface was fitted on "
               "(analysis/surface_fit.py FIT_DATES). Target: 1.0 below VIX 20, 2.0 from VIX 25."), ""]
    lines.append(_md(v.surface_dates, ".2f"))
    if len(v.chain_levels):
        lines += ["### Each chain's own level against the index closes (analysis/chain_level.py)", "",
                  ("`gap`: the chain's model-free variance swap (the VIX formula on each 7-60 DTE expiry's quotes) minus "
                   "the index level the surface is pinned to at the same expiry, median over expiries (vol pts). "
                   "`*_matched`: the same surface with its level scaled by that day's `factor` (chain / index; pricing.spx_surface.level_scale), no refit: "
                   "what is left is shape. `put_3_10_inside_quote`: share of the 3-10 delta puts the model prices within "
                   "the quoted bid and ask. A diagnostic: replay knows the index closes, not the chain."), ""]
        lines.append(_md(v.chain_levels, ".2f"))
    b = v.surface_buckets
    if len(b):
        lines += ["### By bucket, out-of-sample dates pooled (median |error|, bias, count)", ""]
        pooled = spx_surface.bucket_table(v.surface_errors[(v.surface_errors["und"] == "SPX")
                                                           & (v.surface_errors["sample"] == "out")
                                                           & v.surface_errors["abs_delta"].between(*spx_surface.DELTA_RANGE)],
                                          ("side", "delta_bucket", "dte_bucket"))
        lines.append(_md(pooled, ".2f"))
        lines += ["### By bucket on the stressed dates (VIX >= 25)", ""]
        stressed = set(v.surface_dates.loc[v.surface_dates["vix"] >= spx_surface.STRESS_VIX, "date"])
        bb = b[[str(pd.Timestamp(x).date()) in stressed for x in b["date"]]].copy()
        bb["date"] = [str(pd.Timestamp(x).date()) for x in bb["date"]]
        lines.append(_md(bb, ".2f"))
        lines += ["Every date and bucket: `surface_buckets.csv`.", ""]
    if len(v.spy_shape):
        lines += ["### SPY chains: smile shape only (IV minus the slice's own ATM IV, model vs market, vol points)", ""]
        t = v.spy_shape.copy()
        t["date"] = [str(pd.Timestamp(x).date()) for x in t["date"]]
        lines.append(_md(t, ".2f"))
    if len(v.vs_vix):
        g = v.vs_vix
        lines += ["### 30-day variance swap vs VIX", "",
                  (f"{len(g)} days {g.index.min()}..{g.index.max()}: {(g <= 0.25).mean() * 100:.2f}% within 0.25 vol pt, "
                   f"median gap {g.median():.4f}, max {g.max():.4f} vol pt."), ""]
    lines += ["## VIX options vs the three VIX chains", "",
              "Calls and puts 10-50 delta, 14-120 DTE, each expiry on its own forward (vol points, model - market):", ""]
    lines.append(_md(v.vix_options, ".2f"))
    lines.append(_md(v.vix_expiries.assign(expiry=[str(pd.Timestamp(x).date()) for x in v.vix_expiries["expiry"]]), ".3f"))
    if v.condors is not None:
        lines += ["## Condor P&L through February 2018 (real quotes vs simulator)", "",
                  ("Real condors (strikes on real deltas) marked daily at real mids and by the simulator. Errors in % of "
                   "max loss; P&L in index points per condor; stop = loss >= 2x the real credit. `*_quote_spx`: the simulator "
                   "with the SPX moved from the 4:00 pm close to the quotes' instant (the expiry's parity forward; a "
                   "diagnostic, replay marks at the close); `spx_gap_max`: the largest move, index points."), ""]
        cs = v.condors.summary.copy()
        lines.append(_md(cs, ".2f"))
    c = v.cndr
    if c is not None:
        lines += ["## 3. CNDR replica", "",
                  (f"- Max drawdown {c.dd_window[0][:4]}-{c.dd_window[1][:4]}: {c.max_drawdown * 100:.2f}% (peak {c.dd_peak}, "
                  f"trough {c.dd_trough}, recovered {c.dd_recovery or 'not yet'})"),
                  f"- Annualised volatility: {c.volatility * 100:.2f}%; CAGR {c.cagr * 100:.2f}%; rejected orders: {c.rejections}",
                  "", "Index level on the first trading day of each January and calendar-year returns:", ""]
        t = pd.DataFrame({"year": c.january_levels.index, "January level": c.january_levels.to_numpy()})
        t = t.merge(pd.DataFrame({"year": c.annual_returns.index, "annual return %": c.annual_returns.to_numpy() * 100}),
                    on="year", how="outer")
        t["year"] = t["year"].astype(int).astype(str)
        lines.append(_md(t, ".2f"))
        if len(c.rolls):
            lines += ["Roll diagnostics (mean |delta| of the legs chosen, mean collateral multiple):", ""]
            r = c.rolls
            lines.append(_md(pd.DataFrame([{
                "rolls": len(r), "short put": r["delta_short_put"].abs().mean(), "short call": r["delta_short_call"].abs().mean(),
                "long put": r["delta_long_put"].abs().mean(), "long call": r["delta_long_call"].abs().mean(),
                "collateral / max loss": r["collateral_multiple"].mean()}])))
    q = v.vxth_quarterly
    if q is not None:
        lines += ["## 4. VXTH replica: quarterly returns (%)", ""]
        t = _pct(q.reset_index(), ["vxth", "spx_tr", "hedge_contribution", "vxth_published", "spx_tr_published"])
        t["quarter"] = t["quarter"].astype(str)
        lines.append(_md(t, ".2f"))
        if v.sensitivity is not None:
            lines += ["### Sensitivity of the payoff quarters (returns in %)", ""]
            st = v.sensitivity.table.copy()
            qcols = [x for x in st.columns if x[:4].isdigit()]
            lines.append(_md(_pct(st, qcols), ".2f"))
        if v.vxth_weights is not None:
            d = v.vxth_weights[v.vxth_weights["differs"]]
            lines += [(f"Roll days where the weight from the prior settlement (what the open snapshot shows) differs from the "
                      f"weight from the real VX open: {len(d)} of {len(v.vxth_weights)}"), ""]
            lines.append(_md(d))
    lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _plot_condors(v: Validation, out: Path) -> list[Path]:
    return [] if v.condors is None else [condor_check.plot(v.condors, out / "condors_feb2018.png")]


def write_outputs(v: Validation, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    # 10 charts, 0.2-2 s each: drawn on the machine's cores
    jobs = [partial(f, v, out) for f in (plot_etps, plot_surface, plot_vix_options, plot_cndr, plot_vxth, _plot_condors)]
    plots = [p for got in run_forked(jobs) for p in got]
    paths = list(plots)
    for c in v.etps:
        p = out / f"etp_{c.name.lower()}_annual.csv"
        c.annual.to_csv(p, index=False, float_format="%.6f")
        paths.append(p)
    tables = {"surface_dates.csv": v.surface_dates, "chain_levels.csv": v.chain_levels,
              "surface_buckets.csv": v.surface_buckets, "spy_shape.csv": v.spy_shape,
              "vix_options.csv": v.vix_options, "vix_option_expiries.csv": v.vix_expiries,
              "variance_swap_vs_vix.csv": v.vs_vix.rename_axis("date").reset_index()}
    if v.condors is not None:
        tables["condor_summary.csv"] = v.condors.summary
        tables["condor_marks.csv"] = v.condors.marks
    for name, t in tables.items():
        if t is not None and len(t):
            p = out / name
            t.to_csv(p, index=False, float_format="%.6f")
            paths.append(p)
    if v.cndr is not None:
        p = out / "cndr_index.csv"
        v.cndr.index.rename("cndr_replica").to_csv(p, float_format="%.6f")
        paths.append(p)
        p = out / "cndr_rolls.csv"
        v.cndr.rolls.to_csv(p, index=False, float_format="%.6f")
        paths.append(p)
    if v.vxth_quarterly is not None:
        p = out / "vxth_quarterly.csv"
        v.vxth_quarterly.to_csv(p, float_format="%.6f")
        paths.append(p)
        p = out / "vxth_rolls.csv"
        pd.DataFrame(v.vxth_strategy.rolls).to_csv(p, index=False, float_format="%.6f")
        paths.append(p)
    if v.sensitivity is not None:
        p = out / "vxth_sensitivity.csv"
        v.sensitivity.table.to_csv(p, index=False, float_format="%.6f")
        paths.append(p)
    paths.append(write_report(v, out, plots))
    summary = {
        "window": [v.start, v.end], "pricing": v.pricing_source, "seconds": round(v.seconds, 2),
        "acceptance": [{k: (x if k == "met" and x is None else bool(x) if k == "met" else
                            (float(x) if isinstance(x, (float, np.floating)) else x))
                        for k, x in r.items()} for r in v.acceptance],
        "etps": {c.name: {"daily_corr": c.daily_corr, "weekly_corr": c.weekly_corr, "tracking_error": c.tracking_error,
                          "annualised_gap": c.annualised_gap, "start": str(c.start.date()), "end": str(c.end.date())}
                 for c in v.etps},
    }
    if v.cndr is not None:
        c = v.cndr
        summary["cndr"] = {"max_drawdown": c.max_drawdown, "dd_peak": c.dd_peak, "dd_trough": c.dd_trough,
                           "dd_recovery": c.dd_recovery, "volatility": c.volatility, "cagr": c.cagr}
    if v.vxth_quarterly is not None:
        summary["vxth"] = {str(k): float(v.vxth_quarterly.loc[k, "vxth"]) for k in v.vxth_quarterly.index}
    p = out / "summary.json"
    p.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    paths.append(p)
    return paths


def format_acceptance(v: Validation) -> str:
    lines = []
    for r in v.acceptance:
        val = r["value"]
        val = f"{val:.4f}" if isinstance(val, float) else str(val)
        flag = "info " if r["met"] is None else ("met  " if r["met"] else "SHORT")
        lines.append(f"{flag}  {r['check']}: {val} (target {r['target']}; {r['window']})")
    return "\n".join(lines)
