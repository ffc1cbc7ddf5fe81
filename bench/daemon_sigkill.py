"""Acceptance drill: randomized SIGKILLs of the paper daemon across working orders (issue 11, acceptance 1).

Each scenario: a fresh loopback server and store, the drill strategies (a condor BAG, VX and VIXY at the open, a
rebalance at the close), fills on a seeded plan (at once, 0.1-4 s later, or part now and the rest later -
while the daemon is alive or dead), 1-3 SIGKILLs at a random moment or at a random crash point, then a clean
run to the end of the day. Scenarios run until at least --kills SIGKILLs really happened. Every scenario must
end with no duplicated, lost or orphaned order and server = ledger = expected positions.

usage: python bench/daemon_sigkill.py [--kills 200] [--parallel 4] [--seed N] [--keep DIR]
Prints the seed (ALVH_FAULT_SEED / --seed replays the plan; kill moments are wall-clock, so a replay is close,
not identical), the totals, and the directory of every failed scenario (daemon log, store).
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]

from daemon_drill import (
    daemon_run,
    daemon_table,
    env,
    expected_keys,
    fault_scenario,
    fault_seed,
    kills_done,
    scenario_problems,
    server_orders_by_ref,
    start_server,
    write_config,
)


async def main(args) -> int:
    seed = args.seed or fault_seed()
    base = Path(args.keep or tempfile.mkdtemp(prefix="alvh-sigkill-"))
    print(f"seed {seed}; scenarios under {base}", flush=True)
    srv = await start_server()
    (base / "ref").mkdir(parents=True, exist_ok=True)
    cfg = write_config(base / "ref" / "drill.toml", daemon_table(srv.port, base / "ref" / "state.sqlite"))
    assert await daemon_run(cfg, env()) == 0
    refs = set(server_orders_by_ref(srv))
    await srv.aclose()
    expected = {**expected_keys(), "VX": 3}
    sem = asyncio.Semaphore(args.parallel)
    totals = collections.Counter()
    fills = collections.Counter()
    kills, scenarios, failed, n = 0, 0, [], 0
    t0 = time.monotonic()
    while kills < args.kills:
        batch = await asyncio.gather(*(fault_scenario(base / f"s{n + i}", seed + n + i, sem)
                                       for i in range(args.parallel * 2)))
        n += len(batch)
        for r in batch:
            scenarios += 1
            kills += kills_done(r)
            fills.update(r["fills"].values())
            problems = scenario_problems(r, refs, expected)
            for k, v in problems.items():
                totals[k] += len(v)
            if any(problems.values()):
                failed.append({"seed": r["seed"], "dir": r["dir"], "kills": r["kills"], "rcs": r["rcs"],
                               "problems": problems})
            elif not args.keep:
                shutil.rmtree(r["dir"], ignore_errors=True)
        print(f"  {scenarios} scenarios, {kills} SIGKILLs, {dict(totals)} ({time.monotonic() - t0:.0f}s)", flush=True)
    print(json.dumps({"seed": seed, "scenarios": scenarios, "sigkills": kills, "duplicated": totals["duplicated"],
                      "lost": totals["lost"], "orphaned": totals["orphaned"], "other_problems": totals["other"],
                      "fill_plans": dict(fills), "failed_scenarios": failed,
                      "wall_seconds": round(time.monotonic() - t0)}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--keep", help="keep every scenario's directory here (default: only failed ones, in a temp dir)")
    sys.exit(asyncio.run(main(ap.parse_args())))
