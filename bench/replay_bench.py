"""Replay benchmarks. Prints figures; asserts nothing about wall-clock time.

1. The 20-year daily condor replay (config/condor.toml, 2006-2025): median wall time over N runs, each in a
   fresh subprocess so peak RSS is that run's own (panel load from the Parquet cache included and shown
   separately).
2. Bus throughput: SPX + VIX daily bars (1990 onward, REPEAT copies as separate feeds, the same stream as
   ../shared/bench's backtrader/nautilus baselines) as bar events through a trivial subscriber: bars/s.

usage: python bench/replay_bench.py [--runs 5] [--repeat 5] [--data-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from adapters.data.panel import load_panel
from adapters.sim.backtest import run_backtest
from config.settings import load_config
t1 = time.perf_counter()
panel = load_panel(sys.argv[1])
t2 = time.perf_counter()
res = run_backtest(load_config("config/condor.toml"), panel)
t3 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "panel": t2 - t1, "replay": t3 - t2, "events": res.events,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "final_equity": res.summary.final_equity}))
"""


def bench_replay(data_dir: str, runs: int) -> None:
    rows = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", CHILD, data_dir], cwd=ROOT, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = lambda k: statistics.median(r[k] for r in rows)
    print(f"20-year condor replay ({runs} fresh processes): median replay {med('replay'):.2f}s "
          f"(min {min(r['replay'] for r in rows):.2f}s), panel load {med('panel'):.3f}s, imports {med('imports'):.2f}s, "
          f"peak RSS {med('rss_mb'):.0f} MB, {rows[0]['events']} events -> {rows[0]['events'] / med('replay'):,.0f} events/s; "
          f"final equity {rows[0]['final_equity']:,.0f} (identical across runs: {len({r['final_equity'] for r in rows}) == 1})")


def bench_bus(data_dir: str, repeat: int, runs: int) -> None:
    import datetime as dt
    from dataclasses import dataclass

    import pandas as pd

    from engine.bus import EventBus
    from engine.clock import ET
    from engine.events import Event

    @dataclass(frozen=True, slots=True)
    class Bar(Event):
        feed: int
        open: float
        high: float
        low: float
        close: float

    spx = pd.read_csv(f"{data_dir}/spx_daily.csv", parse_dates=["date"]).set_index("date").loc["1990":]
    vix = pd.read_csv(f"{data_dir}/vix_daily.csv", parse_dates=["date"]).set_index("date")
    idx = spx.index.intersection(vix.index)
    frames = [spx.loc[idx, ["open", "high", "low", "close"]].to_numpy(float),
              vix.loc[idx, ["open", "high", "low", "close"]].to_numpy(float)]
    stamps = [dt.datetime(d.year, d.month, d.day, 16, tzinfo=ET) for d in idx]
    n_bars = 2 * repeat * len(idx)
    rates = []
    for _ in range(runs):
        bus = EventBus()
        acc = [0.0]

        def on_bar(b, acc=acc):
            acc[0] += b.close

        bus.subscribe(Bar, on_bar)
        t = time.perf_counter()
        for i, ts in enumerate(stamps):
            for r in range(repeat):
                for f, arr in enumerate(frames):
                    o, h, lo, c = arr[i]
                    bus.publish(Bar(ts, 2 * r + f, o, h, lo, c))
            bus.run()
        rates.append(n_bars / (time.perf_counter() - t))
    print(f"bus throughput: {n_bars} bars ({len(idx)} days x {2 * repeat} feeds), median {statistics.median(rates):,.0f} bars/s "
          f"over {runs} runs (compare: ../shared/bench/README.md, same stream)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--data-dir", default=os.environ.get("ALVH_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--only", choices=["replay", "bus"])
    a = ap.parse_args()
    if a.only != "bus":
        bench_replay(a.data_dir, a.runs)
    if a.only != "replay":
        bench_bus(a.data_dir, a.repeat, a.runs)


if __name__ == "__main__":
    main()
