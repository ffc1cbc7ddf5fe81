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
    classify_variants,
    episodes_in,
    load_episodes,
    reduction_pct,
    surfaces_path,
)
from analysis.runs import make_task, run_task
from analysis.scenarios import (
    DEFAULT_SURFACE,
    Scenario,
    SurfaceMember,
    ladder_variants,
    load_surfaces,
    standard_scenarios,
)
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
    variant_table: pd.DataFrame       # every (episode, window end, scenario, surface, ladder) reduction
    curves: dict[str, pd.DataFrame]   # scenario -> equity frame (main ladder)
    activity: pd.DataFrame | None
    thresholds: list[tuple]
    rounding: pd.DataFrame | None
    claim: ClaimBands
    meta: dict = field(default_factory=dict)
    tally: pd.DataFrame | None = None  # one row per hedged scenario: the claim held on every / some / no variant, cost
    surfaces: list[SurfaceMember] = field(default_factory=lambda: [DEFAULT_SURFACE])
    surface_table: pd.DataFrame | None = None   # (episode, scenario, surface): reduction, range over ladders, class
    window_table: pd.DataFrame | None = None    # (family episode, scenario, window end): reduction and its range
    cost: pd.DataFrame | None = None            # one row per hedged scenario: final-equity difference, decomposed


WIPEOUT = 0.5          # a book that lost more than this fraction of its equity is flagged, never scored
STOPPED_SESSIONS = 63  # ... and one whose books did not change for this many sessions (about 3 months)


def scenario_flags(results: list[dict]) -> str:
    """Why a scenario's reductions are not a hedge result, from its runs on every surface and ladder phase: it lost
    more than half its equity on some run, or its books stopped trading (condor and hedge P&L flat for
    STOPPED_SESSIONS sessions; judged on the main run, the one whose series are kept). "" when neither."""
    reasons = []
    lost = [r["metrics"] for r in results if r["metrics"]["max_drawdown"] > WIPEOUT]
    if lost:
        worst = max(lost, key=lambda m: m["max_drawdown"])
        reasons.append(f"lost more than half its equity on {len(lost)} of {len(results)} run(s) (worst "
                       f"{100 * worst['max_drawdown']:.1f}%, {worst['dd_peak']} .. {worst['dd_trough']})")
    main = next((r for r in results if r["meta"].get("ladder") == 0 and r["meta"].get("surface", 0) == 0), None)
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


def _key(r: dict) -> tuple[str, int, int]:
    m = r["meta"]
    return m["scenario"], int(m.get("surface", 0)), int(m["ladder"])


def analyze(results: list[dict], scenarios: list[Scenario], episodes: list[Episode], claim: ClaimBands,
            default: str = "alvh", surfaces: list[SurfaceMember] | None = None) -> VerdictResult:
    """Run results (meta: scenario, surface index, ladder) -> the verdict's tables. The main run of a scenario is
    surface 0 (the default) on ladder 0 (its series are kept); every reduction is also read on every other
    (surface, ladder) pair and, for an episode with a window family, at every window end: the class is over all of
    them."""
    surfaces = surfaces or [DEFAULT_SURFACE]
    by = {_key(r): r for r in results}
    pairs = sorted({(s, lad) for _, s, lad in by})
    flags = {sc.name: scenario_flags([by[(sc.name, *p)] for p in pairs if (sc.name, *p) in by]) for sc in scenarios}
    vrows = []
    for ep in episodes:
        for label, key, end in ep.window_keys():
            for sc in scenarios:
                if sc.name == "unhedged":
                    continue
                for s, lad in pairs:
                    r, u = by.get((sc.name, s, lad)), by.get(("unhedged", s, lad))
                    if r is None or u is None:
                        continue
                    e, eu = r["metrics"]["episodes"][key], u["metrics"]["episodes"][key]
                    vrows.append({"episode": ep.name, "window": label, "window_end": end.date(), "scenario": sc.name,
                                  "surface": surfaces[s].name if s < len(surfaces) else str(s), "surface_index": s,
                                  "ladder": lad, "dd": e["dd"], "dd_unhedged": eu["dd"],
                                  "reduction_pct": reduction_pct(eu["dd"], e["dd"]),
                                  # a book with no P&L at all in the window was not trading: no reduction to score
                                  "traded": bool(e["condor_pnl"] or e["hedge_pnl"])})
    variant_table = pd.DataFrame(vrows, columns=VARIANT_COLUMNS)
    scored = scored_variants(variant_table)
    groups = {k: g for k, g in scored.groupby(["episode", "scenario"], sort=False)}
    rows = []
    for ep in episodes:
        for sc in scenarios:
            r, u = by.get((sc.name, 0, 0)), by.get(("unhedged", 0, 0))
            if r is None or u is None:
                continue
            e, eu = r["metrics"]["episodes"][ep.name], u["metrics"]["episodes"][ep.name]
            red = reduction_pct(eu["dd"], e["dd"])
            hedged = sc.name != "unhedged"
            lt = groups.get((ep.name, sc.name), scored.iloc[:0])["reduction_pct"] if hedged else scored.iloc[:0]["reduction_pct"]
            flag = flags[sc.name] if hedged else ""
            if hedged and not flag and not (e["condor_pnl"] or e["hedge_pnl"]):
                flag = "not trading in this window (no condor or hedge P&L)"
            cls = ""
            if hedged:
                cls = NOT_SCORED if flag else classify_variants(list(lt), claim)
            rows.append({
                "episode": ep.name, "source": ep.source, "start": ep.start.date(), "end": ep.end.date(),
                "windows": len(ep.window_keys()), "scenario": sc.name, "dd_pct": 100 * e["dd"],
                "dd_unhedged_pct": 100 * eu["dd"], "reduction_pct": red if hedged else math.nan,
                "range_low": float(lt.min()) if hedged and len(lt) else math.nan,
                "range_high": float(lt.max()) if hedged and len(lt) else math.nan,
                "variants": len(lt) if hedged else 0,
                "variants_held": int((lt >= claim.met).sum()) if hedged else 0,
                "surfaces": len({p[0] for p in pairs}), "ladders": len({p[1] for p in pairs}),
                "hedge_pnl": e["hedge_pnl"], "condor_pnl": e["condor_pnl"],
                "hedge_pnl_pct": 100 * e["hedge_pnl"] / e["start_equity"] if e["start_equity"] else math.nan,
                "condor_pnl_pct": 100 * e["condor_pnl"] / e["start_equity"] if e["start_equity"] else math.nan,
                "class": cls, "class_main": classify(red, claim) if hedged and not flag else "", "flag": flag,
            })
    episode_table = pd.DataFrame(rows)
    full_table = _full_table(by, scenarios, flags)
    vrows = []
    d = episode_table[episode_table.scenario == default] if len(episode_table) else episode_table
    for _, row in d.iterrows():
        vrows.append({"episode": row["episode"], "source": row["source"], "dd_unhedged_pct": row["dd_unhedged_pct"],
                      "dd_hedged_pct": row["dd_pct"], "reduction_pct": row["reduction_pct"],
                      "range_low": row["range_low"], "range_high": row["range_high"], "class": row["class"],
                      "line": verdict_line(row, claim)})
    curves = {name: r["equity"] for (name, s, lad), r in by.items() if s == 0 and lad == 0 and "equity" in r}
    main = by.get((default, 0, 0), {})
    res = VerdictResult(scenarios, episodes, episode_table, full_table, pd.DataFrame(vrows), variant_table, curves,
                        main.get("activity"), main.get("thresholds", []), main.get("rounding"), claim)
    res.surfaces = surfaces
    res.surface_table = surface_table(variant_table, episodes, claim)
    res.window_table = window_table(variant_table, episodes)
    res.cost = cost_table(full_table)
    res.tally = tally(episode_table, full_table, scenarios, res.cost)
    return res


VARIANT_COLUMNS = ["episode", "window", "window_end", "scenario", "surface", "surface_index", "ladder", "dd",
                   "dd_unhedged", "reduction_pct", "traded"]


def _full_table(by: dict, scenarios: list[Scenario], flags: dict[str, str]) -> pd.DataFrame:
    frows = []
    for sc in scenarios:
        r = by.get((sc.name, 0, 0))
        if r is None:
            continue
        m = r["metrics"]
        frows.append({"scenario": sc.name, "label": sc.label, "cagr_pct": 100 * m["cagr"], "sharpe": m["sharpe"],
                      "calmar": m["calmar"], "max_dd_pct": 100 * m["max_drawdown"], "dd_peak": m["dd_peak"],
                      "dd_trough": m["dd_trough"], "final_equity": m["final_equity"],
                      "initial_equity": m.get("initial_equity", math.nan), "years": m.get("years", math.nan),
                      "hedge_pnl": m["hedge_pnl"], "condor_pnl": m["condor_pnl"], "interest": m.get("interest", 0.0),
                      "hedge_net_pct_yr": m["hedge_net_pct_yr"], "hedge_carry_pct_yr": m["hedge_carry_pct_yr"],
                      "hedge_fills": m["hedge_fills"], "hedge_commissions": m["hedge_commissions"],
                      "rejected_orders": m["rejected_orders"], "wall_seconds": m["wall_seconds"],
                      "flag": flags[sc.name] if sc.name != "unhedged" else ""})
    return pd.DataFrame(frows)


def scored_variants(variant_table: pd.DataFrame) -> pd.DataFrame:
    """The variants a reduction is scored on: the book traded in the window and there was a drawdown to reduce."""
    return variant_table[variant_table["traded"] & np.isfinite(variant_table["reduction_pct"].astype(float))]


def _range(g: pd.Series) -> tuple[float, float]:
    return (float(g.min()), float(g.max())) if len(g) else (math.nan, math.nan)


def surface_table(variant_table: pd.DataFrame, episodes: list[Episode], claim: ClaimBands) -> pd.DataFrame:
    """Per episode, scenario and surface: the reduction on the main ladder at the rule's window end, its range over
    ladders (and window ends) and the class on that surface alone."""
    t = scored_variants(variant_table)
    rows = []
    for (ep, sc, s), g in t.groupby(["episode", "scenario", "surface_index"], sort=False):
        main = g[(g.ladder == 0) & (g.window == g.window.iloc[0])]
        lo, hi = _range(g["reduction_pct"])
        rows.append({"episode": ep, "scenario": sc, "surface": g.surface.iloc[0], "surface_index": s,
                     "reduction_pct": float(main.reduction_pct.iloc[0]) if len(main) else math.nan,
                     "range_low": lo, "range_high": hi, "variants": len(g),
                     "class": classify_variants(list(g.reduction_pct), claim)})
    return pd.DataFrame(rows)


def window_table(variant_table: pd.DataFrame, episodes: list[Episode]) -> pd.DataFrame:
    """Per episode read over a window family, scenario and window end: the main run's reduction (default surface,
    ladder 0) and the range over surfaces x ladders."""
    fam = {e.name for e in episodes if e.windows}
    t = scored_variants(variant_table)
    t = t[t.episode.isin(fam)]
    rows = []
    for (ep, sc, w), g in t.groupby(["episode", "scenario", "window"], sort=False):
        main = g[(g.surface_index == 0) & (g.ladder == 0)]
        lo, hi = _range(g["reduction_pct"])
        rows.append({"episode": ep, "scenario": sc, "window": w, "end": g.window_end.iloc[0],
                     "reduction_pct": float(main.reduction_pct.iloc[0]) if len(main) else math.nan,
                     "range_low": lo, "range_high": hi, "variants": len(g)})
    return pd.DataFrame(rows)


COST_TERMS = (("hedge_trading", "hedge P&L before commissions"), ("hedge_fees", "hedge commissions and fees"),
              ("interest", "T-bill interest given up (premium and margin)"),
              ("condor_path", "condor path effect (sizing follows equity)"), ("residual", "residual"))


def cost_table(full_table: pd.DataFrame) -> pd.DataFrame:
    """The hedge's full cost on the main run: final equity hedged minus unhedged, split exactly into the hedge
    book's P&L (trading and commissions), the interest the account earned less (cash spent on premium and margin
    earns no T-bill interest) and the condor book's P&L difference (its sizing follows equity). The residual is what
    the ledger leaves unexplained (books + interest = equity - initial, so it is ~0). In $ and in % of the initial
    equity per year."""
    full = full_table.set_index("scenario") if len(full_table) else full_table
    if "unhedged" not in full.index:
        return pd.DataFrame()
    u = full.loc["unhedged"]
    rows = []
    for name, f in full.iterrows():
        if name == "unhedged":
            continue
        diff = float(f.final_equity - u.final_equity)
        terms = {"hedge_trading": float(f.hedge_pnl + f.hedge_commissions - (u.hedge_pnl + u.hedge_commissions)),
                 "hedge_fees": float(-(f.hedge_commissions - u.hedge_commissions)),
                 "interest": float(f.interest - u.interest), "condor_path": float(f.condor_pnl - u.condor_pnl)}
        terms["residual"] = diff - sum(terms.values())
        per_yr = 100.0 / (float(u.initial_equity) * float(u.years)) if u.years and u.years > 0 else math.nan
        row = {"scenario": name, "final_equity_diff": diff, **terms, "years": float(u.years),
               "initial_equity": float(u.initial_equity), "final_equity_diff_pct_yr": diff * per_yr,
               **{f"{k}_pct_yr": v * per_yr for k, v in terms.items()},
               "cagr_diff_pct": float(f.cagr_pct - u.cagr_pct)}
        rows.append(row)
    return pd.DataFrame(rows)


def tally(episode_table: pd.DataFrame, full_table: pd.DataFrame, scenarios: list[Scenario],
          cost: pd.DataFrame | None = None) -> pd.DataFrame:
    """The answer per reading: over the named episodes, how often the claim held on every variant (surface x
    ladder phase x window end), on some, on none (and of those, worse on every variant), how many were not scored;
    with the hedge's full cost per year (final equity hedged minus unhedged, % of initial equity a year)."""
    named = episode_table[(episode_table.source == "named") & (episode_table.scenario != "unhedged")]
    full = full_table.set_index("scenario") if len(full_table) else full_table
    costs = cost.set_index("scenario") if cost is not None and len(cost) else None
    base = full.loc["unhedged"] if "unhedged" in full.index else None
    rows = []
    for sc in scenarios:
        if sc.name == "unhedged" or sc.name not in full.index:
            continue
        t = named[named.scenario == sc.name]
        c = t["class"].value_counts()
        f = full.loc[sc.name]
        full_cost = -float(costs.loc[sc.name, "final_equity_diff_pct_yr"]) if costs is not None else math.nan
        rows.append({"scenario": sc.name, "label": sc.label, "family": sc.family, "episodes": len(t),
                     "held_every": int(c.get(HELD_EVERY, 0)), "held_some": int(c.get(HELD_SOME, 0)),
                     "held_none": int(c.get(HELD_NONE, 0) + c.get(WORSE_EVERY, 0)),
                     "worse_every": int(c.get(WORSE_EVERY, 0)), "not_scored": int(c.get(NOT_SCORED, 0)),
                     "cost_pct_yr": full_cost,
                     "cost_dollars": -float(costs.loc[sc.name, "final_equity_diff"]) if costs is not None else math.nan,
                     "hedge_net_pct_yr": float(f["hedge_net_pct_yr"]), "calm_carry_pct_yr": float(f["hedge_carry_pct_yr"]),
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
    n = int(row.get("variants", 1) or 0)
    rng = ""
    if n > 1 and math.isfinite(row.get("range_low", math.nan)):
        rng = (f", {row['range_low']:.0f}% to {row['range_high']:.0f}% over {variants_text(row)} "
               f"(claim held on {row.get('variants_held', 0)} of {n})")
    return (f"{row['episode']}: max drawdown {row['dd_unhedged_pct']:.2f}% unhedged vs {row['dd_pct']:.2f}% hedged, "
            f"{_size(red)}{rng} -> claimed {claim.met:.0f}-{claim.exceeded:.0f}% reduction {row['class'].upper()}")


def variants_text(row) -> str:
    """'3 surfaces x 5 ladder phases x 5 window ends' (the parts that vary)."""
    parts = [(int(row.get("surfaces", 1) or 1), "surface"), (int(row.get("ladders", 1) or 1), "ladder phase"),
             (int(row.get("windows", 1) or 1), "window end")]
    text = " x ".join(f"{k} {w}{'s' if k > 1 else ''}" for k, w in parts if k > 1)
    return text or "1 run"


def _size(red: float) -> str:
    return f"{red:.1f}% smaller" if red >= 0 else f"{-red:.1f}% larger"


def scenario_needs(cfg, scenarios: list[Scenario]) -> list[SeriesNeed]:
    """The series the condor book and every scenario's hedge read."""
    hedges = [parse_hedge(s.hedge) for s in scenarios if s.hedge is not None]
    return merge_needs(series_needs(cfg), *(h.needs() for h in hedges if h is not None))


def _surface_ladder(task: dict) -> tuple[int, int]:
    return task["meta"]["surface"], task["meta"]["ladder"]


def run_verdict(cfg, data_dir: str, *, episode_file: str | Path | None = None, start=None, end=None,
                ladders: int | None = None, workers: int = 1, scheduler: str | None = None,
                progress: bool = True, scenarios: list[str] | None = None,
                surfaces: str | Path | None = None) -> VerdictResult:
    """`surfaces`: None - the ensemble named by the episode file's [verdict] surfaces; "default" - its first member
    only (the run config's pricing); a path - that ensemble file."""
    spec, named = load_episodes(episode_file)
    settings = spec.verdict
    scs = standard_scenarios(cfg.hedge, settings)
    if scenarios:
        unknown = sorted(set(scenarios) - {s.name for s in scs})
        if unknown:
            raise ValueError(f"unknown scenario(s) {unknown}; known: {[s.name for s in scs]}")
        scs = [s for s in scs if s.name in scenarios or s.name == "unhedged"]
    cfg_dict = cfg.model_dump(mode="json")
    first_only = surfaces is not None and str(surfaces) == "default"
    ens_path = surfaces_path(spec, episode_file) if surfaces is None or first_only else Path(surfaces)
    members = load_surfaces(ens_path, cfg_dict.get("pricing") or {}, first_only=first_only)
    needs = scenario_needs(cfg, scs)
    check_files(data_dir, needs, cfg.source)
    panel = worker_panel(str(data_dir))   # every file and flag is checked above, before the data is read
    s0 = pd.Timestamp(start or cfg.run.start)
    e0 = pd.Timestamp(end or cfg.run.end)
    check_coverage(panel, needs, s0, e0, cfg.source)
    episodes = episodes_in(spec, named, panel.daily, s0, e0)
    n_lad = settings.ladders if ladders is None else ladders
    variants = ladder_variants(cfg_dict.get("condor"), n_lad)
    tasks = []
    # surface-major, the main run (default surface, ladder 0) first: a worker's snapshot prices are cached per
    # pricing, so the runs of one surface follow each other and each surface is priced about once per worker
    for k, member in enumerate(members):
        for lad, over in enumerate(variants):
            for sc in scs:
                tasks.append(make_task(cfg_dict, sc.hedge, task_id=f"{sc.name}#{member.name}#{lad}",
                                       condor_overrides=over, pricing_overrides=member.pricing,
                                       start=s0.date(), end=e0.date(), episodes=episodes,
                                       keep_series=(k == 0 and lad == 0),
                                       meta={"scenario": sc.name, "surface": k, "ladder": lad}))
    t0 = time.perf_counter()
    # one (surface, ladder phase) per chunk: its scenarios share the condor's contracts and the surface's prices
    results = run_tasks(run_task, tasks, data_dir=str(data_dir), workers=workers, scheduler=scheduler,
                        progress=progress, desc="verdict runs", group=_surface_ladder)
    wall = time.perf_counter() - t0
    default = settings.default_scenario if any(s.name == settings.default_scenario for s in scs) else "alvh"
    res = analyze(results, scs, episodes, spec.claim, default, members)
    res.meta = {"config": cfg.source, "start": str(s0.date()), "end": str(e0.date()), "runs": len(tasks),
                "ladders": len(variants), "surfaces": [m.name for m in members],
                "surface_file": str(ens_path) if ens_path is not None else "",
                "wall_seconds": round(wall, 1), "workers": workers,
                "scheduler": scheduler or "", "default_scenario": default,
                "ladder_weekdays": [v.get("entry_weekday", (cfg_dict.get("condor") or {}).get("entry_weekday", 0))
                                    for v in variants],
                "detect": spec.detect.model_dump(), "claim": spec.claim.model_dump()}
    return res
