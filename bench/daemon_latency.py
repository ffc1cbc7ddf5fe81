"""Live-path latency on loopback (issue 11, acceptance 6): quotes complete -> placeOrder at the server.

The loopback server runs in its own process; the daemon (in this process) runs INTRADAY snapshot jobs back to back,
each deciding four orders (a condor BAG, a VX future, VIXY, a VIX call: bench/loopback.py Churn), sent one after
the other as a job sends them. For every new order, on the server's clock: the time the server sent the last
answer to the order's leg-quote request (tickSnapshotEnd) -> the time the order's placeOrder arrived. Also shown:
the daemon's own part (leg quotes returned -> placeOrder called, in this process) and job start -> first order.

usage: python bench/daemon_latency.py [--orders 1000] [--gap 0.3]
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
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

DAY = dt.date(2024, 1, 10)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def summary(ms: list[float]) -> dict:
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 2), "p99_ms": round(pct(ms, 0.99), 2),
            "max_ms": round(max(ms), 2), "mean_ms": round(statistics.fmean(ms), 2)}


def server_side(transcript: list, job_starts: list[float]) -> tuple[list[float], list[float]]:
    """(last leg-quote answer -> placeOrder, job start -> the job's first placeOrder), in ms, server clock."""
    seen: set[tuple] = set()
    last_quote: dict = {}
    quotes_to_place, placed = [], []
    for ts, direction, client, name, fields in transcript:
        if direction == "out" and name == "TICK_SNAPSHOT_END":
            last_quote[client] = ts
        elif direction == "in" and name == "PLACE_ORDER":
            key = (client, fields[1])
            if key in seen:
                continue  # a price step of an order already placed
            seen.add(key)
            placed.append(ts)
            if client in last_quote:
                quotes_to_place.append((ts - last_quote[client]) * 1000)
    job_to_place = []
    for start in job_starts:
        first = next((t for t in placed if t >= start), None)
        if first is not None:
            job_to_place.append((first - start) * 1000)
    return quotes_to_place, job_to_place


async def main(args) -> dict:
    configure_logging(level="WARNING")
    srv = ServerProcess(now=SERVER_NOW)
    tmp = Path(tempfile.mkdtemp(prefix="alvh-latency-"))
    table = bench_table(srv.port, tmp / "state.sqlite")
    d = Daemon(RunConfig(daemon=table, risk=RISK), DaemonParams.model_validate(table),
               clock=ReplayClock(dt.datetime(2024, 1, 10, 10, 0, tzinfo=ET)), strategies=[Churn()])
    own: list[float] = []
    quoted: list[float] = []
    leg_quotes, place = d.md.leg_quotes, d.conn.ib.placeOrder

    async def timed_leg_quotes(insts):
        out = await leg_quotes(insts)
        quoted.append(time.perf_counter())
        return out

    def timed_place(contract, order):
        if quoted and not order.orderId:
            own.append((time.perf_counter() - quoted[-1]) * 1000)
        return place(contract, order)

    d.md.leg_quotes, d.conn.ib.placeOrder = timed_leg_quotes, timed_place
    try:
        assert await d._start()
        gc.collect()
        jobs = (args.orders + 3) // 4
        t0 = time.monotonic()
        starts = []
        for i in range(jobs):
            starts.append(time.time())
            at = dt.datetime(2024, 1, 10, 10, 0, tzinfo=ET) + dt.timedelta(seconds=i)
            await d.run_job(Job(DAY, f"hedge-{i:05d}", at, "snapshot", Phase.INTRADAY))
            await d.broker.wait_final([o.intent_id for o in d.broker.working_orders()], 10.0)
            await asyncio.sleep(args.gap)
        wall = time.monotonic() - t0
        transcript = await srv.acall("transcript")
        if args.debug:
            print(sorted({(t[1], t[3]) for t in transcript}))
    finally:
        await d.shutdown()
        srv.close()
    q2p, j2p = server_side(transcript, starts)
    return {"orders": len(q2p), "jobs": jobs, "gap_seconds": args.gap, "wall_seconds": round(wall, 1),
            "quotes_complete_to_placeOrder_at_server": summary(q2p),
            "daemon_part_leg_quotes_returned_to_placeOrder_call": summary(own),
            "job_start_to_first_placeOrder_at_server": summary(j2p)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=1000)
    ap.add_argument("--gap", type=float, default=0.3,
                    help="seconds between jobs (0.25 s refills the 40 msg/s pacer; real jobs are minutes apart)")
    ap.add_argument("--debug", action="store_true")
    print(json.dumps(asyncio.run(main(ap.parse_args())), indent=2))
