"""Recovery drill (issue 11, acceptance 3): 100 cycles of IB connectivity lost (1100) -> restored, data kept (1102)
with working orders, a reconcile failure injected in every fifth cycle (the server stops answering reqPositions
until after the first failed attempt): trading must resume every time, with no duplicate order.

usage: python bench/daemon_reconnect.py [--cycles 100] [--every 5]
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import tempfile
import time
from pathlib import Path

from loopback import RISK, SERVER_NOW, Churn, ServerProcess, bench_table

from adapters.cli.logs import configure_logging
from adapters.live.daemon import Daemon
from adapters.live.scheduler import Job, ReplayClock
from config.daemon import DaemonParams
from config.settings import RunConfig
from engine.clock import ET
from engine.events import Phase


async def until(pred, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.01)
    return True


async def main(args) -> dict:
    configure_logging(level="WARNING")
    srv = ServerProcess(now=SERVER_NOW, fill="never")
    tmp = Path(tempfile.mkdtemp(prefix="alvh-reconnect-"))
    table = bench_table(srv.port, tmp / "state.sqlite", orders={"timeout_seconds": 3600},
                        ib={"request_timeout": 1.0, "reconnect_initial": 0.2, "reconnect_max": 1.0})
    d = Daemon(RunConfig(daemon=table, risk=RISK), DaemonParams.model_validate(table),
               clock=ReplayClock(dt.datetime(2024, 1, 10, 10, 0, tzinfo=ET)), strategies=[Churn()])
    resumed, failed_first, times = 0, 0, []
    try:
        assert await d._start()
        await d.run_job(Job(dt.date(2024, 1, 10), "open", dt.datetime(2024, 1, 10, 9, 31, tzinfo=ET), "snapshot",
                            Phase.OPEN))
        working = len(d.broker.working_orders())
        for n in range(1, args.cycles + 1):
            await srv.acall("error", 1100)
            assert await until(lambda: not d.broker.ready, 10), f"cycle {n}: 1100 did not pause trading"
            inject = n % args.every == 0
            if inject:
                await srv.acall("drop", ["POSITION_END"])
                failures = d.conn.failures
            t0 = time.monotonic()
            await srv.acall("error", 1102)
            if inject:  # let one reconcile time out, then answer again
                assert await until(lambda f=failures: d.conn.failures > f, 10), f"cycle {n}: no failed reconcile"
                failed_first += 1
                await srv.acall("drop", None)
            if await until(lambda: d.broker.ready and d.conn.is_up, 30):
                resumed += 1
                times.append(time.monotonic() - t0)
        orders = await srv.acall("orders")
        still_working = len(d.broker.working_orders())
    finally:
        await d.shutdown()
        srv.close()
    injected = [t for i, t in enumerate(times, 1) if i % args.every == 0]
    plain = [t for i, t in enumerate(times, 1) if i % args.every]
    return {"cycles": args.cycles, "resumed": resumed, "reconcile_failures_injected": failed_first,
            "orders_at_ib": len(orders), "working_before": working, "working_after": still_working,
            "resume_seconds_plain_median": round(statistics.median(plain), 3) if plain else None,
            "resume_seconds_after_a_failure_median": round(statistics.median(injected), 3) if injected else None,
            "resume_seconds_max": round(max(times), 3) if times else None}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--every", type=int, default=5)
    print(json.dumps(asyncio.run(main(ap.parse_args())), indent=2))
