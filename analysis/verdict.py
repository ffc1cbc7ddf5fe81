"""The ALVH verdict: run the hedge and its baselines over the full history, cut the results into
volatility episodes, and say episode by episode whether the claimed 35-40% drawdown reduction held.

- ``run_verdict``: the scenarios of analysis.scenarios on every condor ladder phase, each run by analysis.runs
  through analysis.tasks (this process, a local pool or Dask), over the episodes of analysis.episodes;
- ``analyze``: run results -> the episode, full-period and verdict tables, with the ladder range of each reduction.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from adapters.data.requirements import check_coverage, check_files
from analysis.episodes import (
    HELD_EVERY,
    HELD_NONE,
    HELD_SOME,
    NOT_SCORED,
    WORSE_EVERY,
    ClaimBands,
    Episode,
    classify,
    classify_phases,
    episodes_in,
    load_episodes,
    reduction_pct,
)
from analysis.runs import make_task, run_task
from analysis.scenarios import Scenario, ladder_variants, standard_scenarios
from analysis.tasks import run_tasks, worker_panel
from config.wiring import series_needs
from engine.metrics import longest_run
from strategies.hedges import parse_hedge
from strategies.needs import SeriesNeed, merge_needs


@dataclass
class VerdictResult:
    scenarios: list[Scenario]
    episodes: list[Episode]
    episode_table: pd.DataFrame       # one row per (episode, scenario), main ladder, with the ladder range
    full_table: pd.DataFrame          # one row per scenario, full period
    verdict: pd.DataFrame             # one row per episode for the default scenario
    ladder_table: pd.DataFrame        # every (episode, scenario, ladder) reduction
    curves: dict[str, pd.DataFrame]   # scenario -> equity frame (main ladder)
    activity: pd.DataFrame | None
    thresholds: list[tuple]
    rounding: pd.DataFrame | None
    claim: ClaimBands
    meta: dict = field(default_factory=dict)
    tally: pd.DataFrame | None = None  # one row per hedged scenario: the claim held on every / some / no phase, cost


WIPEOUT = 0.5          # a book that lost more than this fraction of its equity is flagged, never scored
STOPPED_SESSIONS = 63  # ... and one whose books did not change for this many sessions (about 3 months)


def scenario_flags(results: list[dict]) -> str:
    """Why a scenario's reductions are not a hedge result, from its runs on every ladder phase: it lost more than
    half its equity on some phase, or its books stopped trading (condor and hedge P&L flat for STOPPED_SESSIONS
    sessions; judged on the main phase, the one whose series are kept). "" when neither."""
    reasons = []
    lost = [r["metrics"] for r in results if r["metrics"]["max_drawdown"] > WIPEOUT]
    if lost:
        worst = max(lost, key=lambda m: m["max_drawdown"])
        reasons.append(f"lost more than half its equity on {len(lost)} of {len(results)} ladder phase(s) (worst "
                       f"{100 * worst['max_drawdown']:.1f}%, {worst['dd_peak']} .. {worst['dd_trough']})")
    main = next((r for r in results if r["meta"].get("ladder") == 0), None)
    if main is not None:
        reasons.append(stopped_trading(main.get("equity")))
    return "; ".join(r for r in reasons if r)


def stopped_trading(eq: pd.DataFrame | None) -> str:
    """The longest stretch of STOPPED_SESSIONS or more sessions in which neither book's P&L moved, or ""."""
    cols = [c for c in ("pnl_condor", "pnl_hedge") if eq is not None and c in eq]
    if not cols:
        return ""
    still = (eq[cols].diff().abs().sum(axis=1) <= 0.005).to_numpy()[1:]   # day-on-day: neither book moved
    n, first = longest_run(still)
    if n < STOPPED_SESSIONS:
        return ""
    idx = eq.index[1:]
    until = "the end" if first + n == len(idx) else f"{idx[first + n - 1]:%Y-%m-%d}"
    return f"stopped trading: no condor or hedge P&L from {idx[first]:%Y-%m-%d} to {until} ({n} sessions)"


def analyze(results: list[dict], scenarios: list[Scenario], episodes: list[Episode], claim: ClaimBands,
            default: str = "alvh") -> VerdictResult:
    by = {(r["meta"]["scenario"], r["meta"]["ladder"]): r for r in results}
    ladders = sorted({r["meta"]["ladder"] for r in results})
    flags = {sc.name: scenario_flags([by[(sc.name, lad)] for lad in ladders if (sc.name, lad) in by])
             for sc in scenarios}
    rows, lrows = [], []
    for ep in episodes:
        for sc in scenarios:
            for lad in ladders:
                r, u = by.get((sc.name, lad)), by.get(("unhedged", lad))
                if r is None or u is None:
                    continue
                e, eu = r["metrics"]["episodes"][ep.name], u["metrics"]["episodes"][ep.name]
                lrows.append({"episode": ep.name, "scenario": sc.name, "ladder": lad, "dd": e["dd"],
                              "dd_unhedged": eu["dd"], "reduction_pct": reduction_pct(eu["dd"], e["dd"]),
                              # a book with no P&L at all in the window was not trading: no reduction to score
                              "traded": bool(e["condor_pnl"] or e["hedge_pnl"])})
    ladder_table = pd.DataFrame(lrows)
    for ep in episodes:
        for sc in scenarios:
            r, u = by.get((sc.name, 0)), by.get(("unhedged", 0))
            if r is None or u is None:
                continue
            e, eu = r["metrics"]["episodes"][ep.name], u["metrics"]["episodes"][ep.name]
            red = reduction_pct(eu["dd"], e["dd"])
            lt = ladder_table[(ladder_table.episode == ep.name) & (ladder_table.scenario == sc.name)]
            lt = lt[lt["traded"] & np.isfinite(lt["reduction_pct"])]["reduction_pct"]
            hedged = sc.name != "unhedged"
            flag = flags[sc.name] if hedged else ""
            if hedged and not flag and not (e["condor_pnl"] or e["hedge_pnl"]):
                flag = "not trading in this window (no condor or hedge P&L)"
            cls = ""
            if hedged:
                cls = NOT_SCORED if flag else classify_phases(list(lt), claim)
            rows.append({
                "episode": ep.name, "source": ep.source, "start": ep.start.date(), "end": ep.end.date(),
                "scenario": sc.name, "dd_pct": 100 * e["dd"], "dd_unhedged_pct": 100 * eu["dd"],
                "reduction_pct": red if hedged else math.nan,
                "range_low": float(lt.min()) if hedged and len(lt) else math.nan,
                "range_high": float(lt.max()) if hedged and len(lt) else math.nan,
                "ladders": len(lt) if hedged else 0,
                "phases_held": int((lt >= claim.met).sum()) if hedged else 0,
                "hedge_pnl": e["hedge_pnl"], "condor_pnl": e["condor_pnl"],
                "hedge_pnl_pct": 100 * e["hedge_pnl"] / e["start_equity"] if e["start_equity"] else math.nan,
                "condor_pnl_pct": 100 * e["condor_pnl"] / e["start_equity"] if e["start_equity"] else math.nan,
                "class": cls, "class_main": classify(red, claim) if hedged and not flag else "", "flag": flag,
            })
    episode_table = pd.DataFrame(rows)
    frows = []
    for sc in scenarios:
        r = by.get((sc.name, 0))
        if r is None:
            continue
        m = r["metrics"]
        frows.append({"scenario": sc.name, "label": sc.label, "cagr_pct": 100 * m["cagr"], "sharpe": m["sharpe"],
                      "calmar": m["calmar"], "max_dd_pct": 100 * m["max_drawdown"], "dd_peak": m["dd_peak"],
                      "dd_trough": m["dd_trough"], "final_equity": m["final_equity"],
                      "hedge_pnl": m["hedge_pnl"], "condor_pnl": m["condor_pnl"],
                      "hedge_net_pct_yr": m["hedge_net_pct_yr"], "hedge_carry_pct_yr": m["hedge_carry_pct_yr"],
                      "hedge_fills": m["hedge_fills"], "hedge_commissions": m["hedge_commissions"],
                      "rejected_orders": m["rejected_orders"], "wall_seconds": m["wall_seconds"],
                      "flag": flags[sc.name] if sc.name != "unhedged" else ""})
    full_table = pd.DataFrame(frows)
    vrows = []
    d = episode_table[episode_table.scenario == default] if len(episode_table) else episode_table
    for _, row in d.iterrows():
        vrows.append({"episode": row["episode"], "source": row["source"], "dd_unhedged_pct": row["dd_unhedged_pct"],
                      "dd_hedged_pct": row["dd_pct"], "reduction_pct": row["reduction_pct"],
                      "range_low": row["range_low"], "range_high": row["range_high"], "class": row["class"],
                      "line": verdict_line(row, claim)})
    curves = {name: r["equity"] for (name, lad), r in by.items() if lad == 0 and "equity" in r}
    main = by.get((default, 0), {})
    res = VerdictResult(scenarios, episodes, episode_table, full_table, pd.DataFrame(vrows), ladder_table, curves,
                        main.get("activity"), main.get("thresholds", []), main.get("rounding"), claim)
    res.tally = tally(episode_table, full_table, scenarios)
    return res


def tally(episode_table: pd.DataFrame, full_table: pd.DataFrame, scenarios: list[Scenario]) -> pd.DataFrame:
    """The answer per reading: over the named episodes, how often the claim held on every ladder phase, on some,
    on none (and of those, worse on every phase), how many were not scored; with the hedge's cost per year."""
    named = episode_table[(episode_table.source == "named") & (episode_table.scenario != "unhedged")]
    full = full_table.set_index("scenario") if len(full_table) else full_table
    base = full.loc["unhedged"] if "unhedged" in full.index else None
    rows = []
    for sc in scenarios:
        if sc.name == "unhedged" or sc.name not in full.index:
            continue
        t = named[named.scenario == sc.name]
        c = t["class"].value_counts()
        f = full.loc[sc.name]
        rows.append({"scenario": sc.name, "label": sc.label, "family": sc.family, "episodes": len(t),
                     "held_every": int(c.get(HELD_EVERY, 0)), "held_some": int(c.get(HELD_SOME, 0)),
                     "held_none": int(c.get(HELD_NONE, 0) + c.get(WORSE_EVERY, 0)),
                     "worse_every": int(c.get(WORSE_EVERY, 0)), "not_scored": int(c.get(NOT_SCORED, 0)),
                     "cost_pct_yr": -float(f["hedge_net_pct_yr"]), "calm_carry_pct_yr": float(f["hedge_carry_pct_yr"]),
                     "cagr_pct": float(f["cagr_pct"]),
                     "cagr_unhedged_pct": float(base["cagr_pct"]) if base is not None else math.nan,
                     "max_dd_pct": float(f["max_dd_pct"]),
                     "max_dd_unhedged_pct": float(base["max_dd_pct"]) if base is not None else math.nan,
                     "flag": f["flag"]})
    return pd.DataFrame(rows)


def verdict_line(row, claim: ClaimBands) -> str:
    red = row["reduction_pct"]
    if row.get("flag"):
        return f"{row['episode']}: not scored - {row['flag']}"
    if not math.isfinite(red):
        return f"{row['episode']}: no unhedged drawdown to reduce - n/a"
    n = int(row.get("ladders", 1) or 0)
    rng = ""
    if n > 1 and math.isfinite(row.get("range_low", math.nan)):
        rng = (f", {row['range_low']:.0f}% to {row['range_high']:.0f}% over {n} ladder phases "
               f"(claim held on {row.get('phases_held', 0)} of {n})")
    return (f"{row['episode']}: max drawdown {row['dd_unhedged_pct']:.2f}% unhedged vs {row['dd_pct']:.2f}% hedged, "
            f"{_size(red)}{rng} -> claimed {claim.met:.0f}-{claim.exceeded:.0f}% reduction {row['class'].upper()}")


def _size(red: float) -> str:
    return f"{red:.1f}% smaller" if red >= 0 else f"{-red:.1f}% larger"


def scenario_needs(cfg, scenarios: list[Scenario]) -> list[SeriesNeed]:
    """The series the condor book and every scenario's hedge read."""
    hedges = [parse_hedge(s.hedge) for s in scenarios if s.hedge is not None]
    return merge_needs(series_needs(cfg), *(h.needs() for h in hedges if h is not None))


def run_verdict(cfg, data_dir: str, *, episode_file: str | Path | None = None, start=None, end=None,
                ladders: int | None = None, workers: int = 1, scheduler: str | None = None,
                progress: bool = True, scenarios: list[str] | None = None) -> VerdictResult:
    spec, named = load_episodes(episode_file)
    settings = spec.verdict
    scs = standard_scenarios(cfg.hedge, settings)
    if scenarios:
        unknown = sorted(set(scenarios) - {s.name for s in scs})
        if unknown:
            raise ValueError(f"unknown scenario(s) {unknown}; known: {[s.name for s in scs]}")
        scs = [s for s in scs if s.name in scenarios or s.name == "unhedged"]
    needs = scenario_needs(cfg, scs)
    check_files(data_dir, needs, cfg.source)
    panel = worker_panel(str(data_dir))   # every file and flag is checked above, before the data is read
    s0 = pd.Timestamp(start or cfg.run.start)
    e0 = pd.Timestamp(end or cfg.run.end)
    check_coverage(panel, needs, s0, e0, cfg.source)
    episodes = episodes_in(spec, named, panel.daily, s0, e0)
    n_lad = settings.ladders if ladders is None else ladders
    cfg_dict = cfg.model_dump(mode="json")
    variants = ladder_variants(cfg_dict.get("condor"), n_lad)
    tasks = []
    for lad, over in enumerate(variants):
        for sc in scs:
            tasks.append(make_task(cfg_dict, sc.hedge, task_id=f"{sc.name}#{lad}", condor_overrides=over,
                                   start=s0.date(), end=e0.date(), episodes=episodes, keep_series=(lad == 0),
                                   meta={"scenario": sc.name, "ladder": lad}))
    t0 = time.perf_counter()
    results = run_tasks(run_task, tasks, data_dir=str(data_dir), workers=workers, scheduler=scheduler,
                        progress=progress, desc="verdict runs")
    wall = time.perf_counter() - t0
    default = settings.default_scenario if any(s.name == settings.default_scenario for s in scs) else "alvh"
    res = analyze(results, scs, episodes, spec.claim, default)
    res.meta = {"config": cfg.source, "start": str(s0.date()), "end": str(e0.date()), "runs": len(tasks),
                "ladders": len(variants), "wall_seconds": round(wall, 1), "workers": workers,
                "scheduler": scheduler or "", "default_scenario": default,
                "ladder_weekdays": [v.get("entry_weekday", (cfg_dict.get("condor") or {}).get("entry_weekday", 0))
                                    for v in variants],
                "detect": spec.detect.model_dump(), "claim": spec.claim.model_dump()}
    return res
