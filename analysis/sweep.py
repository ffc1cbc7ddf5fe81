"""Parameter sweeps of the ALVH hedge, on one machine or a Dask cluster.

``load_sweep`` reads the grid (config/sweep.toml, typed: every error is one sentence naming the file and the
key); ``expand`` turns it into hedge configurations, each checked before anything runs; ``run_sweep`` runs the
unhedged baseline once per cost level and every configuration (analysis.runs through analysis.tasks), and
writes one row per configuration (Parquet and CSV): full-period CAGR/Sharpe/Calmar/max DD, hedge carry, and
each episode's drawdown reduction vs the matching baseline.

With `[sweep] surfaces` (or `--surfaces FILE`: a surface ensemble, as the verdict's) every configuration and
baseline runs on every member's pricing: one row per configuration and surface (a `surface` column), and
`sweep_surfaces.csv` with each configuration's spread over the surfaces (the lowest and highest mean reduction,
and the named spikes where the claimed cut held on every surface). Without it the sweep prices as its config does.
"""
from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import math
import os
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from analysis.config_files import load_model
from analysis.episodes import episodes_in, load_episodes, reduction_pct
from analysis.runs import make_task, run_task_safe
from analysis.scenarios import INSTRUMENT_PRESETS, load_surfaces, preset_layers
from analysis.tasks import run_tasks, worker_panel
from config.errors import ConfigError, config_error
from engine.params import Params
from strategies.alvh.budget import Reading
from strategies.alvh.layers import ActivationMode

InstrumentPreset = Literal[tuple(INSTRUMENT_PRESETS)]  # type: ignore[valid-type]
Weight = Annotated[float, Field(ge=0, le=1)]


class SweepSection(Params):
    config: str = "config/alvh.toml"
    episodes: str = "config/episodes.toml"
    start: dt.date | None = None
    end: dt.date | None = None
    limit: int | None = Field(None, ge=1, description="run only the first N configurations")
    surfaces: str | None = Field(None, description="a surface ensemble file: run every configuration on every member")

    @model_validator(mode="after")
    def _order(self):
        if self.start and self.end and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class Axes(Params):
    thresholds: list[Annotated[list[float], Field(min_length=1)]] | None = None
    weights: list[Annotated[list[Weight], Field(min_length=1)]] | None = None
    reading: list[Reading] | None = None
    instruments: list[InstrumentPreset] | None = None
    activation: list[ActivationMode] | None = None
    signal: list[str] | None = None
    gates: list[list[str]] | None = None
    cost_mult: list[Annotated[float, Field(gt=0)]] | None = None
    paths: dict[str, list[Any]] = Field(default_factory=dict, description="dotted key -> values, e.g. hedge.budget.vega_offset")

    @field_validator("paths")
    @classmethod
    def _hedge_keys(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        bad = [k for k in v if not k.startswith("hedge.")]
        if bad:
            raise ValueError(f"path axes must start with 'hedge.' (got {bad[0]!r})")
        return v


class SweepSpec(Params):
    sweep: SweepSection = Field(default_factory=SweepSection)
    axes: Axes = Field(default_factory=Axes)
    _source: str = PrivateAttr("<sweep grid>")   # the file name errors are reported against

    @property
    def source(self) -> str:
        return self._source


def load_sweep(path: str | Path) -> SweepSpec:
    """The grid file, typed. Raises config.errors.ConfigError."""
    spec, label = load_model(path, SweepSpec, "sweep.toml")
    spec._source = label
    return spec


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
    """One dict per configuration: {'axes': {...}, 'hedge': raw hedge table, 'cost_mult': float}. Every
    configuration is validated here, so a bad combination fails (ConfigError) before anything runs."""
    from strategies.alvh import AlvhParams
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
                h["layers"] = preset_layers(h["layers"], v)
            elif k == "activation":
                h["activation"] = v
            elif k == "signal":
                h["signal"] = v
            elif k == "gates":
                h.setdefault("gates", {})["use"] = list(v)
            elif k == "cost_mult":
                cost = float(v)
            else:
                try:
                    _set_path(h, k[len("hedge."):], v)
                except (IndexError, KeyError, TypeError, ValueError):
                    raise ConfigError(f"{spec.source}: axes.paths.{k}: no such key in the [hedge] table") from None
        try:
            AlvhParams.model_validate(h)
        except ValidationError as e:
            raise config_error(spec.source, e, prefix="hedge") from None
        out.append({"axes": {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in values.items()},
                    "hedge": h, "cost_mult": cost})
    if spec.sweep.limit:
        out = out[: spec.sweep.limit]
    return out


def run_sweep(spec: SweepSpec, data_dir: str, *, workers: int = 1, scheduler: str | None = None,
              out: Path | None = None, progress: bool = True, start=None, end=None) -> tuple[pd.DataFrame, dict]:
    from config.settings import load_config

    cfg = load_config(spec.sweep.config)
    if cfg.hedge is None or getattr(cfg.hedge, "kind", None) not in ("alvh", "static"):
        raise ConfigError(f"{spec.sweep.config}: hedge: the sweep needs an ALVH [hedge] table (kind = 'alvh') to vary")
    epi_spec, named = load_episodes(spec.sweep.episodes)
    configs = expand(spec, cfg.hedge)
    s0 = pd.Timestamp(start or spec.sweep.start or cfg.run.start)
    e0 = pd.Timestamp(end or spec.sweep.end or cfg.run.end)
    cfg_dict = cfg.model_dump(mode="json")
    members = load_surfaces(spec.sweep.surfaces, cfg_dict.get("pricing") or {}) if spec.sweep.surfaces else [None]
    panel = worker_panel(str(data_dir))   # every file is checked above, before the data is read
    episodes = episodes_in(epi_spec, named, panel.daily, s0, e0)
    base_tasks, cost_keys = [], sorted({c["cost_mult"] for c in configs})
    tasks, todo = [], []
    for k, member in enumerate(members):   # surface-major: a worker's price cache sees one pricing at a time
        over = member.pricing if member is not None else None
        at = "" if member is None else f"#{member.name}"
        for m in cost_keys:
            c = copy.deepcopy(cfg_dict)
            c["execution"] = scale_costs(c.get("execution"), m)
            base_tasks.append(make_task(c, None, task_id=f"baseline@{m:g}{at}", pricing_overrides=over,
                                        start=s0.date(), end=e0.date(), episodes=episodes,
                                        meta={"baseline": m, "surface": k}))
        for i, conf in enumerate(configs):
            c = copy.deepcopy(cfg_dict)
            c["execution"] = scale_costs(c.get("execution"), conf["cost_mult"])
            tasks.append(make_task(c, conf["hedge"], task_id=f"cfg{i:05d}", pricing_overrides=over, start=s0.date(),
                                   end=e0.date(), episodes=episodes,
                                   meta={"index": i, "cost_mult": conf["cost_mult"], "surface": k}))
            todo.append((conf, member))
    t0 = time.perf_counter()
    results = run_tasks(run_task_safe, base_tasks + tasks, data_dir=str(data_dir), workers=workers,
                        scheduler=scheduler, progress=progress, desc="sweep")
    wall = time.perf_counter() - t0
    for r in results[: len(base_tasks)]:
        if r.get("error"):
            raise RuntimeError(f"sweep baseline {r['id']} failed: {r['error']}\n{r.get('traceback', '')}")
    base = {(r["meta"]["baseline"], r["meta"]["surface"]): r["metrics"] for r in results[: len(base_tasks)]}
    rows = []
    for (conf, member), r in zip(todo, results[len(base_tasks):]):
        where = {} if member is None else {"surface": member.name}
        if r.get("error"):
            rows.append({"config": r["id"], **where, **conf["axes"], "error": r["error"]})
            continue
        m, b = r["metrics"], base[(conf["cost_mult"], r["meta"]["surface"])]
        row = {"config": r["id"], **where, **conf["axes"], "cagr_pct": 100 * m["cagr"], "sharpe": m["sharpe"],
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
    spread = surface_spread(table, episodes, epi_spec.claim.met) if len(members) > 1 else None
    n = len(base_tasks) + len(tasks)
    info = {"configurations": len(configs), "baseline_runs": len(base_tasks), "runs": n, "wall_seconds": round(wall, 1),
            "configs_per_minute": round(len(tasks) / wall * 60, 1) if wall > 0 else math.nan,
            "runs_per_minute": round(n / wall * 60, 1) if wall > 0 else math.nan,
            "workers": workers, "scheduler": scheduler or "", "cpu_count": os.cpu_count(),
            "failed": sum(1 for r in results if r.get("error")),
            "mean_run_seconds": float(pd.Series([r["metrics"]["wall_seconds"] for r in results
                                                 if r.get("metrics")]).mean()),
            "start": str(s0.date()), "end": str(e0.date())}
    if spread is not None:
        info["surfaces"] = [m.name for m in members]
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "sweep.csv", index=False, float_format="%.10g")
        try:
            table.to_parquet(out / "sweep.parquet", index=False)
        except (ImportError, ValueError, OSError) as e:  # pragma: no cover - keep the CSV whatever happens
            info["parquet_error"] = str(e)
        (out / "sweep_info.json").write_text(json.dumps(info, indent=2) + "\n")
        if spread is not None:
            spread.to_csv(out / "sweep_surfaces.csv", index=False, float_format="%.10g")
    if spread is not None:   # after the Parquet file: pandas writes attrs into its metadata as JSON
        table.attrs["surface_spread"] = spread
    return table, info


def surface_spread(table: pd.DataFrame, episodes, met: float) -> pd.DataFrame:
    """Per configuration run on several surfaces: its lowest, median and highest mean reduction over the named
    spikes, and how many named spikes reached the claimed cut on every surface (and on any)."""
    ok = table[table["error"].isna()] if "error" in table else table
    named = [f"red_{ep.slug}" for ep in episodes if ep.source == "named" and f"red_{ep.slug}" in ok]
    rows = []
    for cfg_id, g in ok.groupby("config", sort=True):
        held = g[named].ge(met)
        rows.append({"config": cfg_id, "surfaces": len(g),
                     "mean_reduction_min": g["mean_reduction_named"].min(),
                     "mean_reduction_median": g["mean_reduction_named"].median(),
                     "mean_reduction_max": g["mean_reduction_named"].max(),
                     "n_met_every_surface": int(held.all().sum()), "n_met_some_surface": int(held.any().sum()),
                     "hedge_carry_pct_yr_max": g["hedge_carry_pct_yr"].max()})
    return pd.DataFrame(rows)
