"""Parameter sweeps of the ALVH hedge, on one machine or a Dask cluster.

``run_tasks`` runs task dicts through a worker function: in this process (workers=1), in a local
process pool (workers>1, one market panel per worker process, loaded by the pool initializer), or on a
Dask distributed cluster (``scheduler="tcp://host:port"``; each worker loads the panel on its first
task and keeps it). A tqdm bar shows progress.

``run_sweep`` expands a grid (config/sweep.toml) into hedge configurations, runs the unhedged baseline
once per distinct cost/condor setting, runs every configuration, and writes one row per
configuration (Parquet and CSV): full-period CAGR/Sharpe/Calmar/max DD, hedge carry, and each
episode's drawdown reduction vs the matching baseline.
"""
from __future__ import annotations

import copy
import itertools
import json
import math
import multiprocessing as mp
import os
import threading
import time
import tomllib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

_PANELS: dict[str, Any] = {}
_LOCK = threading.Lock()
PANEL_LOADS = 0   # how many times this process loaded a panel (tests check "once per worker")


def worker_panel(data_dir: str):
    """The market panel for data_dir, loaded at most once per process."""
    global PANEL_LOADS
    key = str(data_dir)
    p = _PANELS.get(key)
    if p is not None:
        return p
    with _LOCK:
        p = _PANELS.get(key)
        if p is None:
            from adapters.data.panel import load_panel

            p = load_panel(key)
            _PANELS[key] = p
            PANEL_LOADS += 1
    return p


def _init_worker(data_dir: str) -> None:
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    worker_panel(data_dir)


def _bar(total: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not progress, unit="run", dynamic_ncols=True)


def run_tasks(fn: Callable[[dict, str], dict], tasks: list[dict], *, data_dir: str, workers: int = 1,
              scheduler: str | None = None, progress: bool = True, desc: str = "runs") -> list[dict]:
    """Results in task order."""
    if not tasks:
        return []
    if scheduler:
        return _run_dask(fn, tasks, data_dir, scheduler, progress, desc)
    if workers <= 1:
        out = []
        with _bar(len(tasks), desc, progress) as bar:
            for t in tasks:
                out.append(fn(t, data_dir))
                bar.update()
        return out
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else "spawn")
    results: list[dict | None] = [None] * len(tasks)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(data_dir,)) as pool, _bar(len(tasks), desc, progress) as bar:
        futs = {pool.submit(fn, t, data_dir): i for i, t in enumerate(tasks)}
        for f in as_completed(futs):
            results[futs[f]] = f.result()
            bar.update()
    return results  # type: ignore[return-value]


def _run_dask(fn, tasks, data_dir, scheduler, progress, desc) -> list[dict]:
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError as e:  # pragma: no cover - dask is an optional extra
        raise RuntimeError("--scheduler needs dask[distributed] (pip install 'alvh[sweep]')") from e
    client = Client(scheduler, timeout="30s")
    try:
        futs = client.map(fn, tasks, data_dir=data_dir, pure=False)
        with _bar(len(tasks), desc, progress) as bar:
            for _ in dask_completed(futs):
                bar.update()
        return client.gather(futs)
    finally:
        client.close()


def run_task_safe(task: dict, data_dir: str) -> dict:
    """run_task, but a failing configuration becomes an error row instead of stopping the sweep."""
    from analysis.verdict import run_task

    try:
        return run_task(task, data_dir)
    except Exception as e:  # noqa: BLE001 - reported per configuration in the results table
        import traceback

        return {"id": task["id"], "meta": task.get("meta", {}), "metrics": None,
                "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=5)}


def process_info(_task: dict | None = None, data_dir: str | None = None) -> dict:
    """For tests: which process ran this and how often it has loaded a panel (after making sure it has one,
    as every configuration does)."""
    if data_dir is not None:
        worker_panel(data_dir)
    return {"pid": os.getpid(), "panel_loads": PANEL_LOADS}


# ---------------------------------------------------------------------------------------------------
# the grid
# ---------------------------------------------------------------------------------------------------

INSTRUMENT_PRESETS: dict[str, list[dict]] = {
    # the default: front VX future, 5-month constant-maturity VX blend, 150-DTE 30-delta VIX calls
    "futures": [{"type": "vx", "month": 1, "roll_days": 5}, {"type": "cm", "term": "mid"},
                {"type": "vix_call", "target_dte": 150, "min_entry_dte": 120, "max_entry_dte": 250, "roll_dte": 60}],
    "blends": [{"type": "cm", "term": "short"}, {"type": "cm", "term": "mid"},
               {"type": "vix_call", "target_dte": 150, "min_entry_dte": 120, "max_entry_dte": 250, "roll_dte": 60}],
    "etps": [{"type": "etp", "symbol": "VIXY"}, {"type": "etp", "symbol": "VIXM"},
             {"type": "vix_call", "target_dte": 150, "min_entry_dte": 120, "max_entry_dte": 250, "roll_dte": 60}],
    "calls": [{"type": "vix_call", "target_dte": 38, "min_entry_dte": 30, "max_entry_dte": 45, "roll_dte": 14},
              {"type": "vix_call", "target_dte": 75, "min_entry_dte": 60, "max_entry_dte": 90, "roll_dte": 30},
              {"type": "vix_call", "target_dte": 150, "min_entry_dte": 120, "max_entry_dte": 250, "roll_dte": 60}],
    "calendars": [{"type": "vx", "month": 1, "roll_days": 5}, {"type": "cm", "term": "mid"},
                  {"type": "vix_calendar", "near_dte": 30, "far_dte": 150, "roll_dte": 7}],
}


class SweepSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config: str = "config/alvh.toml"
    episodes: str = "config/episodes.toml"
    start: str | None = None
    end: str | None = None
    limit: int | None = Field(None, ge=1, description="run only the first N configurations")


class Axes(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thresholds: list[list[float]] | None = None
    weights: list[list[float]] | None = None
    reading: list[str] | None = None
    instruments: list[str] | None = None
    activation: list[str] | None = None
    signal: list[str] | None = None
    gates: list[list[str]] | None = None
    cost_mult: list[float] | None = None
    paths: dict[str, list[Any]] = Field(default_factory=dict, description="dotted key -> values, e.g. hedge.budget.vega_offset")


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sweep: SweepSection = Field(default_factory=SweepSection)
    axes: Axes = Field(default_factory=Axes)


def load_sweep(path: str | Path) -> SweepSpec:
    p = Path(path)
    if not p.exists():
        alt = Path(__file__).resolve().parents[1] / "config" / p.name
        if alt.exists():
            p = alt
        else:
            raise ValueError(f"sweep file {path} does not exist")
    try:
        return SweepSpec.model_validate(tomllib.loads(p.read_text()))
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{p}: not valid TOML: {e}") from None
    except ValidationError as e:
        first = e.errors()[0]
        raise ValueError(f"{p}: bad value for '{'.'.join(str(x) for x in first['loc'])}': {first['msg']}") from None


def _set_path(d: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    cur: Any = d
    for i, key in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(cur, list):
            cur = cur[int(key)]
            continue
        if key not in cur or cur[key] is None:
            cur[key] = [] if nxt.isdigit() else {}
        cur = cur[key]
    last = parts[-1]
    if isinstance(cur, list):
        cur[int(last)] = value
    else:
        cur[last] = value


def scale_costs(execution: dict, m: float) -> dict:
    """Execution settings with every commission, spread parameter and slippage multiplied by m."""
    from engine.execution import ExecutionParams

    ex = ExecutionParams.model_validate(execution or {}).model_dump(mode="json")
    ex["costs"] = {k: v * m for k, v in ex["costs"].items()}
    for s in ex["spreads"].values():
        for k in ("base", "pct", "min_half", "max_half"):
            s[k] = s[k] * m
    ex["slippage_ticks"] = ex["slippage_ticks"] * m
    return ex


def expand(spec: SweepSpec, base_hedge: dict) -> list[dict]:
    """One dict per configuration: {'axes': {...}, 'hedge': raw hedge table, 'cost_mult': float}."""
    from strategies.hedges import parse_hedge

    a = spec.axes
    named = [(k, v) for k, v in (("thresholds", a.thresholds), ("weights", a.weights), ("reading", a.reading),
                                 ("instruments", a.instruments), ("activation", a.activation),
                                 ("signal", a.signal), ("gates", a.gates), ("cost_mult", a.cost_mult)) if v]
    paths = [(k, v) for k, v in a.paths.items() if v]
    axes = named + paths
    if isinstance(base_hedge, BaseModel):  # typed [hedge] params: the table as the user wrote it
        base_hedge = base_hedge.model_dump(mode="json", exclude_unset=True)
    base = copy.deepcopy(base_hedge)
    if not base.get("layers"):
        base["layers"] = [lp.model_dump(mode="json") for lp in parse_hedge(base).layers]
    out = []
    for combo in itertools.product(*[v for _, v in axes]) if axes else [()]:
        h = copy.deepcopy(base)
        values = dict(zip([k for k, _ in axes], combo))
        cost = 1.0
        for k, v in values.items():
            if k == "thresholds":
                for lp, x in zip(h["layers"], v):
                    lp["threshold"] = x
            elif k == "weights":
                for lp, x in zip(h["layers"], v):
                    lp["weight"] = x
            elif k == "reading":
                h.setdefault("budget", {})["reading"] = v
            elif k == "instruments":
                if v not in INSTRUMENT_PRESETS:
                    raise ValueError(f"sweep: unknown instrument preset {v!r}; known: {sorted(INSTRUMENT_PRESETS)}")
                for i, lp in enumerate(h["layers"]):
                    lp["instrument"] = dict(INSTRUMENT_PRESETS[v][i % 3])
            elif k == "activation":
                h["activation"] = v
            elif k == "signal":
                h["signal"] = v
            elif k == "gates":
                h.setdefault("gates", {})["use"] = list(v)
            elif k == "cost_mult":
                cost = float(v)
            else:
                if not k.startswith("hedge."):
                    raise ValueError(f"sweep: path axes must start with 'hedge.' (got {k!r})")
                _set_path(h, k[len("hedge."):], v)
        parse_hedge(h)  # a bad combination fails before anything runs
        out.append({"axes": {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in values.items()},
                    "hedge": h, "cost_mult": cost})
    if spec.sweep.limit:
        out = out[: spec.sweep.limit]
    return out


def run_sweep(spec: SweepSpec, data_dir: str, *, workers: int = 1, scheduler: str | None = None,
              out: Path | None = None, progress: bool = True, start=None, end=None) -> tuple[pd.DataFrame, dict]:
    from analysis.verdict import detect_spikes, load_episodes, make_task, reduction_pct
    from config.settings import load_config

    cfg = load_config(spec.sweep.config)
    if cfg.hedge is None:
        raise ValueError(f"{spec.sweep.config}: the sweep needs a [hedge] table to vary")
    epi_spec, named = load_episodes(spec.sweep.episodes)
    s0 = pd.Timestamp(start or spec.sweep.start or cfg.run.start)
    e0 = pd.Timestamp(end or spec.sweep.end or cfg.run.end)
    panel = worker_panel(str(data_dir))
    daily = panel.daily.loc[s0:e0]
    episodes = [e for e in named + detect_spikes(daily["vix_close"], daily["spx_close"], epi_spec.detect, named)
                if e.end >= s0 and e.start <= e0]
    configs = expand(spec, cfg.hedge)
    cfg_dict = cfg.model_dump(mode="json")
    base_tasks, cost_keys = [], sorted({c["cost_mult"] for c in configs})
    for m in cost_keys:
        c = copy.deepcopy(cfg_dict)
        c["execution"] = scale_costs(c.get("execution"), m)
        base_tasks.append(make_task(c, None, task_id=f"baseline@{m:g}", start=s0.date(), end=e0.date(),
                                    episodes=episodes, meta={"baseline": m}))
    tasks = []
    for i, conf in enumerate(configs):
        c = copy.deepcopy(cfg_dict)
        c["execution"] = scale_costs(c.get("execution"), conf["cost_mult"])
        tasks.append(make_task(c, conf["hedge"], task_id=f"cfg{i:05d}", start=s0.date(), end=e0.date(),
                               episodes=episodes, meta={"index": i, "cost_mult": conf["cost_mult"]}))
    t0 = time.perf_counter()
    results = run_tasks(run_task_safe, base_tasks + tasks, data_dir=str(data_dir), workers=workers,
                        scheduler=scheduler, progress=progress, desc="sweep")
    wall = time.perf_counter() - t0
    for r in results[: len(base_tasks)]:
        if r.get("error"):
            raise RuntimeError(f"sweep baseline {r['id']} failed: {r['error']}\n{r.get('traceback', '')}")
    base = {r["meta"]["baseline"]: r["metrics"] for r in results[: len(base_tasks)]}
    rows = []
    for conf, r in zip(configs, results[len(base_tasks):]):
        if r.get("error"):
            rows.append({"config": r["id"], **conf["axes"], "error": r["error"]})
            continue
        m, b = r["metrics"], base[conf["cost_mult"]]
        row = {"config": r["id"], **conf["axes"], "cagr_pct": 100 * m["cagr"], "sharpe": m["sharpe"],
               "calmar": m["calmar"], "max_dd_pct": 100 * m["max_drawdown"],
               "max_dd_unhedged_pct": 100 * b["max_drawdown"], "hedge_pnl": m["hedge_pnl"],
               "hedge_net_pct_yr": m["hedge_net_pct_yr"], "hedge_carry_pct_yr": m["hedge_carry_pct_yr"],
               "hedge_fills": m["hedge_fills"], "wall_seconds": m["wall_seconds"]}
        reds = []
        for ep in episodes:
            red = reduction_pct(b["episodes"][ep.name]["dd"], m["episodes"][ep.name]["dd"])
            row[f"red_{ep.slug}"] = red
            if ep.source == "named" and math.isfinite(red):
                reds.append(red)
        s = pd.Series(reds, dtype=float)
        row.update({"mean_reduction_named": s.mean(), "median_reduction_named": s.median(),
                    "n_exceeded": int((s >= epi_spec.claim.exceeded).sum()),
                    "n_met": int(((s >= epi_spec.claim.met) & (s < epi_spec.claim.exceeded)).sum()),
                    "n_fell_short": int(((s >= 0) & (s < epi_spec.claim.met)).sum()),
                    "n_worse": int((s < 0).sum())})
        rows.append(row)
    table = pd.DataFrame(rows)
    n = len(base_tasks) + len(tasks)
    info = {"configurations": len(tasks), "baseline_runs": len(base_tasks), "runs": n, "wall_seconds": round(wall, 1),
            "configs_per_minute": round(len(tasks) / wall * 60, 1) if wall > 0 else math.nan,
            "runs_per_minute": round(n / wall * 60, 1) if wall > 0 else math.nan,
            "workers": workers, "scheduler": scheduler or "", "cpu_count": os.cpu_count(),
            "failed": sum(1 for r in results if r.get("error")),
            "mean_run_seconds": float(pd.Series([r["metrics"]["wall_seconds"] for r in results
                                                 if r.get("metrics")]).mean()),
            "start": str(s0.date()), "end": str(e0.date())}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "sweep.csv", index=False, float_format="%.6g")
        try:
            table.to_parquet(out / "sweep.parquet", index=False)
        except (ImportError, ValueError, OSError) as e:  # pragma: no cover - keep the CSV whatever happens
            info["parquet_error"] = str(e)
        (out / "sweep_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return table, info
