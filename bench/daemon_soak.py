"""Memory soak (issue 11, acceptance 5): the daemon's RSS over many simulated sessions must stay flat.

One daemon process (this one) stays connected to the loopback server (its own process) for --sessions trading
days. Each session: the server's clock moves to the day, four snapshot jobs (open, two intraday, close) each
trade four orders (bench/loopback.py Churn: condor BAG, VX, VIXY, VIX call, bought then sold), then the
end-of-day job (cancel leftovers, reconcile, summary, prune). RSS is read after each session (after a gc);
the slope is a least-squares fit over the sessions after --warmup.

usage: python bench/daemon_soak.py [--sessions 250] [--warmup 20] [--csv out.csv]
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

from loopback import RISK, Churn, ServerProcess, bench_table

from adapters.cli.logs import configure_logging
from adapters.live.daemon import Daemon
from adapters.live.scheduler import Job, ReplayClock, next_session
from config.daemon import DaemonParams
from config.settings import RunConfig
from engine.clock import ET
from engine.events import Phase

JOBS = (("open", dt.time(9, 31), Phase.OPEN), ("hedge-1100", dt.time(11, 0), Phase.INTRADAY),
        ("hedge-1300", dt.time(13, 0), Phase.INTRADAY), ("close", dt.time(15, 45), Phase.CLOSE))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def slope(ys: list[float]) -> float:
    n = len(ys)
    mx, my = (n - 1) / 2, sum(ys) / n
    return sum((x - mx) * (y - my) for x, y in enumerate(ys)) / sum((x - mx) ** 2 for x in range(n))


async def main(args) -> dict:
    configure_logging(level="WARNING")
    if args.trace:
        tracemalloc.start(8)
    day = dt.date(2024, 1, 10)
    srv = ServerProcess(now=dt.datetime.combine(day, dt.time(15, 0), tzinfo=dt.UTC))
    tmp = Path(tempfile.mkdtemp(prefix="alvh-soak-"))
    table = bench_table(srv.port, tmp / "state.sqlite", halt_poll_seconds=1.0)
    clock = ReplayClock(dt.datetime.combine(day, dt.time(9, 0), tzinfo=ET))
    d = Daemon(RunConfig(daemon=table, risk=RISK), DaemonParams.model_validate(table), clock=clock,
               strategies=[Churn()])
    rows, orders = [], 0
    t0 = time.monotonic()
    try:
        assert await d._start()
        for n in range(args.sessions):
            for name, at, phase in JOBS:
                when = dt.datetime.combine(day, at, tzinfo=ET)
                clock.set(when)
                await srv.acall("set_time", when.astimezone(dt.UTC))
                await d.run_job(Job(day, name, when, "snapshot", phase))
                await d.broker.wait_final([o.intent_id for o in d.broker.working_orders()], 15.0)
            eod = dt.datetime.combine(day, dt.time(16, 20), tzinfo=ET)
            clock.set(eod)
            await d.run_job(Job(day, "eod", eod, "eod"))
            orders = len(d.store.intent_ids())
            gc.collect()
            rows.append((n + 1, day.isoformat(), round(rss_mb(), 2), orders))
            if args.trace and n + 1 == args.warmup:
                base = tracemalloc.take_snapshot()
            if args.trace and n + 1 == args.sessions:
                for stat in tracemalloc.take_snapshot().compare_to(base, "lineno")[:args.trace]:
                    print("  ", stat)
            if (n + 1) % 25 == 0:
                print(f"  session {n + 1}: RSS {rows[-1][2]:.1f} MB, {orders} orders, "
                      f"{time.monotonic() - t0:.0f}s", flush=True)
            day = next_session(day + dt.timedelta(days=1))
        sizes = await srv.acall("sizes")
    finally:
        await d.shutdown()
        srv.close()
    if args.csv:
        Path(args.csv).write_text("session,date,rss_mb,orders\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    after = [r[2] for r in rows[args.warmup:]]
    return {"sessions": len(rows), "orders": orders, "rss_first_mb": rows[0][2],
            "rss_after_warmup_mb": rows[args.warmup][2] if len(rows) > args.warmup else None,
            "rss_last_mb": rows[-1][2], "slope_after_warmup_mb_per_session": round(slope(after), 4),
            "server_retained": sizes, "wall_seconds": round(time.monotonic() - t0)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=250)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--csv")
    ap.add_argument("--trace", type=int, default=0, help="print the N largest allocation growths after warm-up")
    print(json.dumps(asyncio.run(main(ap.parse_args())), indent=2))
