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

from analysis.episodes import ClaimBands, Episode, classify, episodes_in, load_episodes, reduction_pct
from analysis.runs import make_task, run_task
from analysis.scenarios import Scenario, ladder_variants, standard_scenarios
from analysis.tasks import run_tasks, worker_panel


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


def analyze(results: list[dict], scenarios: list[Scenario], episodes: list[Episode], claim: ClaimBands,
            default: str = "alvh") -> VerdictResult:
    by = {(r["meta"]["scenario"], r["meta"]["ladder"]): r for r in results}
    ladders = sorted({r["meta"]["ladder"] for r in results})
    rows, lrows = [], []
    for ep in episodes:
        for sc in scenarios:
            for lad in ladders:
                r, u = by.get((sc.name, lad)), by.get(("unhedged", lad))
                if r is None or u is None:
                    continue
                e, eu = r["metrics"]["episodes"][ep.name], u["metrics"]["episodes"][ep.name]
                lrows.append({"episode": ep.name, "scenario": sc.name, "ladder": lad, "dd": e["dd"],
                              "dd_unhedged": eu["dd"], "reduction_pct": reduction_pct(eu["dd"], e["dd"])})
    ladder_table = pd.DataFrame(lrows)
    for ep in episodes:
        for sc in scenarios:
            r, u = by.get((sc.name, 0)), by.get(("unhedged", 0))
            if r is None or u is None:
                continue
            e, eu = r["metrics"]["episodes"][ep.name], u["metrics"]["episodes"][ep.name]
            red = reduction_pct(eu["dd"], e["dd"])
            lt = ladder_table[(ladder_table.episode == ep.name) & (ladder_table.scenario == sc.name)]["reduction_pct"]
            lt = lt[np.isfinite(lt)]
            rows.append({
                "episode": ep.name, "source": ep.source, "start": ep.start.date(), "end": ep.end.date(),
                "scenario": sc.name, "dd_pct": 100 * e["dd"], "dd_unhedged_pct": 100 * eu["dd"],
                "reduction_pct": red if sc.name != "unhedged" else math.nan,
                "range_low": float(lt.min()) if sc.name != "unhedged" and len(lt) else math.nan,
                "range_high": float(lt.max()) if sc.name != "unhedged" and len(lt) else math.nan,
                "ladders": len(lt) if sc.name != "unhedged" else 0,
                "hedge_pnl": e["hedge_pnl"], "condor_pnl": e["condor_pnl"],
                "hedge_pnl_pct": 100 * e["hedge_pnl"] / e["start_equity"] if e["start_equity"] else math.nan,
                "condor_pnl_pct": 100 * e["condor_pnl"] / e["start_equity"] if e["start_equity"] else math.nan,
                "class": classify(red, claim) if sc.name != "unhedged" else "",
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
                      "rejected_orders": m["rejected_orders"], "wall_seconds": m["wall_seconds"]})
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
    return VerdictResult(scenarios, episodes, episode_table, full_table, pd.DataFrame(vrows), ladder_table, curves,
                         main.get("activity"), main.get("thresholds", []), main.get("rounding"), claim)


def verdict_line(row, claim: ClaimBands) -> str:
    red = row["reduction_pct"]
    if not math.isfinite(red):
        return f"{row['episode']}: no unhedged drawdown to reduce - n/a"
    rng = ""
    if math.isfinite(row.get("range_low", math.nan)) and row.get("ladders", 2) > 1:
        rng = f" (ladder range {row['range_low']:.0f}% to {row['range_high']:.0f}%)"
    verb = {"exceeded": "EXCEEDED", "met": "MET", "fell short": "FELL SHORT of",
            "made it worse": "MADE IT WORSE than unhedged, against"}[row["class"]]
    return (f"{row['episode']}: max drawdown {row['dd_unhedged_pct']:.2f}% unhedged vs {row['dd_pct']:.2f}% hedged, "
            f"{_size(red)}{rng} -> {verb} the claimed {claim.met:.0f}-{claim.exceeded:.0f}% reduction")


def _size(red: float) -> str:
    return f"{red:.1f}% smaller" if red >= 0 else f"{-red:.1f}% larger"


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
    panel = worker_panel(str(data_dir))   # every file and flag is checked above, before the data is read
    s0 = pd.Timestamp(start or cfg.run.start)
    e0 = pd.Timestamp(end or cfg.run.end)
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
