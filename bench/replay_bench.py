"""Replay benchmarks. Prints figures; asserts nothing about wall-clock time.

1. 20-year replays (config/alvh.toml hedged, config/condor.toml condor only, 2006-2025), each in a fresh
   subprocess so peak RSS is that run's own; the panel is loaded first and not timed. "cold" is the first
   replay in the process (what `alvh replay` pays), "warm" a repeat in the same process (what a sweep or
   verdict worker pays from its second configuration on: the shared market state and price cache are
   filled). Wall and CPU seconds are both shown: on a shared machine CPU time is the steadier figure.
   With ``--against DIR`` (a checkout of earlier code, e.g. ``git worktree add /tmp/before <rev>``) every
   round runs both trees alternately and the table gives the before/after ratios of the medians.
2. Bus throughput: SPX + VIX daily bars (1990 onward, REPEAT copies as separate feeds, the same stream as
   ../shared/bench's backtrader/nautilus baselines) as bar events through a trivial subscriber: bars/s.
   With ``--peers-python PY`` the peer scripts run with that interpreter, alternating with ours in the same
   rounds, and the table gives the ratios of the medians.

usage: python bench/replay_bench.py [--runs 5] [--warm 2] [--against DIR] [--only replay|bus]
                                    [--peers-python PY] [--peers-dir DIR] [--repeat 5] [--data-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import data_dir

ROOT = Path(__file__).resolve().parents[1]

CONFIGS = {"hedged": "config/alvh.toml", "condor": "config/condor.toml"}

# Runs in the tree under test (cwd): its own engine/adapters modules shadow any installed copy.
REPLAY_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, ".")
from adapters.data.panel import load_panel
from adapters.sim.backtest import run_backtest
from config.settings import load_config
panel = load_panel(sys.argv[1])
cfg = load_config(sys.argv[2])
runs = []
for _ in range(1 + int(sys.argv[3])):
    w, c = time.perf_counter(), time.process_time()
    res = run_backtest(cfg, panel)
    runs.append((time.perf_counter() - w, time.process_time() - c))
print(json.dumps({"cold_wall": runs[0][0], "cold_cpu": runs[0][1],
                  "warm_wall": min((r[0] for r in runs[1:]), default=float("nan")),
                  "warm_cpu": min((r[1] for r in runs[1:]), default=float("nan")),
                  "events": res.events, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "final_equity": repr(res.summary.final_equity)}))
"""

BUS_CHILD = r"""
import datetime as dt, sys, time
from dataclasses import dataclass
sys.path.insert(0, ".")
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

data_dir, repeat = sys.argv[1], int(sys.argv[2])
spx = pd.read_csv(f"{data_dir}/spx_daily.csv", parse_dates=["date"]).set_index("date").loc["1990":]
vix = pd.read_csv(f"{data_dir}/vix_daily.csv", parse_dates=["date"]).set_index("date")
idx = spx.index.intersection(vix.index)
frames = [spx.loc[idx, ["open", "high", "low", "close"]].to_numpy(float),
          vix.loc[idx, ["open", "high", "low", "close"]].to_numpy(float)]
stamps = [dt.datetime(d.year, d.month, d.day, 16, tzinfo=ET) for d in idx]
n_bars = 2 * repeat * len(idx)
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
dt_ = time.perf_counter() - t
print(f"alvh bus: {n_bars} bars ({len(idx)} days x {2 * repeat} feeds) in {dt_:.2f}s -> {n_bars / dt_:,.0f} bars/s")
"""


def _child(python: str, code: str, args: list[str], cwd: Path) -> str:
    out = subprocess.run([python, "-c", code, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"benchmark child in {cwd} failed:\n{out.stderr[-2000:]}")
    return out.stdout


def bench_replay(data_dir: str, runs: int, warm: int, against: Path | None) -> None:
    trees = [("now", ROOT)] + ([("before", against)] if against else [])
    rows: dict[tuple[str, str], list[dict]] = {}
    for r in range(runs):
        order = trees if r % 2 == 0 else trees[::-1]   # alternate which tree goes first
        for name, cfg in CONFIGS.items():
            for label, tree in order:
                out = _child(sys.executable, REPLAY_CHILD, [data_dir, cfg, str(warm)], tree)
                rows.setdefault((label, name), []).append(json.loads(out.strip().splitlines()[-1]))
    med = lambda rs, k: statistics.median(x[k] for x in rs)
    print(f"20-year replays, {runs} fresh processes per cell, alternating"
          f"{' this tree and ' + str(against) if against else ''}; warm = best of {warm} repeat(s) in the same process")
    print(f"{'replay':<8} {'tree':<7} {'cold wall':>9} {'cold cpu':>9} {'warm wall':>9} {'warm cpu':>9} "
          f"{'RSS MB':>7} {'events':>7}  final equity")
    for name in CONFIGS:
        for label, _ in trees:
            rs = rows[(label, name)]
            eq = {x["final_equity"] for x in rs}
            print(f"{name:<8} {label:<7} {med(rs, 'cold_wall'):9.3f} {med(rs, 'cold_cpu'):9.3f} "
                  f"{med(rs, 'warm_wall'):9.3f} {med(rs, 'warm_cpu'):9.3f} {max(x['rss_mb'] for x in rs):7.0f} "
                  f"{rs[0]['events']:7d}  {'/'.join(sorted(eq))}")
        if against:
            now, before = rows[("now", name)], rows[("before", name)]
            same = {x["final_equity"] for x in now} == {x["final_equity"] for x in before}
            print(f"{name:<8} {'ratio':<7} " + " ".join(
                f"{med(before, k) / med(now, k):8.2f}x" for k in ("cold_wall", "cold_cpu", "warm_wall", "warm_cpu"))
                + f"  (before/now; final equity identical: {same})")


def _rate(line: str) -> float:
    m = re.search(r"([\d,]+) bars/s", line)
    if not m:
        raise SystemExit(f"no bars/s in benchmark output: {line!r}")
    return float(m.group(1).replace(",", ""))


def bench_bus(data_dir: str, repeat: int, runs: int, peers_python: str | None, peers_dir: Path) -> None:
    cmds = {"alvh": (sys.executable, BUS_CHILD, ROOT)}
    if peers_python:
        cmds["backtrader"] = (peers_python, (peers_dir / "backtrader_baseline.py").read_text(), peers_dir)
        cmds["nautilus_trader"] = (peers_python, (peers_dir / "nautilus_baseline.py").read_text(), peers_dir)
    rates: dict[str, list[float]] = {k: [] for k in cmds}
    for r in range(runs):
        names = list(cmds) if r % 2 == 0 else list(cmds)[::-1]
        for name in names:
            py, code, cwd = cmds[name]
            out = _child(py, code, [data_dir, str(repeat)], cwd)
            rates[name].append(_rate(next(ln for ln in out.splitlines() if "bars/s" in ln)))
    ours = statistics.median(rates["alvh"])
    print(f"bus throughput ({runs} alternating rounds, SPX+VIX daily bars x {2 * repeat} feeds, medians):")
    for name, rs in rates.items():
        extra = "" if name == "alvh" else f"  alvh/{name} = {ours / statistics.median(rs):.1f}x"
        print(f"  {name:<16} {statistics.median(rs):>12,.0f} bars/s (min {min(rs):,.0f}, max {max(rs):,.0f}){extra}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warm", type=int, default=2, help="repeat replays in the same process after the cold one")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--against", type=Path, help="checkout of the code to compare with (runs alternately)")
    ap.add_argument("--peers-python", help="interpreter with backtrader and nautilus_trader installed")
    ap.add_argument("--peers-dir", type=Path, help="the peer scripts (default: ../shared/bench beside the checkout)")
    ap.add_argument("--data-dir", help="market data (default: $ALVH_DATA_DIR, then the user cache)")
    ap.add_argument("--only", choices=["replay", "bus"])
    a = ap.parse_args()
    a.data_dir = data_dir.resolve(a.data_dir)
    if a.peers_dir is None:   # /work/main -> /work/shared/bench; a worktree /work/wt/x -> /work/shared/bench
        a.peers_dir = next((p / "shared" / "bench" for p in ROOT.parents if (p / "shared" / "bench").is_dir()),
                           ROOT.parent / "shared" / "bench")
    if a.against is not None and not (a.against / "adapters" / "sim" / "backtest.py").is_file():
        raise SystemExit(f"--against {a.against}: not a checkout of this project (no adapters/sim/backtest.py)")
    if a.only != "bus":
        bench_replay(a.data_dir, a.runs, a.warm, a.against.resolve() if a.against else None)
    if a.only != "replay":
        bench_bus(a.data_dir, a.repeat, a.runs, a.peers_python, a.peers_dir)


if __name__ == "__main__":
    main()
