"""`alvh validate` and `alvh calibrate`: fidelity of the simulator against everything real in the data.

    alvh validate [--out DIR] [--start DATE] [--end DATE] [--config TOML]
    alvh calibrate [--out PATH] [--dry-run]

validate writes to DIR (default out/validate): report.md (every table), summary.json (the acceptance figures
of issue #4 with met/short flags), CSV tables and PNG plots. calibrate fits the pricing parameters on the early
windows only and writes config/calibrated.toml (analysis/calibration.py documents the method).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import structlog

from adapters.cli.common import UserError, add_common, load_panel_for
from analysis import fidelity as F

log = structlog.get_logger("alvh.validate")

CALIBRATED_TOML = Path(__file__).resolve().parent.parent / "config" / "calibrated.toml"
FULL_START, FULL_END = "2006-01-01", "2025-12-31"


# ------------------------------------------------------------------------------------------------------------
# pricing used by validate
# ------------------------------------------------------------------------------------------------------------
def pricing_for(config: str | None):
    """--config's pricing section; without it, the defaults with config/calibrated.toml's [pricing] on top."""
    import tomllib

    from config.settings import deep_merge, load_config
    from engine.marketmodel import PricingParams

    if config:
        return load_config(config).pricing, str(config)
    if CALIBRATED_TOML.exists():
        data = tomllib.loads(CALIBRATED_TOML.read_text())
        base = PricingParams().model_dump()
        return PricingParams.model_validate(deep_merge(base, data.get("pricing", {}))), str(CALIBRATED_TOML)
    return PricingParams(), "<defaults>"


# ------------------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------------------
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
    cndr: F.CndrStats | None
    vxth_quarterly: pd.DataFrame | None
    vxth_strategy: object
    vxth_weights: pd.DataFrame | None
    sensitivity: F.VxthSensitivity | None
    acceptance: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def _window(args_start, args_end, lo=FULL_START, hi=FULL_END) -> tuple[str, str]:
    s = pd.Timestamp(args_start or lo)
    e = pd.Timestamp(args_end or hi)
    return str(s.date()), str(e.date())


def run_validation(panel, data_dir, start=None, end=None, pricing=None, pricing_source="<defaults>",
                   sensitivity: bool = True) -> Validation:
    from analysis.calibration import load_chain_data
    from engine.marketmodel import PricingParams

    t0 = time.perf_counter()
    pricing = pricing or PricingParams()
    s, e = _window(start, end)
    etps = F.etp_comparisons(panel, start if start else None, e)
    cross = F.etp_crosscheck(panel)
    chains = load_chain_data(data_dir)
    errs = {d: F.surface_errors(c.chain, panel, pricing, market=c.market) for d, c in chains.items()}
    summ = F.surface_summary(errs) if errs else pd.DataFrame()
    out_dates = [d for d in errs if d not in F.CALIBRATION_CHAINS]
    buckets = F.bucket_errors(pd.concat([errs[d] for d in out_dates])) if out_dates else pd.DataFrame()
    res, cndr = F.run_cndr(panel, pricing, s, e)
    cstats = F.cndr_stats(res, cndr)
    _, vx = F.run_vxth(panel, pricing, s, e)
    q = F.vxth_quarterly(vx)
    weights = F.vx_weight_bracket_check(panel, vx)
    sens = None
    if sensitivity:
        quarters = sorted(set(F.payoff_quarters(q)) | {k for k in F.VXTH_PUBLISHED if pd.Period(k) in q.index})
        if quarters:
            sens = F.vxth_sensitivity(panel, pricing, quarters, s, e)
    v = Validation(s, e, pricing_source, etps, cross, errs, summ, buckets, cstats, q, vx, weights, sens)
    v.acceptance = acceptance(v)
    v.seconds = time.perf_counter() - t0
    return v


def acceptance(v: Validation) -> list[dict]:
    rows = []
    for c in v.etps:
        dt_, wk_ = c.target
        rows.append({"check": f"{F.BLEND_NAMES[c.kind]} vs {c.name}: daily return correlation", "value": c.daily_corr,
                     "target": f">= {dt_}", "met": c.daily_corr >= dt_, "window": f"{c.start.date()}..{c.end.date()}"})
        rows.append({"check": f"{F.BLEND_NAMES[c.kind]} vs {c.name}: weekly return correlation", "value": c.weekly_corr,
                     "target": f">= {wk_}", "met": c.weekly_corr >= wk_, "window": f"{c.start.date()}..{c.end.date()}"})
        if math.isfinite(c.daily_corr_clean):
            rows.append({"check": f"{F.BLEND_NAMES[c.kind]} vs {c.name}: daily / weekly correlation without the "
                                  f"{c.flagged_days} days VXX and VIXY disagree by > 4 % (source-data errors)",
                         "value": f"{c.daily_corr_clean:.4f} / {c.weekly_corr_clean:.4f}", "target": f">= {dt_} / {wk_}",
                         "met": c.daily_corr_clean >= dt_ and c.weekly_corr_clean >= wk_, "window": "informational"})
        n_ok, n = c.years_within()
        rows.append({"check": f"{c.name}: full years with |ETP - (replica - fee)| <= 1 pt", "value": f"{n_ok}/{n}",
                     "target": "all", "met": n > 0 and n_ok == n,
                     "window": f"annualised gap over the window {c.annualised_gap * 100:+.2f} pt/yr"})
    if len(v.surface_summary):
        out = v.surface_summary[v.surface_summary["sample"] == "out"]
        pooled = F.pooled_median(v.surface_errors, list(out["date"]))
        rows.append({"check": "SPX surface out of sample: pooled median |IV error|, 10-30 delta, 20-60 DTE (vol pts)",
                     "value": pooled, "target": "<= 1.0", "met": pooled <= 1.0, "window": ", ".join(out["date"])})
        for _, r in out.iterrows():
            rows.append({"check": f"SPX surface {r['date']}: median |IV error| (vol pts)", "value": r["median_abs_iv_err"],
                         "target": "<= 1.5", "met": r["median_abs_iv_err"] <= 1.5, "window": "out of sample"})
    q = v.vxth_quarterly
    if q is not None:
        for k, (pub, spx_pub) in F.VXTH_PUBLISHED.items():
            per = pd.Period(k)
            if per not in q.index:
                continue
            val = float(q.loc[per, "vxth"])
            tol = F.VXTH_TOLERANCE[k]
            rows.append({"check": f"VXTH replica {k} (published {pub * 100:+.1f}%)", "value": val,
                         "target": f"within {tol * 100:.0f} pts", "met": abs(val - pub) <= tol,
                         "window": f"S&P 500 TR replica {q.loc[per, 'spx_tr'] * 100:+.1f}% (published {spx_pub * 100:+.1f}%)"})
    return rows


# ------------------------------------------------------------------------------------------------------------
# plots
# ------------------------------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_etps(v: Validation, out: Path) -> list[Path]:
    plt = _plt()
    paths = []
    n = len(v.etps)
    if not n:
        return paths
    fig, axes = plt.subplots(n, 2, figsize=(13, 3.2 * n), squeeze=False)
    for i, c in enumerate(v.etps):
        ax = axes[i][0]
        r = c.returns
        lvl_e = (1 + r["etp"]).cumprod()
        years = np.arange(len(r)) / 252.0
        lvl_r = (1 + r["replica_tr"]).cumprod() * (1 - c.fee) ** years
        ax.plot(r.index, lvl_e, label=f"{c.name} (close-to-close)", lw=1.2)
        ax.plot(r.index, lvl_r, label=f"{F.BLEND_NAMES[c.kind]} + T-bills - {c.fee * 100:.2f}% fee", lw=1.0, ls="--")
        ax.set_yscale("log")
        ax.set_ylabel("growth of 1 (log scale)")
        ax.set_title(f"{c.name} vs {F.BLEND_NAMES[c.kind]} ({c.start.date()} .. {c.end.date()})")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        ax2 = axes[i][1]
        roll = r["etp"].rolling(126).corr(r["blend"])
        ax2.plot(r.index, roll, lw=1.0, label="126-day rolling daily-return correlation")
        ax2.axhline(c.target[0], color="red", ls=":", lw=1, label=f"target {c.target[0]} (whole window)")
        ax2.set_ylim(0.5, 1.01)
        ax2.set_ylabel("correlation")
        ax2.set_title(f"{c.name}: daily corr {c.daily_corr:.3f}, weekly {c.weekly_corr:.3f}")
        ax2.legend(fontsize=8, loc="lower left")
        ax2.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("date")
    fig.tight_layout()
    p = out / "etp_tracking.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    paths.append(p)

    fig, axes = plt.subplots(n, 1, figsize=(12, 2.8 * n), squeeze=False)
    for i, c in enumerate(v.etps):
        ax = axes[i][0]
        a = c.annual
        x = np.arange(len(a))
        ax.bar(x - 0.2, a["etp"] * 100, 0.4, label=c.name)
        ax.bar(x + 0.2, a["replica_less_fee"] * 100, 0.4, label="replica + T-bills - fee")
        ax.set_xticks(x, [f"{y}{'' if f else '*'}\n{g:+.1f}" for y, f, g in zip(a["year"], a["full_year"], a["gap"] * 100)],
                      fontsize=8)
        ax.set_ylabel("annual return (%)")
        ax.set_title(f"{c.name}: annual returns (second label line: ETP minus replica-less-fee, pts; * = partial year)")
        ax.axhline(0, color="black", lw=0.5)
        ax.legend(fontsize=8)
    axes[-1][0].set_xlabel("year")
    fig.tight_layout()
    p = out / "etp_annual.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    paths.append(p)
    return paths


def plot_surface(v: Validation, out: Path) -> list[Path]:
    plt = _plt()
    if not v.surface_errors:
        return []
    dates = list(v.surface_errors)
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5), squeeze=False)
    for ax, d in zip(axes.ravel(), dates):
        err = v.surface_errors[d]
        tag = "in-sample" if d in F.CALIBRATION_CHAINS else "out-of-sample"
        for target, color in ((14, "tab:blue"), (30, "tab:orange"), (60, "tab:green")):
            ex = err.groupby(["expiry", "root"])["dte"].first()
            (e, root), dte = min(ex.items(), key=lambda kv: abs(kv[1] - target))
            g = err[(err["expiry"] == e) & (err["root"] == root)].sort_values("strike")
            g = g[g["abs_delta"] >= 0.02]
            x = np.log(g["strike"] / g["F"])
            ax.plot(x, g["iv_mkt"] * 100, "o", ms=2.5, color=color, label=f"market {root} {dte}d")
            ax.plot(x, g["iv_model"] * 100, "-", color=color, lw=1.2, label=f"model {dte}d")
        ax.set_title(f"{d} ({tag})")
        ax.set_xlabel("log-moneyness ln(K/F)")
        ax.set_ylabel("implied vol (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    p1 = out / "surface_smiles.png"
    fig.savefig(p1, dpi=90)
    plt.close(fig)

    b = v.surface_buckets
    if b is None or b.empty:
        return [p1]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    dte_order = [f"{a}-{c}" for a, c in F.DTE_BUCKETS]
    delta_order = [f"{a * 100:.0f}-{c * 100:.0f}d" for a, c in F.DELTA_BUCKETS]
    for ax, side in zip(axes, ("put", "call")):
        t = b[b["side"] == side].pivot(index="delta_bucket", columns="dte_bucket", values="iv_abs")
        t = t.reindex(index=delta_order, columns=dte_order)
        im = ax.imshow(t.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=2.0, aspect="auto")
        ax.set_xticks(range(len(dte_order)), dte_order)
        ax.set_yticks(range(len(delta_order)), delta_order)
        for (i, j), val in np.ndenumerate(t.to_numpy(dtype=float)):
            if math.isfinite(val):
                ax.text(j, i, f"{val:.2f}", ha="center", va="center", color="white" if val < 1.2 else "black", fontsize=8)
        ax.set_xlabel("days to expiry")
        ax.set_ylabel("|delta| bucket")
        ax.set_title(f"{side}s: median |IV error| (vol pts), out-of-sample chains")
        fig.colorbar(im, ax=ax, label="vol points")
    fig.tight_layout()
    p2 = out / "surface_errors.png"
    fig.savefig(p2, dpi=90)
    plt.close(fig)
    return [p1, p2]


def plot_cndr(v: Validation, out: Path) -> list[Path]:
    plt = _plt()
    c = v.cndr
    if c is None or c.index.empty:
        return []
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    a1.plot(c.index.index, c.index, lw=1.1, label="CNDR replica (start = 100)")
    a1.set_ylabel("index level")
    a1.set_title(f"CNDR replica: 0.20/0.05-delta monthly SPX iron condor, 10x T-bill collateral, mid fills "
                 f"(CAGR {c.cagr * 100:.2f}%, vol {c.volatility * 100:.1f}%)")
    a1.grid(alpha=0.3)
    a1.legend()
    dd = c.index / c.index.cummax() - 1
    a2.fill_between(dd.index, dd * 100, 0, color="tab:red", alpha=0.5, label="drawdown")
    a2.set_ylabel("drawdown (%)")
    a2.set_xlabel("date")
    a2.grid(alpha=0.3)
    a2.legend()
    fig.tight_layout()
    p = out / "cndr.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return [p]


def plot_vxth(v: Validation, out: Path) -> list[Path]:
    plt = _plt()
    q = v.vxth_quarterly
    if q is None or q.empty:
        return []
    f = v.vxth_strategy.frame()
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(13, 7.5))
    a1.plot(f.index, 100 * f["index"] / f["index"].iloc[0], lw=1.1, label="VXTH replica")
    a1.plot(f.index, 100 * f["spx_tr"] / f["spx_tr"].iloc[0], lw=1.0, ls="--", label="S&P 500 total return (proxy)")
    a1.set_yscale("log")
    a1.set_ylabel("level (start = 100, log scale)")
    a1.set_xlabel("date")
    a1.set_title("VXTH replica vs S&P 500 total return")
    a1.grid(alpha=0.3)
    a1.legend()
    x = np.arange(len(q))
    a2.bar(x - 0.2, q["vxth"] * 100, 0.4, label="VXTH replica")
    a2.bar(x + 0.2, q["spx_tr"] * 100, 0.4, label="S&P 500 TR")
    pub = q["vxth_published"].notna().to_numpy()
    a2.scatter(x[pub], q["vxth_published"].to_numpy()[pub] * 100, color="black", marker="*", s=80, zorder=5,
               label="Cboe published VXTH")
    step = max(1, len(q) // 20)
    a2.set_xticks(x[::step], [str(p) for p in q.index[::step]], rotation=45, fontsize=8)
    a2.set_ylabel("quarterly return (%)")
    a2.set_xlabel("quarter")
    a2.axhline(0, color="black", lw=0.5)
    a2.grid(alpha=0.3)
    a2.legend(fontsize=8)
    fig.tight_layout()
    p1 = out / "vxth.png"
    fig.savefig(p1, dpi=90)
    plt.close(fig)
    paths = [p1]
    s = v.sensitivity
    if s is not None and len(s.table):
        t = s.table
        quarters = [c for c in t.columns if c[:4].isdigit()]
        ncol = min(4, len(quarters))
        nrow = math.ceil(len(quarters) / ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol + 0.5, 3.4 * nrow + 0.6), squeeze=False)
        for ax in axes.ravel()[len(quarters):]:
            ax.set_visible(False)
        for ax, qq in zip(axes.ravel(), quarters):
            for phase, mk in (("open", "o-"), ("close", "s-")):
                tt = t[t["buy_phase"] == phase]
                ax.plot(tt["atm_ratio"], tt[qq] * 100, mk, label=f"calls bought at {phase}")
            if qq in F.VXTH_PUBLISHED:
                pub_v = F.VXTH_PUBLISHED[qq][0] * 100
                tol = F.VXTH_TOLERANCE[qq] * 100
                ax.axhspan(pub_v - tol, pub_v + tol, color="green", alpha=0.15, label="published +/- tolerance")
                ax.axhline(pub_v, color="green", lw=1)
            ax.set_title(qq)
            ax.set_xlabel("VIX-option atm_ratio")
            ax.set_ylabel("VXTH replica return (%)")
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7)
        fig.suptitle("VXTH payoff quarters: sensitivity to the VIX-option vol level and the purchase snapshot")
        fig.tight_layout()
        p2 = out / "vxth_sensitivity.png"
        fig.savefig(p2, dpi=90)
        plt.close(fig)
        paths.append(p2)
    return paths


# ------------------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------------------
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
             f"Pricing: {v.pricing_source}. Run time {v.seconds:.1f} s.", "", "## Acceptance figures (issue #4)", ""]
    acc = pd.DataFrame(v.acceptance)
    if len(acc):
        acc["value"] = [f"{x:.4f}" if isinstance(x, float) else x for x in acc["value"]]
        acc["met"] = ["met" if m else "SHORT" for m in acc["met"]]
    lines.append(_md(acc))
    lines += ["## 1. Constant-maturity VX blends vs VIX ETPs", ""]
    rows = [{"ETP": c.name, "blend": F.BLEND_NAMES[c.kind], "window": f"{c.start.date()}..{c.end.date()}",
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
    lines += ["## 2. SPX surface vs real chain snapshots", "",
              ("Median errors on 10-30 delta options with 20-60 days to expiry (iv in vol points; price in % of mid). "
              "`iv` compares at the parity forward's moneyness, `same_strike` at the strike with the model's own forward; "
              "`price` prices the model vol on the market forward, `price_sim` is the simulator's own mid."), ""]
    lines.append(_md(v.surface_summary))
    lines += ["### Out-of-sample chains pooled, by side, delta and DTE bucket", ""]
    lines.append(_md(v.surface_buckets, ".2f"))
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


def write_outputs(v: Validation, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    plots = plot_etps(v, out) + plot_surface(v, out) + plot_cndr(v, out) + plot_vxth(v, out)
    paths += plots
    for c in v.etps:
        p = out / f"etp_{c.name.lower()}_annual.csv"
        c.annual.to_csv(p, index=False, float_format="%.6f")
        paths.append(p)
    if len(v.surface_summary):
        p = out / "surface_summary.csv"
        v.surface_summary.to_csv(p, index=False, float_format="%.6f")
        paths.append(p)
        p = out / "surface_buckets.csv"
        v.surface_buckets.to_csv(p, index=False, float_format="%.6f")
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
        "acceptance": [{k: (bool(x) if k == "met" else (float(x) if isinstance(x, (float, np.floating)) else x))
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
        lines.append(f"{'met  ' if r['met'] else 'SHORT'}  {r['check']}: {val} (target {r['target']}; {r['window']})")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------
# commands
# ------------------------------------------------------------------------------------------------------------
def cmd_validate(args) -> int:
    from adapters.data.panel import resolve_data_dir

    if args.start and args.end and pd.Timestamp(args.end) <= pd.Timestamp(args.start):
        raise UserError(f"--end {args.end} must be after --start {args.start}")
    for flag, val in (("--start", args.start), ("--end", args.end)):
        if val:
            try:
                pd.Timestamp(val)
            except ValueError:
                raise UserError(f"{flag} {val!r} is not a date (use YYYY-MM-DD)") from None
    pricing, source = pricing_for(args.config)
    panel = load_panel_for(args)
    data_dir = resolve_data_dir(getattr(args, "data_dir", None))
    v = run_validation(panel, data_dir, args.start, args.end, pricing, source, sensitivity=not args.no_sensitivity)
    print(f"alvh validate: {v.start} .. {v.end} (pricing: {source})")
    print(format_acceptance(v))
    if args.out:
        paths = write_outputs(v, Path(args.out))
        print(f"wrote {len(paths)} files to {args.out} (report: {Path(args.out) / 'report.md'})")
    log.info("validate_done", seconds=round(v.seconds, 2))
    return 0


def cmd_calibrate(args) -> int:
    from adapters.data.panel import resolve_data_dir
    from analysis.calibration import format_report, run_calibration, write_calibrated
    from engine.marketmodel import PricingParams

    panel = load_panel_for(args)
    data_dir = resolve_data_dir(getattr(args, "data_dir", None))
    cal = run_calibration(panel, data_dir, PricingParams())
    print(format_report(cal))
    if not args.dry_run:
        p = write_calibrated(cal, Path(args.out))
        print(f"wrote {p}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("validate", help="fidelity report: VX blends vs ETPs, SPX surface vs real chains, CNDR/VXTH replicas")
    p.add_argument("--out", default="out/validate", help="directory for report.md, plots and tables ('' to skip)")
    p.add_argument("--start", help=f"first day (default {FULL_START})")
    p.add_argument("--end", help=f"last day (default {FULL_END})")
    p.add_argument("--config", help="take pricing from this config (default: defaults + config/calibrated.toml)")
    p.add_argument("--no-sensitivity", action="store_true", help="skip the VXTH vol-assumption sensitivity runs")
    add_common(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("calibrate", help="fit SPX skew, SPX spread and VIX-option vol on early data; report out of sample")
    p.add_argument("--out", default=str(CALIBRATED_TOML), help="TOML file to write (default config/calibrated.toml)")
    p.add_argument("--dry-run", action="store_true", help="print the fit without writing the file")
    add_common(p)
    p.set_defaults(func=cmd_calibrate)
