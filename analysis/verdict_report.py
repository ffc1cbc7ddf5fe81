"""Verdict output: console tables, CSV/JSON, PNG plots and one self-contained HTML page.

Every output opens with the answer: the tally per reading of "4/4/2" (the claim held on every variant - pricing
surface x condor-ladder phase x window end - / on some / on none, over the named spikes), the hedge's full cost
(the final-equity difference, decomposed), and one headline chart with a legend (plots/reductions.png); the details
follow: the reduction per surface, per window end of the episodes read over a window family, and every scenario. Plots are drawn with matplotlib's Agg backend; the HTML embeds
every PNG as base64 (as 256-colour palette images, which keeps the page under 2 MB) so it can be mailed or
archived as one file.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import textwrap
from pathlib import Path

import pandas as pd

from analysis.episodes import HELD_EVERY, HELD_NONE, HELD_SOME, NOT_SCORED, WORSE_EVERY
from analysis.tables import html_page, html_table, text_table
from analysis.tables import money as _money
from analysis.tables import num as _num
from analysis.tables import pct as _pct
from analysis.verdict import COST_TERMS
from analysis.verdict_plots import default_scenario as _default
from analysis.verdict_plots import phases_text as _phases
from analysis.verdict_plots import write_plots

# ---------------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------------


def episode_rows(res, scenario: str) -> list[list[str]]:
    t = res.episode_table
    d = t[t.scenario == scenario]
    rows = []
    for _, r in d.iterrows():
        rng = (f"{r.range_low:.0f}..{r.range_high:.0f}%" if math.isfinite(r.range_low) and r.variants > 1 else "")
        held = f"{r.variants_held} of {r.variants}" if r.variants else ""
        window = f"{r.start}..{r.end}" + (f" +{r.windows - 1} ends" if r.windows > 1 else "")
        rows.append([r.episode, window, _pct(r.dd_unhedged_pct, 2), _pct(r.dd_pct, 2),
                     _pct(r.reduction_pct, 1), rng, held, _money(r.hedge_pnl), _money(r.condor_pnl),
                     r["class"] + (f" ({r.flag})" if r.get("flag") else "")])
    return rows


EPISODE_HEADER = ["episode", "window", "DD unhedged", "DD hedged", "reduction", "range (all variants)", "held on",
                  "hedge P&L", "condor P&L", "35-40% claim"]


def surface_rows(res, scenario: str) -> tuple[list[str], list[list[str]]]:
    """Episodes x surfaces for one scenario: the main-ladder reduction at the rule's window end and, below it, the
    range over ladders (and window ends) on that surface."""
    t = res.surface_table
    if t is None or not len(t):
        return [], []
    d = t[t.scenario == scenario]
    names = [m.name for m in res.surfaces]
    rows = []
    for ep in dict.fromkeys(d.episode):
        g = d[d.episode == ep].set_index("surface")
        cells = []
        for n in names:
            if n not in g.index:
                cells.append("")
                continue
            r = g.loc[n]
            cells.append(f"{_num(r.reduction_pct, 0)} ({_num(r.range_low, 0)}..{_num(r.range_high, 0)})")
        rows.append([ep, *cells])
    return ["episode", *names], rows


def window_rows(res, scenario: str) -> list[list[str]]:
    t = res.window_table
    if t is None or not len(t):
        return []
    d = t[t.scenario == scenario]
    return [[r.episode, r.window, str(r.end), _pct(r.reduction_pct, 1),
             f"{_num(r.range_low, 0)}..{_num(r.range_high, 0)}%", str(r.variants)] for _, r in d.iterrows()]


WINDOW_HEADER = ["episode", "window end", "date", "reduction (main run)", "range (surfaces x ladders)", "runs"]


def cost_rows(res) -> list[list[str]]:
    """Per hedged scenario: the final-equity difference and its terms, $ and %/yr of the initial equity."""
    rows = []
    if res.cost is None or not len(res.cost):
        return rows
    for _, r in res.cost.iterrows():
        rows.append([r.scenario, f"{_money(r.final_equity_diff)} ({_num(r.final_equity_diff_pct_yr)})",
                     *[f"{r[k]:+,.2f}" if k == "residual" else f"{_money(r[k])} ({_num(r[f'{k}_pct_yr'])})"
                       for k, _ in COST_TERMS], _num(r.cagr_diff_pct)])
    return rows


def cost_header() -> list[str]:
    return ["scenario", "final equity - unhedged", *[label for _, label in COST_TERMS], "CAGR diff, pts"]


def cost_caption(res) -> str:
    years = float(res.cost["years"].iloc[0]) if res.cost is not None and len(res.cost) else math.nan
    return (f"$ over the {_num(years, 1)} years of the main run (default surface, ladder 0), and in brackets % of the "
            "initial equity a year; the terms add up to the final-equity difference (the residual is what the "
            "ledger leaves unexplained). Interest given up: the account earns T-bill interest on its cash, and cash "
            "spent on hedge premium and margin earns none. Condor path effect: the condor book sizes on equity, so "
            "a hedged account trades a different condor book")


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

# ---------------------------------------------------------------------------------------------------
# the answer: tally per reading, cost per year
# ---------------------------------------------------------------------------------------------------


def answer(res) -> str:
    """One sentence: the default reading's tally over the named spikes and what it cost."""
    t = res.tally
    if t is None or not len(t) or _default(res) not in set(t.scenario):
        return "no hedged scenario was run"
    r = t[t.scenario == _default(res)].iloc[0]
    claim = f"{res.claim.met:.0f}-{res.claim.exceeded:.0f}%"
    if r.flag:
        return f"the default hedge is not scored: {r.flag}"
    worse = f", deeper drawdowns on every variant in {r.worse_every}" if r.worse_every else ""
    unscored = f"; {r.not_scored} not scored" if r.not_scored else ""
    return (f"the claimed {claim} cut of the condor book's drawdown held on every variant ({_phases(res)}) in "
            f"{r.held_every} of {r.episodes} named spikes, on some variants in {r.held_some}, on none in "
            f"{r.held_none}{worse}{unscored}; {cost_sentence(res, r.scenario)} (CAGR {r.cagr_unhedged_pct:.2f}% "
            f"unhedged -> {r.cagr_pct:.2f}%, max drawdown {r.max_dd_unhedged_pct:.1f}% -> {r.max_dd_pct:.1f}%)")


def cost_sentence(res, scenario: str) -> str:
    """'the hedge cost $317,499 of final equity (0.79% of initial equity a year): hedge P&L ... '"""
    c = res.cost.set_index("scenario") if res.cost is not None and len(res.cost) else None
    if c is None or scenario not in c.index:
        return "no cost measured"
    r = c.loc[scenario]
    parts = [f"hedge P&L {_signed(r.hedge_trading + r.hedge_fees)}", f"interest given up {_signed(r.interest)}",
             f"condor path {_signed(r.condor_path)}"]
    if abs(r.residual) >= 1.0:
        parts.append(f"unexplained {_signed(r.residual)}")
    verb = "cost" if r.final_equity_diff <= 0 else "added"
    return (f"the hedge {verb} ${_money(abs(r.final_equity_diff))} of final equity "
            f"({abs(r.final_equity_diff_pct_yr):.2f}% of initial equity a year) = {' + '.join(parts)}")


def _signed(x: float) -> str:
    return f"{'-' if x < 0 else '+'}${abs(x):,.0f}"


TALLY_HEADER = ["reading", "what it is", "held on every variant", "some", "none", "(worse on all)", "not scored",
                "full cost/yr %", "hedge net/yr %", "calm carry/yr %", "CAGR", "max DD"]


def tally_rows(res) -> list[list[str]]:
    rows = []
    for _, r in res.tally.iterrows():
        name = f"{r.scenario} [default]" if r.scenario == _default(res) else r.scenario
        costs = [_num(r.cost_pct_yr), _num(-r.hedge_net_pct_yr), _num(r.calm_carry_pct_yr), _pct(r.cagr_pct, 2),
                 _pct(r.max_dd_pct, 1)]
        if r.flag:
            rows.append([name, r.label, "-", "-", "-", "-", str(r.episodes), *costs])
            continue
        rows.append([name, r.label, str(r.held_every), str(r.held_some), str(r.held_none), f"({r.worse_every})",
                     str(r.not_scored), *costs])
    return rows


def _flags(res) -> list[str]:
    return [f"{r.scenario}: {r.flag}" for _, r in res.tally.iterrows() if r.flag] if res.tally is not None else []


def _tally_caption(res) -> str:
    n = int(res.tally["episodes"].max()) if res.tally is not None and len(res.tally) else 0
    return (f"Claim held ({res.claim.met:.0f}% or more smaller drawdown) in the {n} named spikes, per reading of "
            f"\"4/4/2\" and baseline, on each of {_phases(res)}; full cost/yr = final equity unhedged minus "
            "hedged, % of initial equity a year (hedge P&L, interest given up and the condor path effect); hedge "
            "net/yr = mean daily hedge P&L / equity x 252, sign flipped (spike gains included); calm carry = the "
            "same outside every episode window")


def console_report(res) -> str:
    head = (f"ALVH verdict  {res.meta.get('start')} .. {res.meta.get('end')}  ({res.meta.get('config')}; "
            f"{res.meta.get('runs')} runs, {len(res.meta.get('surfaces', [])) or 1} surface(s) x "
            f"{res.meta.get('ladders')} condor ladder phase(s), "
            f"{res.meta.get('wall_seconds')} s)")
    out = [head, "", textwrap.fill(f"Answer: {answer(res)}.", 110), ""]
    if res.tally is not None and len(res.tally):
        out.append(textwrap.fill(_tally_caption(res) + ":", 110))
        out.append(text_table(tally_rows(res), TALLY_HEADER, left=2))
        out += [textwrap.fill(f"not scored - {f}", 110, initial_indent="  ", subsequent_indent="    ")
                for f in _flags(res)]
        out.append("Headline chart: plots/reductions.png")
        out.append("")
    d = _default(res)
    out.append("Verdict, episode by episode (default configuration):")
    out += [f"  {line}" for line in res.verdict["line"]]
    out.append("")
    out.append(f"Episodes - default configuration '{d}' vs the unhedged condor book:")
    out.append(text_table(episode_rows(res, d), EPISODE_HEADER))
    out.append("")
    out.append("The hedge's full cost: final equity hedged minus unhedged, decomposed ($, and %/yr of initial equity):")
    out.append(text_table(cost_rows(res), cost_header()))
    out.append("")
    head, rows = surface_rows(res, d)
    if len(head) > 2:
        out.append(f"Reduction per surface, '{d}' (%: main ladder at the rule's window end, and the range over "
                   "ladders and window ends on that surface):")
        out.append(text_table(rows, head))
        out.append("")
    wrows = window_rows(res, d)
    if wrows:
        out.append(f"Episodes read over a window family, '{d}', per window end:")
        out.append(text_table(wrows, WINDOW_HEADER, left=3))
        out.append("")
    out.append("Reduction of the episode drawdown vs unhedged, every scenario (%; main run):")
    m = reduction_matrix(res)
    rows = [[ep] + [_num(v, 0) for v in r] for ep, r in zip(m.index, m.to_numpy())]
    out.append(text_table(rows, ["episode", *m.columns]))
    out.append("")
    out.append("Full period:")
    out.append(text_table(full_rows(res), FULL_HEADER))
    return "\n".join(out)


def write_tables(res, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    frames = [("episodes", res.episode_table), ("full_period", res.full_table), ("verdict", res.verdict),
              ("variants", res.variant_table), ("reductions", reduction_matrix(res).reset_index())]
    frames += [(name, df) for name, df in (("surfaces", res.surface_table), ("windows", res.window_table),
                                           ("cost", res.cost)) if df is not None]
    if res.tally is not None:
        frames.insert(0, ("tally", res.tally))
    for name, df in frames:
        p = out / f"{name}.csv"
        df.to_csv(p, index=False, float_format="%.10g")
        paths.append(p)
    if res.rounding is not None and len(res.rounding):
        p = out / "blend_rounding.csv"
        res.rounding.to_csv(p, index=False, float_format="%.10g")
        paths.append(p)
    doc = {   # the answer first: a reader of the JSON sees it before the detail
        "answer": answer(res),
        "tally": _records(res.tally) if res.tally is not None else [],
        "headline_chart": "plots/reductions.png",
        "classes": {HELD_EVERY: f"reduction >= {res.claim.met:g}% on every variant (surface x condor-ladder phase "
                                "x window end)",
                    HELD_SOME: f"reduction >= {res.claim.met:g}% on some variants, below on others",
                    HELD_NONE: f"reduction below {res.claim.met:g}% on every variant",
                    WORSE_EVERY: "hedged drawdown deeper than unhedged on every variant (counted in held_none)",
                    NOT_SCORED: "the book stopped trading or lost more than half its equity: no hedge result"},
        "cost": _records(res.cost) if res.cost is not None else [],
        "meta": res.meta,
        "surfaces": [{"name": m.name, "note": m.note, "pricing": m.pricing} for m in res.surfaces],
        "scenarios": [{"name": s.name, "label": s.label, "family": s.family, "hedge": s.hedge} for s in res.scenarios],
        "episodes": [{"name": e.name, "start": str(e.start.date()), "end": str(e.end.date()), "source": e.source,
                      "note": e.note, "trough": str(e.trough.date()) if e.trough is not None else None,
                      "windows": [{"window": lab, "end": str(end.date())} for lab, _, end in e.window_keys()]}
                     for e in res.episodes],
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
# HTML
# ---------------------------------------------------------------------------------------------------


def _img(path: Path, alt: str, colors: int = 256) -> str:
    """The PNG embedded as base64 as a `colors`-colour palette image (line plots lose nothing visible, the legend
    swatches keep their colours; the page shrinks about 3x). The file on disk keeps full colour. No `optimize` pass:
    it made the page 8 % smaller for a second more per report."""
    from PIL import Image

    buf = io.BytesIO()
    with Image.open(path) as im:
        im.convert("RGB").quantize(colors=colors, method=Image.Quantize.FASTOCTREE).save(buf, "PNG")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/>'
            f'<figcaption>{html.escape(alt)}</figcaption></figure>')


CLAIM_TEXT = ("The claim: a hedge budget split 4/4/2 - about 40% near-term VIX futures or ETNs, 40% intermediate-term "
              "VIX futures, 20% longer-dated VIX calls or call calendars - with layers switching on as VIX crosses "
              "18, 22 and 28, cuts the condor book's maximum drawdown in volatility spikes by 35-40% (2022: ~18% "
              "hedged vs 28-32% unhedged; March 2023: 35-40% less).")

HTML_CSS = ("tr.held_on_every_variant td:last-child{background:#c7e9c0}tr.held_on_some_variants td:last-child{background:#e5f5e0}"
            "tr.held_on_no_variant td:last-child{background:#fee8c8}tr.worse_on_every_variant td:last-child{background:#fcbba1}"
            "tr.not_scored td:last-child{background:#eeeeee}p.answer{font-size:17px;line-height:1.35;margin:.3em 0 .5em}"
            "h1{font-size:22px;margin:.2em 0}p.small{font-size:12px;color:#555;margin:.2em 0}"
            "table.tally td:nth-child(3){font-weight:bold}table.tally td:nth-child(2){text-align:left}")


def _row_classes(rows: list[list[str]]) -> list[str]:
    return [r[-1].split(" (")[0].replace(" ", "_") for r in rows]


def write_html(res, out: Path, plots: list[Path]) -> Path:
    d = _default(res)
    by_name = {p.stem: p for p in plots}
    body = ["<h1>ALVH layered VIX hedge: the spike-by-spike verdict</h1>",
            f"<p class='answer'><b>Answer:</b> {html.escape(answer(res))}.</p>"]
    if res.tally is not None and len(res.tally):   # first screen: tally, cost, headline chart
        body.append(html_table(TALLY_HEADER, tally_rows(res)).replace("<table>", "<table class='tally'>", 1))
        body.append(f"<p class='small'>{html.escape(_tally_caption(res))}."
                    + "".join(f"<br/>not scored: {html.escape(f)}" for f in _flags(res)) + "</p>")
    if "reductions" in by_name:
        body.append(_img(by_name["reductions"], "headline: the default hedge's drawdown reduction in each named "
                                                "spike, over every variant"))
    body += [f"<p>{html.escape(CLAIM_TEXT)}</p>",
             (f"<p class='small'>Run: {html.escape(str(res.meta.get('config')))}, {res.meta.get('start')} to "
             f"{res.meta.get('end')}, {res.meta.get('runs')} backtests: {len(res.surfaces)} pricing surface(s) x "
             f"{res.meta.get('ladders')} condor ladder phase(s) (entry weekdays {res.meta.get('ladder_weekdays')}) x "
             f"{len(res.scenarios)} scenarios, {res.meta.get('wall_seconds')} s on {res.meta.get('workers')} "
             "worker(s).</p>"),
             "<h2>Verdict, episode by episode</h2><ul>"]
    body += [f"<li>{html.escape(line)}</li>" for line in res.verdict["line"]]
    body.append("</ul>")
    body.append(f"<h2>Episodes: '{html.escape(d)}' vs unhedged</h2>")
    rows = episode_rows(res, d)
    body.append(html_table(EPISODE_HEADER, rows, _row_classes(rows)))
    body.append("<h2>The hedge's full cost</h2>")
    body.append(html_table(cost_header(), cost_rows(res)))
    body.append(f"<p class='small'>{html.escape(cost_caption(res))}.</p>")
    head, srows = surface_rows(res, d)
    if head:
        body.append(f"<h2>Reduction per pricing surface: '{html.escape(d)}'</h2>")
        body.append(html_table(head, srows))
        body.append("<p class='small'>% smaller drawdown on the main ladder phase at the rule's window end, and in "
                    "brackets the range over the ladder phases (and window ends) on that surface.</p><ul>")
        body += [f"<li><code>{html.escape(m.name)}</code>: {html.escape(m.note)}"
                 + (f" <code>{html.escape(json.dumps(m.pricing))}</code>" if m.pricing else "") + "</li>"
                 for m in res.surfaces]
        body.append("</ul>")
    wrows = window_rows(res, d)
    if wrows:
        body.append(f"<h2>Episodes read over a window family: '{html.escape(d)}'</h2>")
        body.append(html_table(WINDOW_HEADER, wrows))
        body.append("<p class='small'>The rule's window (SPX back at the pre-spike peak) and the family of ends: VIX "
                    "back under 20 (the first close after the trough that starts 5 closes below 20), the trough + 3, 6, "
                    "12 months (an end past the recovery is the recovery). The episode's class is over every end.</p>")
    body.append("<h2>Drawdown reduction vs unhedged, every scenario (%, main run)</h2>")
    m = reduction_matrix(res)
    body.append(html_table(["episode", *m.columns], [[ep] + [_num(v, 0) for v in r] for ep, r in zip(m.index, m.to_numpy())]))
    body.append("<details><summary>Every episode and scenario: drawdown, reduction, hedge and condor P&amp;L</summary>")
    for sc in res.scenarios:
        if sc.name == "unhedged":
            continue
        rows = episode_rows(res, sc.name)
        body.append(f"<h4>{html.escape(sc.name)}: {html.escape(sc.label)}</h4>")
        body.append(html_table(EPISODE_HEADER, rows, _row_classes(rows)))
    body.append("</details>")
    body.append("<h3>Scenarios</h3><ul>")
    body += [f"<li><code>{html.escape(sc.name)}</code>: {html.escape(sc.label)}</li>" for sc in res.scenarios]
    body.append("</ul><h2>Full period</h2>")
    body.append(html_table(FULL_HEADER, full_rows(res)))
    body.append("<p>hedge net/yr: mean daily hedge P&amp;L / prior equity x 252. calm carry/yr: the same on days "
                "outside every episode window, sign flipped (positive = cost).</p>")
    body.append("<h2>Plots</h2>")
    body += [_img(p, p.stem.replace("_", " ")) for p in plots if p.stem != "reductions"]
    body.append("<h2>Episode windows</h2>")
    body.append(html_table(["episode", "source", "start", "end", "window family", "note"],
                           [[e.name, e.source, str(e.start.date()), str(e.end.date()),
                             ", ".join(f"{lab} {end.date()}" for lab, _, end in e.window_keys()[1:]), e.note]
                            for e in res.episodes]))
    path = out / "verdict.html"
    path.write_text(html_page("ALVH verdict", body, HTML_CSS))
    return path


def write_report(res, out: Path) -> dict[str, list[Path]]:
    out = Path(out)
    tables = write_tables(res, out)
    plots = write_plots(res, out / "plots")
    page = write_html(res, out, plots)
    (out / "verdict.txt").write_text(console_report(res) + "\n")
    return {"tables": tables, "plots": plots, "html": [page], "text": [out / "verdict.txt"]}
