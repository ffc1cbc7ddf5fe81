"""The daemon fault drills' shared pieces: deliberately simple, deterministic strategies (so a failure points at
the daemon's plumbing - journal, reconcile, dedupe - not at strategy logic), the drill config, and readers of
the loopback server's and the store's view of the outcome.

At the OPEN snapshot the "condor" book sends a 4-leg SPXW iron condor (BAG) and the "hedge" book buys VX
futures and VIXY; at the CLOSE snapshot the hedge rebalances (one more VX, half the VIXY). The daemon
subprocess imports these strategies through `daemon.strategy_factory = "daemon_drill:drill_strategies"`.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import ClassVar

from loopback_client import until as wait_until

from adapters.faketws import FakeTWS, NeverFill
from adapters.live.daemon import Daemon
from adapters.live.scheduler import Job, ReplayClock
from adapters.live.state import StateStore
from config.daemon import DaemonParams
from config.settings import RunConfig
from engine.clock import ET
from engine.events import MarketSnapshot, Phase
from engine.instruments import Equity, FutureContract, spx_option
from engine.ledger import Ledger
from engine.orders import OrderLeg
from engine.strategy import Strategy

ROOT = Path(__file__).resolve().parents[2]
# the `alvh` console script (adapters.cli.main:main)
ALVH = [sys.executable, "-c", "import sys; from adapters.cli.main import main; sys.exit(main(sys.argv[1:]))"]
DAY = dt.date(2024, 1, 10)                                      # a Wednesday
SERVER_NOW = dt.datetime(2024, 1, 10, 15, 0, tzinfo=dt.UTC)  # 10:00 ET: the server's pinned clock
WEEKLY = dt.date(2024, 1, 17)


# ---- drill strategies (also imported by the daemon subprocess: daemon.strategy_factory) -------
class DrillCondor(Strategy):
    def __init__(self) -> None:
        self.book = "condor"
        self.entered: list[str] = []
        self.intents: list[str] = []

    def on_snapshot(self, snap: MarketSnapshot, ctx) -> None:
        if snap.phase is not Phase.OPEN or snap.date.isoformat() in self.entered:
            return
        k = round(snap.quotes.spx / 50) * 50
        legs = [OrderLeg(spx_option(WEEKLY, k + dk, r, "SPXW"), s)
                for dk, r, s in ((-150, "P", 1), (-100, "P", -1), (100, "C", -1), (150, "C", 1))]
        self.intents.append(ctx.submit(legs, 2, purpose="open"))
        self.entered.append(snap.date.isoformat())

    def state(self) -> dict:
        return {"entered": self.entered, "intents": self.intents}

    def restore(self, state: dict) -> None:
        self.entered = list(state.get("entered", []))
        self.intents = list(state.get("intents", []))


class DrillHedge(Strategy):
    """OPEN: +2 VX (2nd month), +100 VIXY. CLOSE: rebalance to 3 VX and 50 VIXY."""

    TARGETS: ClassVar[dict] = {Phase.OPEN: (2, 100), Phase.CLOSE: (3, 50)}

    def __init__(self) -> None:
        self.book = "hedge"
        self.done: list[str] = []
        self.held: dict[str, int] = {}

    def on_snapshot(self, snap: MarketSnapshot, ctx) -> None:
        key = f"{snap.date}:{snap.phase.value}"
        if snap.phase not in self.TARGETS or key in self.done:
            return
        self.done.append(key)
        vx_expiry = sorted(snap.quotes.vx)[1]
        n_vx, n_etp = self.TARGETS[snap.phase]
        for inst, target in ((FutureContract("VX", vx_expiry), n_vx), (Equity("VIXY"), n_etp)):
            diff = target - self.held.get(inst.key, 0)
            if diff:
                ctx.submit([OrderLeg(inst, 1 if diff > 0 else -1)], abs(diff),
                           purpose="hedge-on" if snap.phase is Phase.OPEN else "hedge-rebalance")
                self.held[inst.key] = target

    def state(self) -> dict:
        return {"done": self.done, "held": self.held}

    def restore(self, state: dict) -> None:
        self.done = list(state.get("done", []))
        self.held = dict(state.get("held", {}))


def drill_strategies(cfg) -> list[Strategy]:
    return [DrillCondor(), DrillHedge()]


EXPECTED_POSITIONS = {"VIXY": 50, "VX": 3, "SPXW": {-150: 2, -100: -2, 100: -2, 150: 2}}


def expected_keys(spx: float = 5000.0) -> dict[str, int]:
    k = round(spx / 50) * 50
    out = {spx_option(WEEKLY, k + dk, r, "SPXW").key: q
           for (dk, q), r in zip(EXPECTED_POSITIONS["SPXW"].items(), "PPCC")}
    out["VIXY"] = 50
    return out


# ---- helpers ----------------------------------------------------------------------------------
def daemon_table(port: int, state: Path, **over) -> dict:
    d = {
        "state_path": str(state),
        "strategy_factory": "daemon_drill:drill_strategies",
        "halt_poll_seconds": 0.2,
        "ready_wait_seconds": 20,
        "ib": {"host": "127.0.0.1", "port": port, "client_id": 11, "connect_timeout": 3, "request_timeout": 5,
               "reconnect_initial": 0.1, "reconnect_max": 0.5},
        "orders": {"improve_steps": 2, "step_seconds": 0.05, "timeout_seconds": 5, "commission_wait_seconds": 0.05,
                   "send_deadline_seconds": 20},
        "market_data": {"mode": "snapshot", "indices": [], "vx_months": 3, "etps": ["VIXY"]},
        "schedule": {"hedge_every_minutes": 0, "heartbeat_seconds": 1},
        "replay": {"server": "external", "use_panel": False},
    }
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            d[k] = {**d[k], **v}
        else:
            d[k] = v
    return d


def write_config(path: Path, table: dict, risk: dict | None = None) -> Path:
    def toml_value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(toml_value(x) for x in v) + "]"
        return repr(v)

    lines = ['name = "drill"', "[run]", "initial_equity = 1000000"]
    if risk:
        lines += ["[risk]"] + [f"{k} = {toml_value(v)}" for k, v in risk.items()]
    lines.append("[daemon]")
    nested = {k: v for k, v in table.items() if isinstance(v, dict)}
    lines += [f"{k} = {toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    for name, sub in nested.items():
        lines.append(f"[daemon.{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in sub.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def server_orders_by_ref(srv: FakeTWS) -> dict[str, set]:
    out: dict[str, set] = {}
    for rec in srv.book.orders.values():
        out.setdefault(rec.order_ref, set()).add((rec.client_id, rec.order_id))
    return out


def server_positions(srv: FakeTWS) -> dict[str, int]:
    out = {}
    for con_id, qty in srv.positions().items():
        spec = srv.universe.get(con_id)
        if spec.sec_type == "OPT":
            key = spx_option(spec.expiry, spec.strike, spec.right, spec.trading_class).key
        elif spec.sec_type == "FUT":
            key = "VX"
        else:
            key = spec.symbol
        out[key] = int(qty)
    return out


def server_filled(srv: FakeTWS) -> dict[str, float]:
    """Units IB filled per intent (orderRef): combo units for a BAG, contracts/shares for a single leg."""
    out: dict[str, float] = {}
    for rec in srv.book.orders.values():
        out[rec.order_ref] = out.get(rec.order_ref, 0.0) + rec.filled
    return out


def store_summary(path: Path) -> dict:
    st = StateStore(path)
    try:
        intents = st.intents()
        led = Ledger(1)
        st.load_ledger(led)
        pos = {}
        for key, q in led.net_positions().items():
            pos["VX" if key.startswith("VX ") else key] = q
        return {"states": {r.intent_id: r.state for r in intents},
                "quantities": {r.intent_id: r.quantity for r in intents},
                "filled": {r.intent_id: st.filled_units(r.intent_id) for r in intents}, "ledger": pos,
                "open": [r.intent_id for r in st.intents(open_only=True)], "halted": st.halted()}
    finally:
        st.close()


async def start_server(**kw) -> FakeTWS:
    kw.setdefault("now", SERVER_NOW)
    srv = FakeTWS(**kw)
    await srv.start()
    return srv


def make_daemon(srv: FakeTWS, tmp_path: Path, *, allow_live=False, risk: dict | None = None, strategies=None,
                **over) -> Daemon:
    table = daemon_table(srv.port, tmp_path / "state.sqlite", **over)
    cfg = RunConfig(daemon=table, risk=risk or {})
    params = DaemonParams.model_validate(table)
    clock = ReplayClock(dt.datetime(2024, 1, 10, 9, 0, tzinfo=ET))
    return Daemon(cfg, params, clock=clock, allow_live=allow_live,
                  strategies=strategies if strategies is not None else drill_strategies(cfg))


def job(name: str, phase: Phase | None, hh: int, mm: int) -> Job:
    return Job(DAY, name, dt.datetime(2024, 1, 10, hh, mm, tzinfo=ET), "snapshot" if phase else "eod", phase)


async def until(pred, timeout: float = 10.0, what: str = "condition"):
    await wait_until(pred, timeout, what)


def run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests" / "integration"), str(ROOT), env.get("PYTHONPATH", "")])
    env.pop("ALVH_CRASH_AT", None)
    env.pop("ALVH_CRASH_TRACE", None)
    if extra:
        env.update(extra)
    return env


async def daemon_run(cfg: Path, env: dict, kill_after: float | None = None, log: Path | None = None) -> int:
    """`alvh run --paper-replay DAY` against the drill's external server, SIGKILLed after `kill_after` s."""
    err = open(log, "ab") if log is not None else asyncio.subprocess.DEVNULL  # noqa: SIM115, ASYNC230 - closed below
    proc = await asyncio.create_subprocess_exec(
        *ALVH, "run", "--config", str(cfg), "--paper-replay", DAY.isoformat(), "--state", str(cfg.parent / "state.sqlite"),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=err)
    if log is not None:
        err.close()
    if kill_after is not None:
        try:
            await asyncio.wait_for(proc.wait(), kill_after)
        except TimeoutError:
            proc.kill()  # SIGKILL at a random moment
    return await asyncio.wait_for(proc.wait(), 90)




# ---- randomized fault scenarios (the default test runs a few, bench/daemon_sigkill.py 200 kills) ---------
TIMEOUT_SECONDS = 8.0  # an order's walk + wait: longer than the slowest planned fill, so every order fills


class Filler:
    """Fills the server's working orders on a seeded plan - at once, 0.1-4 s later, or part now and the rest
    later - whether the daemon is alive at that moment or not."""

    def __init__(self, srv: FakeTWS, rng: random.Random) -> None:
        self.srv, self.rng = srv, rng
        self.plans: dict[str, list[tuple[float, str]]] = {}   # orderRef -> [(due, "part"|"rest")]
        self.kinds: dict[str, str] = {}

    def _plan(self, rec, now: float) -> list[tuple[float, str]]:
        kind = self.rng.choice(["immediate", "slow", "partial"] if rec.total_qty >= 2 else ["immediate", "slow"])
        self.kinds[rec.order_ref] = kind
        if kind == "immediate":
            return [(now, "rest")]
        if kind == "slow":
            return [(now + self.rng.uniform(0.1, 4.0), "rest")]
        first = now + self.rng.uniform(0.0, 2.0)
        return [(first, "part"), (first + self.rng.uniform(0.1, 2.0), "rest")]

    async def run(self) -> None:
        while True:
            now = time.monotonic()
            for rec in list(self.srv.book.working_orders()):
                plan = self.plans.setdefault(rec.order_ref, self._plan(rec, now))
                while plan and plan[0][0] <= now and rec.is_working:
                    _, what = plan.pop(0)
                    qty = None if what == "rest" else max(1.0, float(int(rec.remaining // 2)))
                    self.srv.fill(order_ref=rec.order_ref, qty=qty)
            await asyncio.sleep(0.02)


async def fault_scenario(tmp: Path, seed: int, sem: asyncio.Semaphore) -> dict:
    """One fresh server and store: 1-3 SIGKILLs (at a random moment, or at the k-th crash point the process
    reaches), fills on a seeded plan, then a clean run to the end of the day."""
    rng = random.Random(seed)
    kills = [rng.uniform(0.3, 7.0) if rng.random() < 0.5 else f"any:{rng.randint(1, 40)}"
             for _ in range(rng.randint(1, 3))]
    async with sem:
        srv = await start_server(fill_policy=NeverFill())
        filler = Filler(srv, rng)
        task = asyncio.ensure_future(filler.run())
        tmp.mkdir(parents=True, exist_ok=True)
        cfg = write_config(tmp / "drill.toml", daemon_table(srv.port, tmp / "state.sqlite",
                                                            orders={"timeout_seconds": TIMEOUT_SECONDS}))
        crash_log, log = tmp / "crashes.log", tmp / "daemon.log"
        try:
            rcs = []
            for k in kills:
                if isinstance(k, float):
                    rcs.append(await daemon_run(cfg, env(), kill_after=k, log=log))
                else:
                    rcs.append(await daemon_run(cfg, env({"ALVH_CRASH_AT": k, "ALVH_CRASH_LOG": str(crash_log)}),
                                                log=log))
            final_rc = await daemon_run(cfg, env(), log=log)
            return {"seed": seed, "kills": kills, "rcs": rcs, "final_rc": final_rc, "dir": str(tmp),
                    "points": crash_log.read_text().split() if crash_log.exists() else [],
                    "fills": dict(filler.kinds), "orders": server_orders_by_ref(srv),
                    "positions": server_positions(srv), "server_filled": server_filled(srv),
                    "server_working": [r.order_ref for r in srv.book.working_orders()],
                    "store": store_summary(tmp / "state.sqlite")}
        finally:
            task.cancel()
            await srv.aclose()


def scenario_problems(r: dict, expected_refs: set[str], expected_positions: dict[str, int]) -> dict[str, list]:
    """Duplicated, lost and orphaned orders and every other disagreement between server, ledger and plan."""
    st = r["store"]
    out = {"duplicated": [ref for ref, ids in r["orders"].items() if len(ids) > 1] + sorted(set(r["orders"]) -
                                                                                             expected_refs),
           "lost": sorted(expected_refs - set(r["orders"])),
           "orphaned": r["server_working"] + st["open"],
           "other": []}
    if r["final_rc"] != 0:
        out["other"].append(f"final run exit {r['final_rc']}")
    if r["positions"] != expected_positions:
        out["other"].append(f"server positions {r['positions']}")
    if st["ledger"] != r["positions"]:
        out["other"].append(f"ledger {st['ledger']} != server {r['positions']}")
    if set(st["states"].values()) != {"filled"}:
        out["other"].append(f"journal states {st['states']}")
    booked = {ref: st["filled"].get(ref, 0) for ref in r["server_filled"]}
    if booked != {ref: int(q) for ref, q in r["server_filled"].items()}:
        out["other"].append(f"booked {booked} != filled at IB {r['server_filled']}")
    return out


def kills_done(r: dict) -> int:
    """SIGKILLs that really happened (a crash point beyond the run's last one is never reached)."""
    return sum(1 for rc in r["rcs"] if rc == -9)


def fault_seed() -> int:
    """ALVH_FAULT_SEED reproduces a run; otherwise a fresh seed, printed by the caller."""
    return int(os.environ.get("ALVH_FAULT_SEED") or random.SystemRandom().randrange(1, 2**31))


async def start_refused(srv: FakeTWS, tmp: Path, error: type[Exception], **over) -> tuple[str, list]:
    """Start a daemon that must refuse this login or store: (its one sentence, the orders the server saw)."""
    import pytest

    d = make_daemon(srv, tmp, **over)
    try:
        with pytest.raises(error) as e:
            await d._start()
        return str(e.value), srv.received("placeOrder")
    finally:
        await d.shutdown()


async def run_jobs(d: Daemon, *jobs: Job) -> None:
    """Run these jobs in turn on the daemon's clock, each until its orders are done (filled or cancelled)."""
    for j in jobs:
        d.clock.set(j.at)
        await d.run_job(j)
        await until(lambda: not d.broker.working_orders(), 20, f"the {j.name} job's orders done")
