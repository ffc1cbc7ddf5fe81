"""`alvh verdict` and `alvh sweep`: the spike-by-spike verdict on the ALVH hedge, and parameter sweeps."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd

from adapters.cli.common import UserError, add_common, iso_date
from config.errors import ConfigError


def _data_dir(args) -> str:
    from adapters.data.panel import resolve_data_dir

    return str(resolve_data_dir(getattr(args, "data_dir", None)))


def _workers(n: int | None) -> int:
    return max(1, n if n is not None else (os.cpu_count() or 1))


def cmd_verdict(args) -> int:
    from analysis.verdict import run_verdict
    from analysis.verdict_report import console_report, write_report
    from config.settings import load_config

    cfg = load_config(args.config)
    if cfg.hedge is None:
        raise ConfigError(f"{args.config}: hedge: the verdict needs a [hedge] table (see config/alvh.toml)")
    if cfg.condor is None:
        raise ConfigError(f"{args.config}: condor: the verdict needs the [condor] book the hedge protects")
    scenarios = [s.strip() for s in args.scenarios.split(",")] if args.scenarios else None
    try:
        res = run_verdict(cfg, _data_dir(args), episode_file=args.episodes, start=args.start, end=args.end,
                          ladders=args.ladders, workers=_workers(args.workers), scheduler=args.scheduler,
                          progress=not args.quiet, scenarios=scenarios)
    except ValueError as e:
        raise UserError(str(e)) from None
    print(console_report(res))
    if args.out:
        t0 = time.perf_counter()
        written = write_report(res, Path(args.out))
        n = sum(len(v) for v in written.values())
        print(f"\nwrote {n} files to {args.out} (HTML: {written['html'][0]}) in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_sweep(args) -> int:
    from analysis.sweep import load_sweep, run_sweep

    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit}: must be at least 1")
    try:
        spec = load_sweep(args.grid)
        if args.limit:
            spec.sweep.limit = args.limit
        table, info = run_sweep(spec, _data_dir(args), workers=_workers(args.workers), scheduler=args.scheduler,
                                out=Path(args.out) if args.out else None, progress=not args.quiet,
                                start=args.start, end=args.end)
    except ValueError as e:
        raise UserError(str(e)) from None
    cols = [c for c in ("config", "thresholds", "weights", "reading", "instruments", "activation", "cost_mult",
                        "mean_reduction_named", "n_exceeded", "n_met", "n_worse", "hedge_carry_pct_yr",
                        "max_dd_pct", "cagr_pct") if c in table]
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print("Top 10 by mean drawdown reduction over the named episodes:")
        print(table.sort_values("mean_reduction_named", ascending=False)[cols].head(10).round(2).to_string(index=False))
    print(f"\n{info['configurations']} configurations + {info['baseline_runs']} baseline run(s) in "
          f"{info['wall_seconds']} s on {info['workers']} worker(s){' via ' + info['scheduler'] if info['scheduler'] else ''}: "
          f"{info['configs_per_minute']} configurations/minute, {info['mean_run_seconds']:.2f} s per run")
    if args.out:
        print(f"wrote {args.out}/sweep.parquet, sweep.csv, sweep_info.json")
    return 0


def register(sub) -> None:
    p = sub.add_parser("verdict", help="did the layered VIX hedge cut condor drawdowns by 35-40%% in real spikes?")
    p.add_argument("--config", default="config/alvh.toml", help="run config with [condor] and [hedge] tables")
    p.add_argument("--episodes", default="config/episodes.toml", help="episode windows, detection rule, claim bands")
    p.add_argument("--out", default="out/verdict", help="directory for CSV/JSON, PNG plots and verdict.html ('' to skip)")
    p.add_argument("--start", type=iso_date, help="first day (default: the config's run.start)")
    p.add_argument("--end", type=iso_date, help="last day (default: the config's run.end)")
    p.add_argument("--ladders", type=int, help="condor ladder phases for the reduction range (default from episodes.toml)")
    p.add_argument("--scenarios", help="comma-separated subset (unhedged always runs), e.g. alvh,static,vxth")
    p.add_argument("--workers", type=int, help="local worker processes (default: all cores)")
    p.add_argument("--scheduler", help="Dask scheduler address tcp://host:port (runs there instead of locally)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_common(p)
    p.set_defaults(func=cmd_verdict)

    p = sub.add_parser("sweep", help="sweep hedge thresholds, weights, budget readings, instruments and costs")
    p.add_argument("--grid", default="config/sweep.toml", help="sweep definition")
    p.add_argument("--out", default="out/sweep", help="directory for sweep.parquet / sweep.csv ('' to skip)")
    p.add_argument("--start", type=iso_date)
    p.add_argument("--end", type=iso_date)
    p.add_argument("--limit", type=int, help="run only the first N configurations")
    p.add_argument("--workers", type=int, help="local worker processes (default: all cores)")
    p.add_argument("--scheduler", help="Dask scheduler address tcp://host:port (runs there instead of locally)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_common(p)
    p.set_defaults(func=cmd_sweep)
