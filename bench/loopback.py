"""What the daemon benchmarks share: the loopback TWS server in its own process (so its work never shares the
daemon's interpreter), and a churning strategy that trades the same small book back and forth.

Not a benchmark itself; imported by daemon_latency.py, daemon_soak.py and daemon_reconnect.py.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing as mp
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]

from engine.events import MarketSnapshot
from engine.instruments import Equity, FutureContract, spx_option, vix_option
from engine.orders import OrderLeg
from engine.strategy import Strategy


def _serve(conn, kwargs: dict) -> None:
    from adapters.faketws import FakeTWS, FillAll, NeverFill

    async def main() -> None:
        kwargs.setdefault("transcript_limit", 400_000)
        policy = {"all": FillAll, "never": NeverFill}[kwargs.pop("fill", "all")]()
        srv = FakeTWS(fill_policy=policy, tick_interval=0, **kwargs)
        await srv.start()
        conn.send(srv.port)
        loop = asyncio.get_running_loop()
        while True:
            cmd, arg = await loop.run_in_executor(None, conn.recv)
            if cmd == "stop":
                break
            if cmd == "transcript":
                conn.send([(m.ts, m.direction, m.client_id, m.name, m.fields[:2]) for m in srv.transcript])
            elif cmd == "error":
                srv.send_error(arg)
                conn.send(None)
            elif cmd == "drop":
                srv.drop_replies(arg)
                conn.send(None)
            elif cmd == "set_time":
                srv.set_time(arg)
                conn.send(None)
            elif cmd == "sizes":
                conn.send(srv.retained_sizes())
            elif cmd == "positions":
                conn.send(srv.positions())
            elif cmd == "orders":
                conn.send({r.order_ref: (r.status, r.filled) for r in srv.book.orders.values()})
        await srv.aclose()

    asyncio.run(main())


class ServerProcess:
    """A FakeTWS in a child process; `call(cmd, arg)` runs one command there and returns its answer."""

    def __init__(self, **kwargs) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, kwargs), daemon=True)
        self.proc.start()
        self.port = self.conn.recv()

    def call(self, cmd: str, arg=None):
        self.conn.send((cmd, arg))
        return None if cmd == "stop" else self.conn.recv()

    async def acall(self, cmd: str, arg=None):
        return await asyncio.to_thread(self.call, cmd, arg)

    def close(self) -> None:
        self.call("stop")
        self.proc.join(10)


SERVER_NOW = dt.datetime(2024, 1, 10, 15, 0, tzinfo=dt.UTC)  # 10:00 ET: the server's pinned clock


class Churn(Strategy):
    """Every snapshot: one iron condor (BAG, SPXW about a week out), one VX future (the second month), 10 VIXY
    and one VIX call, bought at one snapshot and sold at the next - four orders a snapshot, a book that stays
    small and instruments that never expire under it."""

    def __init__(self) -> None:
        self.book = "churn"
        self.n = 0

    def on_snapshot(self, snap: MarketSnapshot, ctx) -> None:
        s = 1 if self.n % 2 == 0 else -1
        self.n += 1
        if s > 0:
            expiry = snap.date + dt.timedelta(days=7)
            while expiry.weekday() >= 5:
                expiry -= dt.timedelta(days=1)
            self._held = (expiry, sorted(snap.quotes.vx)[1], round(snap.quotes.spx / 50) * 50)
        weekly, vx, k = self._held  # the next snapshot sells what this one bought
        legs = [OrderLeg(spx_option(weekly, k + dk, r, "SPXW"), q * s)
                for dk, r, q in ((-150, "P", 1), (-100, "P", -1), (100, "C", -1), (150, "C", 1))]
        ctx.submit(legs, 1, purpose="churn")
        ctx.submit([OrderLeg(FutureContract("VX", vx), s)], 1, purpose="churn")
        ctx.submit([OrderLeg(Equity("VIXY"), s)], 10, purpose="churn")
        ctx.submit([OrderLeg(vix_option(vx, 20, "C"), s)], 1, purpose="churn")

    def state(self) -> dict:
        return {"n": self.n}

    def restore(self, state: dict) -> None:
        self.n = int(state.get("n", 0))


def bench_table(port: int, state: Path, **over) -> dict:
    from daemon_drill import daemon_table

    table = daemon_table(port, state, ready_wait_seconds=30, **over)
    table["strategy_factory"] = None
    return table


RISK = {"max_orders_per_day": 1_000_000, "max_contracts_per_order": 50, "max_hedge_notional": 1e9}
