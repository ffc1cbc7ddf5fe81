"""The verdict's PNG plots (matplotlib, Agg): the headline chart (each named spike's drawdown reduction over every
variant - surface x condor-ladder phase x window end - coloured by verdict class, with a legend), the full-period equity and drawdown, the layer
activations over VIX, and one chart per episode."""
from __future__ import annotations

import math
import textwrap
from functools import partial
from pathlib import Path

import matplotlib.dates as mdates
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from analysis.episodes import HELD_EVERY, HELD_NONE, HELD_SOME, NOT_SCORED, WORSE_EVERY
from analysis.figures import plt, save
from analysis.tables import num
from analysis.tasks import run_forked

# one colour per scenario, stable across plots
COLORS = {
    "unhedged": "#222222", "alvh": "#1f77b4", "alvh_vega": "#17becf", "alvh_equity": "#ff7f0e",
    "alvh_contracts": "#2ca02c", "alvh_calls": "#9467bd", "alvh_calls_premium": "#8c564b",
    "static": "#7f7f7f", "vxth": "#d62728", "spx_puts": "#e377c2",
}
LAYER_COLORS = ["#fdae61", "#f46d43", "#a50026", "#74add1", "#4575b4", "#313695", "#66bd63", "#1a9850"]


CLASS_COLORS = {HELD_EVERY: "#1a9850", HELD_SOME: "#a6d96a", HELD_NONE: "#fdae61", WORSE_EVERY: "#d73027",
                 NOT_SCORED: "#bdbdbd", "n/a": "#f0f0f0"}



def default_scenario(res) -> str:
    return res.meta.get("default_scenario", "alvh")


def legend_label(res, name: str) -> str:
    """A scenario's label; a flagged one says it is not scored."""
    label = next((s.label for s in res.scenarios if s.name == name), name)
    flagged = res.full_table.set_index("scenario").get("flag", {}) if len(res.full_table) else {}
    return f"{label} [not scored]" if flagged.get(name) else label


def phases_text(res) -> str:
    """What an episode's range is taken over: '3 surfaces x 5 ladder phases, x the window family for GFC 2008'."""
    n, k = res.meta.get("ladders", 1), len(res.meta.get("surfaces", [])) or 1
    fam = [e.name for e in res.episodes if e.windows and e.source == "named"]
    return (f"{k} pricing surface{'s' if k > 1 else ''} x {n} condor-ladder phase{'s' if n > 1 else ''}"
            + (f", x the window family for {', '.join(fam)}" if fam else ""))



def _date_axis(ax, span_days: float) -> None:
    if span_days > 3 * 365:
        loc = mdates.YearLocator(2 if span_days > 10 * 365 else 1)
        fmt = mdates.DateFormatter("%Y")
    elif span_days > 300:
        loc = mdates.MonthLocator(bymonth=(1, 4, 7, 10))
        fmt = mdates.DateFormatter("%b %Y")
    else:
        loc = mdates.MonthLocator()
        fmt = mdates.DateFormatter("%b %Y")
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(fmt)


def _shade_levels(ax, act: pd.DataFrame, thresholds, ymax: float) -> None:
    """Coloured bands under the VIX line for each layer while it is on."""
    names = [t[0] for t in thresholds]
    for i, name in enumerate(names):
        col = f"level_{name}"
        if col not in act:
            continue
        on = act[col].to_numpy() > 0
        if not on.any():
            continue
        ax.fill_between(act.index, 0, ymax, where=on, step="post", color=LAYER_COLORS[i % len(LAYER_COLORS)],
                        alpha=0.12, linewidth=0)


def plot_episode(res, ep, path: Path, scenarios: list[str] | None = None) -> Path:
    d = res.meta.get("default_scenario", "alvh")
    names = scenarios or [s.name for s in res.scenarios]
    curves = {n: res.curves[n] for n in names if n in res.curves}
    pad = pd.Timedelta(days=10)
    a, b = ep.start, ep.end
    fig, axes = plt.subplots(3, 1, figsize=(11, 9.5), sharex=True, gridspec_kw={"height_ratios": [3, 2, 1.6]})
    ax1, ax2, ax3 = axes
    for n, eq in curves.items():
        e = eq["equity"].loc[a - pad:b + pad]
        if e.empty:
            continue
        base = eq["equity"].loc[a:b]
        base = base.iloc[0] if len(base) else e.iloc[0]
        lw = 2.4 if n in ("unhedged", d) else 1.1
        style = "-" if n in ("unhedged", d) or n.startswith("alvh") else "--"
        label = legend_label(res, n)
        if n == d:
            label = f"{label} [default]"
        ax1.plot(e.index, 100 * e / base, style, color=COLORS.get(n, None), lw=lw, label=label)
        w = eq["equity"].loc[a:b]
        dd = 100 * (w / w.cummax() - 1.0)
        ax2.plot(dd.index, dd, style, color=COLORS.get(n, None), lw=lw)
    for ax in (ax1, ax2):
        ax.axvspan(a, b, color="#f2f2f2", zorder=0)
        ax.grid(alpha=0.3)
    # a window family: the class is read over every end, so the reader must see where they fall
    for label, end in ep.windows[1:]:
        for ax in (ax1, ax2):
            ax.axvline(end, color="#777777", ls="--", lw=0.8, zorder=1)
        ax1.annotate(f"end: {label}", (end, 1.0), xycoords=("data", "axes fraction"), xytext=(2, -4),
                     textcoords="offset points", rotation=90, va="top", fontsize=7, color="#555555")
    ax1.set_ylabel("account equity (window start = 100)")
    ax1.legend(fontsize=8, loc="best", ncol=2, framealpha=0.9)
    row = res.episode_table[(res.episode_table.episode == ep.name) & (res.episode_table.scenario == d)]
    sub = ""
    if len(row):
        r = row.iloc[0]
        sub = (f"max drawdown {r.dd_unhedged_pct:.2f}% unhedged vs {r.dd_pct:.2f}% hedged "
               f"({num(r.reduction_pct, 0)}% reduction: {r['class']})")
    ax1.set_title(f"{ep.name}: {a:%Y-%m-%d} to {b:%Y-%m-%d}\n{sub}", fontsize=11)
    ax2.set_ylabel("drawdown in window (%)")
    eq0 = next(iter(res.curves.values()))
    vix = eq0["vix"].loc[a - pad:b + pad]
    ax3.plot(vix.index, vix, color="black", lw=1.2, label="VIX close")
    if res.activity is not None:
        act = res.activity.loc[a - pad:b + pad]
        top = max(float(vix.max()) * 1.1 if len(vix) else 40.0, 40.0)
        _shade_levels(ax3, act, res.thresholds, top)
        ax3.set_ylim(0, top)
    for i, (name, thr, _h) in enumerate(res.thresholds):
        ax3.axhline(thr, color=LAYER_COLORS[i % len(LAYER_COLORS)], ls=":", lw=1.2, label=f"{name} layer on at {thr:g}")
    ax3.set_ylabel("VIX")
    ax3.set_xlabel("date")
    handles, labels = ax3.get_legend_handles_labels()
    handles.append(Patch(color=LAYER_COLORS[1], alpha=0.3))
    labels.append("shaded: default hedge's layers on (darker = more)")
    ax3.legend(handles, labels, fontsize=7, loc="upper right", ncol=2, framealpha=0.9)
    ax3.grid(alpha=0.3)
    _date_axis(ax3, (b - a).days + 20)
    fig.autofmt_xdate()
    return save(fig, path, dpi=90)   # 22+ of these go into the page: kept small


def plot_activations(res, path: Path) -> Path:
    act = res.activity
    eq0 = next(iter(res.curves.values()))
    vix = eq0["vix"]
    names = [t[0] for t in res.thresholds]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(15, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]})
    ax1.plot(vix.index, vix, color="black", lw=0.8, label="VIX close (the default trigger signal)")
    for i, (name, thr, hyst) in enumerate(res.thresholds):
        c = LAYER_COLORS[i % len(LAYER_COLORS)]
        ax1.axhline(thr, color=c, ls="--", lw=1.2, label=f"{name}: on at {thr:g}, off below {thr - hyst:g}")
    for ep in res.episodes:
        if ep.source == "named":
            ax1.axvspan(ep.start, ep.end, color="#dddddd", alpha=0.5, zorder=0)
            ax1.text(ep.start, 86, ep.name, fontsize=7, rotation=90, va="top", ha="right", color="#555555")
    ax1.set_ylim(0, 90)
    ax1.set_ylabel("VIX")
    ax1.set_title("ALVH layer activations over VIX (grey: named episodes)")
    ax1.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), framealpha=0.9)
    ax1.grid(alpha=0.3)
    if act is not None and len(act):
        for i, name in enumerate(names):
            lv = act[f"level_{name}"].to_numpy()
            y = len(names) - 1 - i
            ax2.fill_between(act.index, y, y + 0.8 * lv, step="post", color=LAYER_COLORS[i % len(LAYER_COLORS)],
                             linewidth=0, label=name)
        ax2.set_yticks([len(names) - 1 - i + 0.4 for i in range(len(names))])
        ax2.set_yticklabels(names)
    ax2.set_ylabel("layer on")
    ax2.set_xlabel("date")
    ax2.grid(alpha=0.3, axis="x")
    _date_axis(ax2, (vix.index[-1] - vix.index[0]).days)
    return save(fig, path, dpi=110)


def plot_full(res, path: Path) -> Path:
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(15, 8), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    d = res.meta.get("default_scenario", "alvh")
    for s in res.scenarios:
        eq = res.curves.get(s.name)
        if eq is None:
            continue
        e = eq["equity"]
        lw = 2.2 if s.name in ("unhedged", d) else 1.0
        style = "-" if s.family != "baseline" else "--"
        ax1.plot(e.index, e / 1e6, style, color=COLORS.get(s.name), lw=lw, label=legend_label(res, s.name))
        ax2.plot(e.index, 100 * (e / e.cummax() - 1), style, color=COLORS.get(s.name), lw=lw)
    ax1.set_yscale("log")
    ax1.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
    ax1.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax1.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax1.set_ylabel("account equity ($ million, log scale)")
    ax1.set_title("Full period: condor book with each hedge (same book, same costs)")
    ax1.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), framealpha=0.9)
    ax1.grid(alpha=0.3, which="both")
    ax2.set_ylabel("drawdown from running peak (%)")
    ax2.set_xlabel("date")
    ax2.grid(alpha=0.3)
    e0 = next(iter(res.curves.values()))["equity"]
    _date_axis(ax2, (e0.index[-1] - e0.index[0]).days)
    return save(fig, path, dpi=110)


def plot_reductions(res, path: Path) -> Path:
    """The headline chart: for each named spike, the default hedge's drawdown reduction on every variant (surface x
    condor-ladder phase x window end; a bar from the lowest to the highest, coloured by the verdict class; the dot
    is the main run) against the claimed band."""
    d = default_scenario(res)
    t = res.episode_table[(res.episode_table.scenario == d) & (res.episode_table.source == "named")]
    t = t.reset_index(drop=True)
    lim = 100.0
    fig, ax = plt.subplots(figsize=(12.5, 4.6))
    ax.axhspan(res.claim.met, res.claim.exceeded, color="#1f77b4", alpha=0.18, zorder=0)
    for y in (res.claim.met, res.claim.exceeded):   # the band's edges stay visible over the bars
        ax.axhline(y, color="#1f77b4", lw=0.9, ls="--", zorder=4)
    ax.axhline(0, color="black", lw=0.8)
    x = np.arange(len(t))
    for i, r in t.iterrows():
        color = CLASS_COLORS.get(r["class"], "#bdbdbd")
        if r["class"] == NOT_SCORED or not math.isfinite(r.range_low):
            ax.bar(i, 6, bottom=-3, width=0.6, color=color, edgecolor="black", lw=0.5)
            ax.text(i, 6, "not scored", ha="center", va="bottom", fontsize=7, color="#555555")
            continue
        lo, hi = np.clip([r.range_low, r.range_high], -lim, lim)
        height = max(hi - lo, 1.5)   # one phase (or equal ends): a thin bar still shows the colour
        ax.bar(i, height, bottom=lo - (height - (hi - lo)) / 2, width=0.6, color=color, edgecolor="black", lw=0.5)
        main = float(np.clip(r.reduction_pct, -lim, lim))
        ax.plot(i, main, "o", color="black", ms=5, zorder=3)
        for v, edge, va in ((r.range_low, -lim, "bottom"), (r.range_high, lim, "top")):
            if (v < edge) if edge < 0 else (v > edge):   # clipped: say by how much
                ax.text(i, edge * 0.97, f"{v:.0f}%", ha="center", va=va, fontsize=7)
    ax.set_xticks(x)
    ax.set_xticklabels([textwrap.fill(e, 11) + (f"\nheld {k}/{n}" if n else "")
                        for e, k, n in zip(t["episode"], t["variants_held"], t["variants"])], fontsize=8)
    ax.set_ylim(-lim * 1.02, lim * 1.02)
    ax.set_ylabel("drawdown reduction vs unhedged (%)")
    ax.set_title(f"Did the hedge ('{d}') cut the condor book's drawdown by the claimed "
                 f"{res.claim.met:.0f}-{res.claim.exceeded:.0f}% in each named spike?\n"
                 f"Bar: lowest to highest reduction over {phases_text(res)}", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    handles = [Patch(color=CLASS_COLORS[c], label=f"claim {c}") for c in (HELD_EVERY, HELD_SOME, HELD_NONE)]
    handles.append(Patch(color=CLASS_COLORS[WORSE_EVERY], label="deeper drawdown on every variant"))
    handles.append(Patch(facecolor="#d2e3f3", edgecolor="#1f77b4", ls="--",
                         label=f"claimed {res.claim.met:.0f}-{res.claim.exceeded:.0f}% cut"))
    handles.append(plt.Line2D([], [], marker="o", color="black", lw=0, label="main run (default surface, Monday entry, rule's window)"))
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0), framealpha=0.95)
    return save(fig, path, dpi=100)


def write_plots(res, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    if not res.curves:
        return []
    jobs = [partial(plot_reductions, res, out / "reductions.png"), partial(plot_full, res, out / "equity_full.png")]
    if res.activity is not None and len(res.activity):
        jobs.append(partial(plot_activations, res, out / "activations.png"))
    shown = [n for n in ("unhedged", res.meta.get("default_scenario", "alvh"), "alvh_vega", "alvh_equity",
                         "alvh_contracts", "static", "vxth", "spx_puts") if n in res.curves]
    shown = list(dict.fromkeys(shown))
    jobs += [partial(plot_episode, res, ep, out / f"episode_{ep.slug}.png", shown) for ep in res.episodes]
    # ~0.3 s a chart, 22 in a default verdict: drawn on the run's workers
    return run_forked(jobs, int(res.meta.get("workers") or 1))
