"""The plots of `alvh validate`: ETP tracking and annual returns, SPX smiles and error buckets, the CNDR replica, the
VXTH replica and its sensitivity. Drawn with matplotlib's Agg backend (no display needed), 90 dpi PNGs.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import etp_tracking, replicas, spx_surface
from analysis.figures import plt, save
from analysis.validation import Validation


def plot_etps(v: Validation, out: Path) -> list[Path]:
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
        ax.plot(r.index, lvl_r, label=f"{etp_tracking.BLEND_NAMES[c.kind]} + T-bills - {c.fee * 100:.2f}% fee", lw=1.0, ls="--")
        ax.set_yscale("log")
        ax.set_ylabel("growth of 1 (log scale)")
        ax.set_title(f"{c.name} vs {etp_tracking.BLEND_NAMES[c.kind]} ({c.start.date()} .. {c.end.date()})")
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
    paths.append(save(fig, out / "etp_tracking.png", dpi=90))

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
    paths.append(save(fig, out / "etp_annual.png", dpi=90))
    return paths


SMILE_DATES = ("2018-01-10", "2018-02-05", "2018-02-06", "2018-02-09", "2020-09-04", "2023-09-14")


def plot_surface(v: Validation, out: Path) -> list[Path]:
    e = v.surface_errors
    if e is None or e.empty:
        return []
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5), squeeze=False)
    for ax, d in zip(axes.ravel(), SMILE_DATES):
        err = e[(e["date"] == pd.Timestamp(d)) & (e["und"] == "SPX")]
        if err.empty:
            ax.set_visible(False)
            continue
        ex = err.groupby(["expiry", "root"])["dte"].first()
        shown = set()
        for target, color in ((14, "tab:blue"), (30, "tab:orange"), (60, "tab:green")):
            (xp, root), dte = min(ex.items(), key=lambda kv: abs(kv[1] - target))
            if (xp, root) in shown:
                continue
            shown.add((xp, root))
            g = err[(err["expiry"] == xp) & (err["root"] == root)].sort_values("strike")
            g = g[g["abs_delta"] >= 0.02]
            ax.plot(g["k"], g["iv_mkt"] * 100, "o", ms=2.5, color=color, label=f"market {root} {dte}d")
            ax.plot(g["k"], g["iv_model"] * 100, "-", color=color, lw=1.2, label=f"model {dte}d")
        r = v.surface_dates.set_index("date").loc[d]
        ax.set_title(f"{d} VIX {r['vix']:.1f} ({r['sample']} of sample): median |err| {r['median_abs']:.2f}")
        ax.set_xlabel("log-moneyness ln(K/F)")
        ax.set_ylabel("implied vol (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    p1 = save(fig, out / "surface_smiles.png", dpi=90)

    d = v.surface_dates
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(14, 4.6))
    for sample, mk in (("in", "s"), ("out", "o")):
        sel = (d["sample"] == sample).to_numpy()
        a1.scatter(d["vix"][sel], d["median_abs"][sel], marker=mk, label=f"{sample} of sample")
    _per_date_axes(a1, "SPX surface error per chain date vs VIX")
    b = spx_surface.bucket_table(v.surface_errors[(v.surface_errors["und"] == "SPX") & (v.surface_errors["sample"] == "out")
                                                  & v.surface_errors["abs_delta"].between(*spx_surface.DELTA_RANGE)],
                                 ("side", "delta_bucket", "dte_bucket"))
    b["label"] = b["side"] + " " + b["delta_bucket"]
    rows = [f"{side} {d}" for side in ("put", "call") for d in ("3-10d", "10-30d", "30-50d")]
    t = b.pivot(index="label", columns="dte_bucket", values="median_abs").reindex(index=rows, columns=["7-20", "20-60", "60-90"])
    im = a2.imshow(t.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=2.0, aspect="auto")
    a2.set_xticks(range(t.shape[1]), list(t.columns))
    a2.set_yticks(range(t.shape[0]), list(t.index))
    for (i, j), val in np.ndenumerate(t.to_numpy(dtype=float)):
        if math.isfinite(val):
            a2.text(j, i, f"{val:.2f}", ha="center", va="center", color="white" if val < 1.2 else "black", fontsize=8)
    a2.set_xlabel("days to expiry")
    a2.set_title("median |IV error| by bucket, out-of-sample dates pooled")
    fig.colorbar(im, ax=a2, label="vol points")
    p2 = save(fig, out / "surface_errors.png", dpi=90)
    return [p1, p2] + plot_chain_levels(v, out)


def plot_chain_levels(v: Validation, out: Path) -> list[Path]:
    """Per chain date: the surface's bias against the chain's own level gap (analysis.chain_level), and the median
    |error| as replay prices vs with the surface's level scaled to the chain's (level_scale)."""
    t = v.chain_levels
    if t is None or t.empty or t["gap"].notna().sum() < 2:
        return []
    t = t[t["gap"].notna()].merge(v.surface_dates[["date", "bias"]], on="date")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(14, 4.8))
    sc = a1.scatter(t["gap"], t["bias"], c=t["vix"], cmap="coolwarm", vmin=10, vmax=35, s=22)
    lim = float(max(t["gap"].abs().max(), t["bias"].abs().max())) + 0.2
    a1.plot([-lim, lim], [lim, -lim], "k:", lw=1, label="bias = -gap")
    a1.axhline(0, color="grey", lw=0.6)
    a1.axvline(0, color="grey", lw=0.6)
    a1.set_xlabel("chain's own variance swap - index level (vol pts)")
    a1.set_ylabel("surface bias: median model - market (vol pts)")
    a1.set_title(f"the surface holds the indices: bias follows the chain's level (corr {np.corrcoef(t['gap'], t['bias'])[0, 1]:.2f})")
    a1.legend(fontsize=8)
    a1.grid(alpha=0.3)
    fig.colorbar(sc, ax=a1, label="VIX close")
    a2.scatter(t["vix"], t["median_abs"], s=20, label="as replay prices (index closes)")
    a2.scatter(t["vix"], t["median_abs_matched"], s=20, marker="x", label="surface level scaled to the chain's")
    _per_date_axes(a2, "per chain date: same fitted shape, two levels")
    return [save(fig, out / "chain_levels.png", dpi=90)]


def _per_date_axes(ax, title: str) -> None:
    """Median |IV error| per chain date against VIX: the issue #9 targets (1.0 below VIX 20, 2.0 from 25), labels."""
    ax.plot([0, 20], [1, 1], "k:", lw=1)
    ax.plot([25, 40], [2, 2], "k:", lw=1, label="targets")
    ax.set_xlabel("VIX close")
    ax.set_ylabel("median |IV error| (vol pts)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def plot_vix_options(v: Validation, out: Path) -> list[Path]:
    e = v.vix_errors
    if e is None or e.empty:
        return []
    dates = sorted(e["date"].unique())
    fig, axes = plt.subplots(1, len(dates), figsize=(5 * len(dates), 4.2), squeeze=False)
    for ax, d in zip(axes[0], dates):
        g = e[(e["date"] == d) & e["dte"].between(14, 120)]
        for i, (xp, gg) in enumerate(g.groupby("expiry")):
            gg = gg.sort_values("k")
            col = f"C{i}"
            ax.plot(gg["k"], gg["iv_mkt"] * 100, "o", ms=2.5, color=col, label=f"{pd.Timestamp(xp).date()} ({gg['dte'].iloc[0]}d)")
            ax.plot(gg["k"], gg["iv_model"] * 100, "-", color=col, lw=1.1)
        ax.set_title(f"VIX options {d} (dots market, lines model)")
        ax.set_xlabel("ln(K/F), F = the expiry's own forward")
        ax.set_ylabel("implied vol (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    return [save(fig, out / "vix_options.png", dpi=90)]


def plot_cndr(v: Validation, out: Path) -> list[Path]:
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
    p = save(fig, out / "cndr.png", dpi=90)
    return [p]


def plot_vxth(v: Validation, out: Path) -> list[Path]:
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
    p1 = save(fig, out / "vxth.png", dpi=90)
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
            if qq in replicas.VXTH_PUBLISHED:
                pub_v = replicas.VXTH_PUBLISHED[qq][0] * 100
                tol = replicas.VXTH_TOLERANCE[qq] * 100
                ax.axhspan(pub_v - tol, pub_v + tol, color="green", alpha=0.15, label="published +/- tolerance")
                ax.axhline(pub_v, color="green", lw=1)
            ax.set_title(qq)
            ax.set_xlabel("VIX-option atm_ratio")
            ax.set_ylabel("VXTH replica return (%)")
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7)
        fig.suptitle("VXTH payoff quarters: sensitivity to the VIX-option vol level and the purchase snapshot")
        paths.append(save(fig, out / "vxth_sensitivity.png", dpi=90))
    return paths
