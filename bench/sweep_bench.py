"""Sweep, verdict and Dask benchmarks: the `alvh` commands run as a user runs them, timed from outside.

  sweep    `alvh sweep` on a grid (--limit N: its first N configurations) with --workers W, in this tree and, with
           --against DIR, in an earlier checkout, alternating; configurations a minute and the before/after ratio.
  verdict  `alvh verdict --config config/alvh.toml` (report files included), this tree and --against, alternating.
  dask     `alvh sweep --scheduler local:1` and `local:2` alternating (the scaling), and `--workers 2` once: the
           three tables must be the same.
Each command's result tables are compared across trees and modes, wall-clock columns aside. Prints figures;
asserts nothing about time. Medians over --runs rounds.

usage: python bench/sweep_bench.py {sweep,verdict,dask} [--grid G] [--limit N] [--workers 2] [--runs 1]
                                   [--against DIR] [--data-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import data_dir
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
WALL_COLUMNS = {"wall_seconds"}


CPU_SECONDS: list[float] = []   # CPU seconds of each _alvh call (the command and every worker process it waited for)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _alvh(tree: Path, args: list[str], data_dir: str) -> float:
    """Run `python -m adapters.cli ARGS` in `tree` (its own modules); wall seconds (CPU seconds in CPU_SECONDS:
    less sensitive than wall time to what else the machine runs)."""
    t, c = time.perf_counter(), _children_cpu()
    out = subprocess.run([sys.executable, "-m", "adapters.cli", *args, "--data-dir", data_dir], cwd=tree,
                         capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    CPU_SECONDS.append(_children_cpu() - c)
    if out.returncode != 0:
        raise SystemExit(f"alvh {' '.join(args)} in {tree} failed:\n{out.stderr[-3000:]}")
    return wall


def _table(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path)
    return df[[c for c in df.columns if c not in WALL_COLUMNS]]


def _strip_wall(obj):
    if isinstance(obj, dict):
        return {k: _strip_wall(v) for k, v in obj.items() if k not in WALL_COLUMNS}
    if isinstance(obj, list):
        return [_strip_wall(v) for v in obj]
    return obj


def _same_tables(a: Path, b: Path, names: list[str]) -> bool:
    return all(_table(a / n).equals(_table(b / n)) for n in names)


def bench_sweep(a, trees, tmp: Path) -> None:
    rows: dict[str, list[dict]] = {label: [] for label, _ in trees}
    for r in range(a.runs):
        for label, tree in (trees if r % 2 == 0 else trees[::-1]):
            out = tmp / f"sweep-{label}-{r}"
            args = ["sweep", "--grid", a.grid, "--workers", str(a.workers), "--quiet", "--out", str(out)]
            if a.limit:
                args += ["--limit", str(a.limit)]
            wall = _alvh(tree, args, a.data_dir)
            info = json.loads((out / "sweep_info.json").read_text())
            rows[label].append({"wall": wall, "runs_wall": info["wall_seconds"], "n": info["configurations"],
                                "cpu": CPU_SECONDS[-1], "out": out})
    print(f"alvh sweep --grid {a.grid}{f' --limit {a.limit}' if a.limit else ''} --workers {a.workers}, "
          f"{a.runs} round(s) alternating (medians):")
    med, cpu = {}, {}
    for label, _ in trees:
        rs = rows[label]
        w, rw = statistics.median(x["wall"] for x in rs), statistics.median(x["runs_wall"] for x in rs)
        med[label] = rs[0]["n"] / rw * 60
        cpu[label] = statistics.median(x["cpu"] for x in rs) / rs[0]["n"]
        walls = ", ".join(f"{x['runs_wall']:.0f}" for x in rs)
        print(f"  {label:<7} {rs[0]['n']} configurations: command {w:.1f} s, runs {rw:.1f} s -> "
              f"{med[label]:.1f} configurations/minute; {cpu[label]:.2f} CPU s per configuration "
              f"(run phase per round: {walls} s)")
    if len(trees) > 1:
        same = _same_tables(rows["now"][0]["out"], rows["before"][0]["out"], ["sweep.csv"])
        pairs = [b["runs_wall"] / n["runs_wall"] for n, b in zip(rows["now"], rows["before"])]
        print(f"  ratio   {med['now'] / med['before']:.2f}x configurations/minute (now/before; per round "
              f"{', '.join(f'{p:.2f}x' for p in pairs)}), {cpu['before'] / cpu['now']:.2f}x less CPU per "
              f"configuration; tables identical (wall-clock columns aside): {same}")


def bench_verdict(a, trees, tmp: Path) -> None:
    rows: dict[str, list[tuple[float, Path, float]]] = {label: [] for label, _ in trees}
    for r in range(a.runs):
        for label, tree in (trees if r % 2 == 0 else trees[::-1]):
            out = tmp / f"verdict-{label}-{r}"
            wall = _alvh(tree, ["verdict", "--config", "config/alvh.toml", "--workers", str(a.workers), "--quiet",
                                "--out", str(out)], a.data_dir)
            rows[label].append((wall, out, CPU_SECONDS[-1]))
    print(f"alvh verdict --config config/alvh.toml --workers {a.workers}, {a.runs} round(s) alternating (medians, "
          f"whole command incl. report files):")
    med = {label: statistics.median(r[0] for r in rs) for label, rs in rows.items()}
    for label, _ in trees:
        runs = [json.loads((r[1] / "verdict.json").read_text())["meta"]["wall_seconds"] for r in rows[label]]
        cpu = statistics.median(r[2] for r in rows[label])
        print(f"  {label:<7} {med[label]:.1f} s (per round {', '.join(f'{r[0]:.1f}' for r in rows[label])} s; "
              f"runs {', '.join(f'{x}' for x in runs)} s; {cpu:.1f} CPU s)")
    if len(trees) > 1:
        j = [_strip_wall(json.loads((rows[k][0][1] / "verdict.json").read_text())) for k in ("now", "before")]
        now, before = rows["now"][0][1], rows["before"][0][1]
        tables = sorted({p.name for d in (now, before) for p in d.glob("*.csv")})   # whatever the verdict writes
        same = (j[0] == j[1] and all((now / n).is_file() and (before / n).is_file() for n in tables)
                and _same_tables(now, before, tables))
        print(f"  ratio   {med['before'] / med['now']:.2f}x faster; verdict.json and tables ({', '.join(tables)}) "
              f"identical (wall-clock fields aside): {same}")


def bench_dask(a, tmp: Path) -> None:
    modes = {"local:1": ["--scheduler", "local:1"], "local:2": ["--scheduler", "local:2"]}
    rows: dict[str, list[float]] = {m: [] for m in modes}
    base = ["sweep", "--grid", a.grid, "--quiet"] + (["--limit", str(a.limit)] if a.limit else [])
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(a.runs):
        for m in (list(modes) if r % 2 == 0 else list(modes)[::-1]):
            out = tmp / f"dask-{m.replace(':', '')}-{r}"
            _alvh(ROOT, base + modes[m] + ["--out", str(out)], a.data_dir)
            rows[m].append(json.loads((out / "sweep_info.json").read_text())["wall_seconds"])
            cpu[m].append(CPU_SECONDS[-1])
    pool = tmp / "dask-pool"
    _alvh(ROOT, base + ["--workers", "2", "--out", str(pool)], a.data_dir)
    m1, m2 = statistics.median(rows["local:1"]), statistics.median(rows["local:2"])
    n = json.loads((pool / "sweep_info.json").read_text())["configurations"]
    same = (_same_tables(tmp / "dask-local1-0", tmp / "dask-local2-0", ["sweep.csv"])
            and _same_tables(tmp / "dask-local2-0", pool, ["sweep.csv"]))
    print(f"alvh sweep --grid {a.grid}{f' --limit {a.limit}' if a.limit else ''} on a local Dask cluster, "
          f"{a.runs} round(s) alternating (medians of the run phase, cluster start included):")
    c1, c2 = statistics.median(cpu["local:1"]), statistics.median(cpu["local:2"])
    print(f"  1 worker process  {m1:.1f} s ({n / m1 * 60:.1f} configurations/minute; per round "
          f"{', '.join(f'{x:.1f}' for x in rows['local:1'])} s; {c1:.0f} CPU s)")
    print(f"  2 worker processes {m2:.1f} s ({n / m2 * 60:.1f} configurations/minute; per round "
          f"{', '.join(f'{x:.1f}' for x in rows['local:2'])} s; {c2:.0f} CPU s) -> {m1 / m2:.2f}x")
    print(f"  tables of local:1, local:2 and --workers 2 identical (wall-clock columns aside): {same}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["sweep", "verdict", "dask"])
    ap.add_argument("--grid", default="config/sweep.toml")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--against", type=Path, help="checkout of earlier code to compare with (sweep, verdict)")
    ap.add_argument("--data-dir", help="market data (default: $ALVH_DATA_DIR, then the user cache)")
    ap.add_argument("--keep", type=Path, help="keep the outputs in this directory")
    a = ap.parse_args()
    a.data_dir = data_dir.resolve(a.data_dir)
    if a.against is not None and not (a.against / "adapters" / "cli").is_dir():
        raise SystemExit(f"--against {a.against}: not a checkout of this project (no adapters/cli)")
    trees = [("now", ROOT)] + ([("before", a.against.resolve())] if a.against else [])
    with tempfile.TemporaryDirectory(prefix="alvh-bench-") as t:
        tmp = a.keep or Path(t)
        tmp.mkdir(parents=True, exist_ok=True)
        if a.what == "sweep":
            bench_sweep(a, trees, tmp)
        elif a.what == "verdict":
            bench_verdict(a, trees, tmp)
        else:
            bench_dask(a, tmp)


if __name__ == "__main__":
    main()
