"""`alvh verdict` and `alvh sweep`: the spike-by-spike verdict on the ALVH hedge, and parameter sweeps."""
from __future__ import annotations

import argparse
import os
import socket
import time
from urllib.parse import urlsplit

import pandas as pd

from adapters.cli.common import UserError, add_common, data_dir_for, iso_date, out_dir, positive_int
from config.errors import ConfigError


def _workers(n: int | None) -> int:
    return n if n is not None else (os.cpu_count() or 1)


def _ladders(text: str) -> int:
    n = positive_int(text)
    if n > 5:
        raise argparse.ArgumentTypeError(f"'{text}': a weekly ladder has at most 5 phases (Monday..Friday)")
    return n


def check_scheduler(address: str | None) -> None:
    """--scheduler: dask installed and a scheduler answering at tcp://host:port (local:N: a cluster started for the
    run), checked before any work."""
    if not address:
        return
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise UserError(f"--scheduler {address}: needs Dask, which is not installed (pip install 'alvh[sweep]')") from None
    if address.startswith("local:"):   # a cluster started for the run (analysis/tasks.py checks N)
        return
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if parts.scheme != "tcp" or not host or not port:
        raise UserError(f"--scheduler {address}: not an address of the form tcp://host:port")
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as e:
        raise UserError(f"--scheduler {address}: no Dask scheduler answers there ({e.strerror or e})") from None


def cmd_verdict(args) -> int:
    from analysis.verdict import run_verdict
    from analysis.verdict_report import console_report, write_report
    from config.settings import load_config
    from config.wiring import series_needs

    cfg = load_config(args.config)
    if cfg.hedge is None:
        raise ConfigError(f"{args.config}: hedge: the verdict needs a [hedge] table (see config/alvh.toml)")
    if cfg.condor is None:
        raise ConfigError(f"{args.config}: condor: the verdict needs the [condor] book the hedge protects")
    scenarios = [s.strip() for s in args.scenarios.split(",")] if args.scenarios else None
    out = out_dir(args.out)
    check_scheduler(args.scheduler)
    data_dir = data_dir_for(args, series_needs(cfg), cfg.source)
    try:
        res = run_verdict(cfg, str(data_dir), episode_file=args.episodes, start=args.start, end=args.end,
                          ladders=args.ladders, workers=_workers(args.workers), scheduler=args.scheduler,
                          progress=not args.quiet, scenarios=scenarios, surfaces=args.surfaces)
    except ValueError as e:
        raise UserError(str(e)) from None
    print(console_report(res))
    if out is not None:
        t0 = time.perf_counter()
        written = write_report(res, out)
        n = sum(len(v) for v in written.values())
        print(f"\nwrote {n} files to {args.out} (HTML: {written['html'][0]}) in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_sweep(args) -> int:
    from analysis.sweep import load_sweep, run_sweep

    out = out_dir(args.out)
    check_scheduler(args.scheduler)
    try:
        spec = load_sweep(args.grid)
        if args.limit:
            spec.sweep.limit = args.limit
        if args.surfaces:
            spec.sweep.surfaces = args.surfaces
        table, info = run_sweep(spec, str(data_dir_for(args)), workers=_workers(args.workers),
                                scheduler=args.scheduler, out=out, progress=not args.quiet,
                                start=args.start, end=args.end)
    except ValueError as e:
        raise UserError(str(e)) from None
    cols = [c for c in ("config", "surface", "thresholds", "weights", "reading", "instruments", "activation", "cost_mult",
                        "mean_reduction_named", "n_exceeded", "n_met", "n_worse", "hedge_carry_pct_yr",
                        "max_dd_pct", "cagr_pct") if c in table]
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print("Top 10 by mean drawdown reduction over the named episodes:")
        print(table.sort_values("mean_reduction_named", ascending=False)[cols].head(10).round(2).to_string(index=False))
        spread = table.attrs.get("surface_spread")
        if spread is not None:
            print(f"\nOver the {len(info['surfaces'])} surfaces ({', '.join(info['surfaces'])}), top 10 by the lowest "
                  "mean reduction (named spikes with the claimed cut on every surface / on any):")
            print(spread.sort_values("mean_reduction_min", ascending=False).head(10).round(2).to_string(index=False))
    print(f"\n{info['configurations']} configurations + {info['baseline_runs']} baseline run(s) in "
          f"{info['wall_seconds']} s on {info['workers']} worker(s){' via ' + info['scheduler'] if info['scheduler'] else ''}: "
          f"{info['configs_per_minute']} configurations/minute, {info['mean_run_seconds']:.2f} s per run")
    if args.out:
        print(f"wrote {args.out}/sweep.parquet, sweep.csv, sweep_info.json"
              + (", sweep_surfaces.csv" if table.attrs.get("surface_spread") is not None else ""))
    return 0


def register(sub) -> None:
    p = sub.add_parser("verdict", help="did the layered VIX hedge cut condor drawdowns by 35-40%% in real spikes?")
    p.add_argument("--config", default="config/alvh.toml", help="run config with [condor] and [hedge] tables")
    p.add_argument("--episodes", default="config/episodes.toml", help="episode windows, detection rule, claim bands")
    p.add_argument("--out", default="out/verdict", help="directory for CSV/JSON, PNG plots and verdict.html ('' to skip)")
    p.add_argument("--start", type=iso_date, help="first day (default: the config's run.start)")
    p.add_argument("--end", type=iso_date, help="last day (default: the config's run.end)")
    p.add_argument("--ladders", type=_ladders, help="condor ladder phases for the reduction range (default from episodes.toml)")
    p.add_argument("--scenarios", help="comma-separated subset (unhedged always runs), e.g. alvh,static,vxth")
    p.add_argument("--surfaces", help="surface ensemble file, or 'default' for its first member only (quick); "
                                      "default: the file named by the episode file's [verdict] surfaces")
    p.add_argument("--workers", type=positive_int, help="local worker processes (default: all cores)")
    p.add_argument("--scheduler", help="Dask scheduler address tcp://host:port (runs there instead of locally)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_common(p)
    p.set_defaults(func=cmd_verdict)

    p = sub.add_parser("sweep", help="sweep hedge thresholds, weights, budget readings, instruments and costs")
    p.add_argument("--grid", default="config/sweep.toml", help="sweep definition")
    p.add_argument("--out", default="out/sweep", help="directory for sweep.parquet / sweep.csv ('' to skip)")
    p.add_argument("--start", type=iso_date)
    p.add_argument("--end", type=iso_date)
    p.add_argument("--limit", type=positive_int, help="run only the first N configurations")
    p.add_argument("--surfaces", help="surface ensemble file: run every configuration on every member "
                                      "(e.g. config/surface_ensemble.toml; default: the config's pricing only)")
    p.add_argument("--workers", type=positive_int, help="local worker processes (default: all cores)")
    p.add_argument("--scheduler", help="Dask scheduler address tcp://host:port (runs there instead of locally)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_common(p)
    p.set_defaults(func=cmd_sweep)
