"""Verdict output: console tables, CSV/JSON, PNG plots and one self-contained HTML page.

Plots are drawn with matplotlib's Agg backend (no display needed); the HTML embeds every PNG as
base64 so the page can be mailed or archived as one file.
"""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import matplotlib.dates as mdates
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from analysis.figures import plt, save

# one colour per scenario, stable across plots
COLORS = {
    "unhedged": "#222222", "alvh": "#1f77b4", "alvh_vega": "#17becf", "alvh_equity": "#ff7f0e",
    "alvh_contracts": "#2ca02c", "alvh_calls": "#9467bd", "alvh_calls_premium": "#8c564b",
    "static": "#7f7f7f", "vxth": "#d62728", "spx_puts": "#e377c2",
}
LAYER_COLORS = ["#fdae61", "#f46d43", "#a50026", "#74add1", "#4575b4", "#313695", "#66bd63", "#1a9850"]


def _pct(x, nd=1) -> str:
    return "n/a" if x is None or not isinstance(x, (int, float)) or not math.isfinite(x) else f"{x:.{nd}f}%"


def _num(x, nd=2) -> str:
    return "n/a" if x is None or not isinstance(x, (int, float)) or not math.isfinite(x) else f"{x:.{nd}f}"


def _money(x) -> str:
    return "n/a" if x is None or not isinstance(x, (int, float)) or not math.isfinite(x) else f"{x:,.0f}"


def text_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h)) for i, h in enumerate(header)]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


# ---------------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------------


def episode_rows(res, scenario: str) -> list[list[str]]:
    t = res.episode_table
    d = t[t.scenario == scenario]
    rows = []
    for _, r in d.iterrows():
        rng = (f"{r.range_low:.0f}..{r.range_high:.0f}%" if math.isfinite(r.range_low) and r.ladders > 1 else "")
        rows.append([r.episode, f"{r.start}..{r.end}", _pct(r.dd_unhedged_pct, 2), _pct(r.dd_pct, 2),
                     _pct(r.reduction_pct, 1), rng, _money(r.hedge_pnl), _money(r.condor_pnl), r["class"]])
    return rows


EPISODE_HEADER = ["episode", "window", "DD unhedged", "DD hedged", "reduction", "ladder range", "hedge P&L",
                  "condor P&L", "vs 35-40% claim"]


def reduction_matrix(res) -> pd.DataFrame:
    """Episodes x scenarios: reduction % (the compact all-readings view)."""
    t = res.episode_table
    t = t[t.scenario != "unhedged"]
    m = t.pivot_table(index="episode", columns="scenario", values="reduction_pct", sort=False)
    order = [s.name for s in res.scenarios if s.name in m.columns]
    return m[order]


def full_rows(res) -> list[list[str]]:
    rows = []
    for _, r in res.full_table.iterrows():
        rows.append([r.scenario, _pct(r.cagr_pct, 2), _num(r.sharpe), _num(r.calmar), _pct(r.max_dd_pct, 2),
                     _money(r.hedge_pnl), _pct(r.hedge_net_pct_yr, 2), _pct(r.hedge_carry_pct_yr, 2),
                     str(int(r.hedge_fills))])
    return rows


FULL_HEADER = ["scenario", "CAGR", "Sharpe", "Calmar", "max DD", "hedge P&L", "hedge net/yr", "calm carry/yr",
               "hedge fills"]


def console_report(res) -> str:
    d = res.meta.get("default_scenario", "alvh")
    head = (f"ALVH verdict  {res.meta.get('start')} .. {res.meta.get('end')}  ({res.meta.get('config')}; "
            f"{res.meta.get('runs')} runs, {res.meta.get('ladders')} condor ladder phase(s), "
            f"{res.meta.get('wall_seconds')} s)")
    out = [head, ""]
    out.append(f"Episodes - default configuration '{d}' vs the unhedged condor book:")
    out.append(text_table(episode_rows(res, d), EPISODE_HEADER))
    out.append("")
    out.append("Reduction of the episode drawdown vs unhedged, every scenario (%):")
    m = reduction_matrix(res)
    rows = [[ep] + [_num(v, 0) for v in r] for ep, r in zip(m.index, m.to_numpy())]
    out.append(text_table(rows, ["episode", *m.columns]))
    out.append("")
    out.append("Full period:")
    out.append(text_table(full_rows(res), FULL_HEADER))
    out.append("")
    out.append("Verdict, episode by episode (claim: 35-40% smaller drawdown):")
    out += [f"  {line}" for line in res.verdict["line"]]
    return "\n".join(out)


def write_tables(res, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, df in (("episodes", res.episode_table), ("full_period", res.full_table), ("verdict", res.verdict),
                     ("ladders", res.ladder_table), ("reductions", reduction_matrix(res).reset_index())):
        p = out / f"{name}.csv"
        df.to_csv(p, index=False, float_format="%.6g")
        paths.append(p)
    if res.rounding is not None and len(res.rounding):
        p = out / "blend_rounding.csv"
        res.rounding.to_csv(p, index=False, float_format="%.6g")
        paths.append(p)
    doc = {
        "meta": res.meta,
        "scenarios": [{"name": s.name, "label": s.label, "family": s.family, "hedge": s.hedge} for s in res.scenarios],
        "episodes": [{"name": e.name, "start": str(e.start.date()), "end": str(e.end.date()), "source": e.source,
                      "note": e.note} for e in res.episodes],
        "episode_table": _records(res.episode_table), "full_period": _records(res.full_table),
        "verdict": _records(res.verdict),
    }
    p = out / "verdict.json"
    p.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    paths.append(p)
    return paths


def _records(df: pd.DataFrame) -> list[dict]:
    recs = df.to_dict(orient="records")
    for r in recs:
        for k, v in r.items():
            if isinstance(v, float) and not math.isfinite(v):
                r[k] = None
    return recs


# ---------------------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------------------


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
        label = next((s.label for s in res.scenarios if s.name == n), n)
        if n == d:
            label = f"{label} [default]"
        ax1.plot(e.index, 100 * e / base, style, color=COLORS.get(n, None), lw=lw, label=label)
        w = eq["equity"].loc[a:b]
        dd = 100 * (w / w.cummax() - 1.0)
        ax2.plot(dd.index, dd, style, color=COLORS.get(n, None), lw=lw)
    for ax in (ax1, ax2):
        ax.axvspan(a, b, color="#f2f2f2", zorder=0)
        ax.grid(alpha=0.3)
    ax1.set_ylabel("account equity (window start = 100)")
    ax1.legend(fontsize=8, loc="best", ncol=2, framealpha=0.9)
    row = res.episode_table[(res.episode_table.episode == ep.name) & (res.episode_table.scenario == d)]
    sub = ""
    if len(row):
        r = row.iloc[0]
        sub = (f"max drawdown {r.dd_unhedged_pct:.2f}% unhedged vs {r.dd_pct:.2f}% hedged "
               f"({_num(r.reduction_pct, 0)}% reduction: {r['class']})")
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
    return save(fig, path, dpi=110)


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
        ax1.plot(e.index, e / 1e6, style, color=COLORS.get(s.name), lw=lw, label=s.label)
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
    d = res.meta.get("default_scenario", "alvh")
    t = res.episode_table[res.episode_table.scenario == d].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(12, 5.5))
    x = np.arange(len(t))
    vals = t["reduction_pct"].to_numpy(dtype=float)
    clipped = np.clip(np.nan_to_num(vals), -200, 200)
    colors = ["#1a9850" if v >= 40 else "#66bd63" if v >= 35 else "#fdae61" if v >= 0 else "#d73027"
              for v in np.nan_to_num(vals)]
    ax.bar(x, clipped, color=colors, edgecolor="black", lw=0.5)
    lo = np.clip(np.nan_to_num(t["range_low"].to_numpy(dtype=float), nan=0), -200, 200)
    hi = np.clip(np.nan_to_num(t["range_high"].to_numpy(dtype=float), nan=0), -200, 200)
    has = np.isfinite(t["range_low"].to_numpy(dtype=float)) & (t["ladders"].to_numpy() > 1)
    ax.errorbar(x[has], clipped[has], yerr=[np.maximum(clipped[has] - lo[has], 0), np.maximum(hi[has] - clipped[has], 0)],
                fmt="none", ecolor="black", capsize=4, lw=1, label="range over condor ladder phases")
    ax.axhspan(res.claim.met, res.claim.exceeded, color="#1f77b4", alpha=0.15,
               label=f"claimed {res.claim.met:.0f}-{res.claim.exceeded:.0f}% reduction")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{ep} ({_num(v, 0)}%)" for ep, v in zip(t["episode"], vals)], rotation=35, ha="right",
                       fontsize=8)
    ax.set_ylabel("drawdown reduction vs unhedged (%)\n(bars clipped at +/-200%)")
    ax.set_xlabel("episode")
    ax.set_title(f"Did '{d}' cut episode drawdowns by the claimed 35-40%?")
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3, axis="y")
    return save(fig, path, dpi=110)


def write_plots(res, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    if not res.curves:
        return paths
    paths.append(plot_reductions(res, out / "reductions.png"))
    paths.append(plot_full(res, out / "equity_full.png"))
    if res.activity is not None and len(res.activity):
        paths.append(plot_activations(res, out / "activations.png"))
    shown = [n for n in ("unhedged", res.meta.get("default_scenario", "alvh"), "alvh_vega", "alvh_equity",
                         "alvh_contracts", "static", "vxth", "spx_puts") if n in res.curves]
    for ep in res.episodes:
        paths.append(plot_episode(res, ep, out / f"episode_{ep.slug}.png", list(dict.fromkeys(shown))))
    return paths


# ---------------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------------


def _html_table(header: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in header)
    body = []
    for i, r in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>")
    return f"<table><thead><tr>{h}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/><figcaption>{html.escape(alt)}</figcaption></figure>'


CLAIM_TEXT = ("The claim: a hedge budget split 4/4/2 - about 40% near-term VIX futures or ETNs, 40% intermediate-term "
              "VIX futures, 20% longer-dated VIX calls or call calendars - with layers switching on as VIX crosses "
              "18, 22 and 28, cuts the condor book's maximum drawdown in volatility spikes by 35-40% (2022: ~18% "
              "hedged vs 28-32% unhedged; March 2023: 35-40% less).")


def write_html(res, out: Path, plots: list[Path]) -> Path:
    d = res.meta.get("default_scenario", "alvh")
    css = ("body{font-family:system-ui,sans-serif;max-width:1250px;margin:2em auto;color:#222}"
           "table{border-collapse:collapse;font-size:13px;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 7px;"
           "text-align:right}th{background:#f0f0f0}td:first-child{text-align:left}"
           "tr.exceeded td:last-child{background:#c7e9c0}tr.met td:last-child{background:#e5f5e0}"
           "tr.fell_short td:last-child{background:#fee8c8}tr.made_it_worse td:last-child{background:#fcbba1}"
           "figure{margin:1.5em 0}img{max-width:100%;border:1px solid #ddd}figcaption{font-size:12px;color:#666}"
           "li{margin:.2em 0}code{background:#f5f5f5;padding:0 3px}")
    head = f"<!doctype html><html><head><meta charset='utf-8'><title>ALVH verdict</title><style>{css}</style></head>"
    run = (f"<p>Run: {html.escape(str(res.meta.get('config')))}, {res.meta.get('start')} to {res.meta.get('end')}, "
           f"{res.meta.get('runs')} backtests, {res.meta.get('ladders')} condor ladder phase(s) "
           f"(entry weekdays {res.meta.get('ladder_weekdays')}), {res.meta.get('wall_seconds')} s.</p>")
    parts = [head, "<body>", "<h1>ALVH layered VIX hedge: the spike-by-spike verdict</h1>",
             f"<p>{html.escape(CLAIM_TEXT)}</p>", run,
             "<h2>Verdict, episode by episode</h2><ul>"]
    for _, r in res.verdict.iterrows():
        parts.append(f"<li>{html.escape(r['line'])}</li>")
    parts.append("</ul>")
    parts.append(f"<h2>Episodes: '{html.escape(d)}' vs unhedged</h2>")
    rows = episode_rows(res, d)
    parts.append(_html_table(EPISODE_HEADER, rows, [r[-1].replace(" ", "_") for r in rows]))
    parts.append("<h2>Drawdown reduction vs unhedged, every scenario (%)</h2>")
    m = reduction_matrix(res)
    parts.append(_html_table(["episode", *m.columns], [[ep] + [_num(v, 0) for v in r] for ep, r in zip(m.index, m.to_numpy())]))
    parts.append("<details><summary>Every episode and scenario: drawdown, reduction, hedge and condor P&amp;L</summary>")
    for s in res.scenarios:
        if s.name == "unhedged":
            continue
        rows = episode_rows(res, s.name)
        parts.append(f"<h4>{html.escape(s.name)}: {html.escape(s.label)}</h4>")
        parts.append(_html_table(EPISODE_HEADER, rows, [r[-1].replace(" ", "_") for r in rows]))
    parts.append("</details>")
    parts.append("<h3>Scenarios</h3><ul>")
    for s in res.scenarios:
        parts.append(f"<li><code>{html.escape(s.name)}</code>: {html.escape(s.label)}</li>")
    parts.append("</ul><h2>Full period</h2>")
    parts.append(_html_table(FULL_HEADER, full_rows(res)))
    parts.append("<p>hedge net/yr: mean daily hedge P&amp;L / prior equity x 252. calm carry/yr: the same on days "
                 "outside every episode window, sign flipped (positive = cost).</p>")
    parts.append("<h2>Plots</h2>")
    for p in plots:
        parts.append(_img(p, p.stem.replace("_", " ")))
    parts.append("<h2>Episode windows</h2>")
    parts.append(_html_table(["episode", "source", "start", "end", "note"],
                             [[e.name, e.source, str(e.start.date()), str(e.end.date()), e.note] for e in res.episodes]))
    parts.append("</body></html>")
    path = out / "verdict.html"
    path.write_text("\n".join(parts))
    return path


def write_report(res, out: Path) -> dict[str, list[Path]]:
    out = Path(out)
    tables = write_tables(res, out)
    plots = write_plots(res, out / "plots")
    page = write_html(res, out, plots)
    (out / "verdict.txt").write_text(console_report(res) + "\n")
    return {"tables": tables, "plots": plots, "html": [page], "text": [out / "verdict.txt"]}
