"""Fault tests for the daemon against the loopback FakeTWS (127.0.0.1 only), acceptance 2:

(a) the connection drops while orders are working -> reconnect, reconcile, no duplicate order, each
    fill recorded once (also: fills that happen while disconnected, and the nightly reset);
(b) the daemon process is SIGKILLed at 20+ points across an entry and a rebalance, then restarted:
    every run ends with the intended positions, zero duplicate and zero lost orders;
(c) 1100/1101/1102 pause and resume trading; 326 (client id in use) is survived;
(d) a non-DU account is refused.

The drill strategies below are deliberately simple and deterministic, so every failure points at
the daemon's plumbing (journal, reconcile, dedupe), not at strategy logic: at the OPEN snapshot the
"condor" book sends a 4-leg SPXW iron condor (BAG) and the "hedge" book buys VX futures and VIXY; at
the CLOSE snapshot the hedge rebalances (one more VX, half the VIXY).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import ClassVar

import pytest

pytest.importorskip("ib_async")

from adapters.faketws import FakeTWS, NeverFill
from adapters.live.daemon import Daemon, DaemonParams, LiveAccountRefused, ReplayClock
from adapters.live.scheduler import Job
from adapters.live.state import StateStore
from config.settings import RunConfig
from engine.clock import ET
from engine.events import MarketSnapshot, Phase
from engine.instruments import Equity, FutureContract, spx_option
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
        "strategy_factory": "test_daemon_faults:drill_strategies",
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


def write_config(path: Path, table: dict) -> Path:
    def toml_value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(toml_value(x) for x in v) + "]"
        return repr(v)

    lines = ['name = "drill"', "[run]", "initial_equity = 1000000", "[daemon]"]
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


def store_summary(path: Path) -> dict:
    st = StateStore(path)
    try:
        intents = st.intents()
        fills = {r.intent_id: st.filled_units(r.intent_id) for r in intents}
        from engine.ledger import Ledger

        led = Ledger(1)
        st.load_ledger(led)
        pos = {}
        for key, q in led.net_positions().items():
            pos["VX" if key.startswith("VX ") else key] = q
        dup_exec = st.db.execute("SELECT COUNT(*) - COUNT(DISTINCT exec_id) FROM executions").fetchone()[0]
        return {"states": {r.intent_id: r.state for r in intents}, "quantities": {r.intent_id: r.quantity for r in intents},
                "filled": fills, "ledger": pos, "dup_exec": dup_exec}
    finally:
        st.close()


async def start_server(**kw) -> FakeTWS:
    kw.setdefault("now", SERVER_NOW)
    srv = FakeTWS(**kw)
    await srv.start()
    return srv


def make_daemon(srv: FakeTWS, tmp_path: Path, *, allow_live=False, **over) -> Daemon:
    table = daemon_table(srv.port, tmp_path / "state.sqlite", **over)
    cfg = RunConfig(daemon=table)
    params = DaemonParams.model_validate(table)
    clock = ReplayClock(dt.datetime(2024, 1, 10, 9, 0, tzinfo=ET))
    return Daemon(cfg, params, clock=clock, allow_live=allow_live, strategies=drill_strategies(cfg))


def job(name: str, phase: Phase | None, hh: int, mm: int) -> Job:
    return Job(DAY, name, dt.datetime(2024, 1, 10, hh, mm, tzinfo=ET), "snapshot" if phase else "eod", phase)


async def until(pred, timeout: float = 10.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


# ---- (a) connection dropped while orders are working -------------------------------------------
def test_drop_while_working_reconnects_without_duplicates_and_records_fills_once(tmp_path):
    async def go():
        srv = await start_server(fill_policy=NeverFill())
        d = make_daemon(srv, tmp_path, orders={"timeout_seconds": 30})
        try:
            assert await d._start()
            await d.run_job(job("open", Phase.OPEN, 9, 30))
            await until(lambda: len(srv.book.working_orders()) == 3, what="3 working orders")
            n_connects = d.conn.connects
            srv.drop_connections()
            await until(lambda: d.conn.connects > n_connects and d.broker.ready, what="reconnect + reconcile")
            # fill one order while the daemon is connected again, one while it is disconnected
            srv.fill(order_ref=d.strategies[0].intents[0])
            srv.drop_connections()
            vx_ref = next(r.order_ref for r in srv.book.working_orders() if r.spec is not None and r.spec.sec_type == "FUT")
            srv.fill(order_ref=vx_ref)
            await until(lambda: d.conn.connects > n_connects + 1 and d.broker.ready, what="second reconnect")
            etp_ref = next(r.order_ref for r in srv.book.working_orders())
            srv.fill(order_ref=etp_ref)
            await until(lambda: all(s == "filled" for s in store_summary(tmp_path / "state.sqlite")["states"].values()),
                        what="all intents filled")
            refs = server_orders_by_ref(srv)
            assert len(refs) == 3 and all(len(ids) == 1 for ids in refs.values()), refs   # no duplicate order
            s = store_summary(tmp_path / "state.sqlite")
            assert s["filled"] == s["quantities"] and s["dup_exec"] == 0                   # each fill once
            assert d.ledger.net_positions() == d.broker.positions()
            assert not d.mismatch
        finally:
            await d.shutdown()
            await srv.aclose()

    run(go())


def test_nightly_reset_is_survived(tmp_path):
    async def go():
        srv = await start_server(fill_policy=NeverFill())
        d = make_daemon(srv, tmp_path, orders={"timeout_seconds": 30})
        try:
            assert await d._start()
            await d.run_job(job("open", Phase.OPEN, 9, 30))
            await until(lambda: len(srv.book.working_orders()) == 3, what="working orders")
            n = d.conn.connects
            srv.daily_reset(seconds=0.5)
            await until(lambda: d.conn.connects > n and d.broker.ready, what="reconnect after the reset")
            for rec in list(srv.book.working_orders()):
                srv.fill(order_ref=rec.order_ref)
            await until(lambda: not d.broker.working_orders(), what="fills after the reset")
            assert all(len(v) == 1 for v in server_orders_by_ref(srv).values())
            assert d.ledger.net_positions() == d.broker.positions()
        finally:
            await d.shutdown()
            await srv.aclose()

    run(go())


# ---- (c) 1100 / 1101 / 1102 and 326 ----------------------------------------------------------
def test_1100_pauses_and_1102_or_1101_resume_after_reconcile(tmp_path):
    async def go():
        srv = await start_server()
        d = make_daemon(srv, tmp_path)
        try:
            assert await d._start()
            await d.run_job(job("open", Phase.OPEN, 9, 30))
            await until(lambda: not d.broker.working_orders(), what="the open's orders filled")
            subs = d.md.subscribed
            n_orders = len(srv.book.orders)
            srv.send_error(1100)
            await until(lambda: not d.broker.ready, what="trading paused on 1100")
            # a decision while IB is unreachable: journaled, not sent
            with d.store.transaction():
                d.broker.submit(_vixy_order("hedge-20240110-hedge-on-during-1100"))
            flush = asyncio.ensure_future(d.broker.flush())
            await asyncio.sleep(0.3)
            assert len(srv.book.orders) == n_orders
            assert d.store.intent("hedge-20240110-hedge-on-during-1100").state == "pending"
            srv.send_error(1102)
            await until(lambda: d.broker.ready, what="resumed on 1102")
            await asyncio.wait_for(flush, 10)
            await until(lambda: d.store.intent("hedge-20240110-hedge-on-during-1100").state == "filled", what="sent+filled")
            assert subs and d.conn.state == "up"
            assert d.md.subscriptions == 1          # 1102: data kept, no resubscription
            # 1101: data lost -> market data resubscribed and a reconcile before trading again
            srv.send_error(1100)
            await until(lambda: not d.broker.ready, what="paused again")
            srv.send_error(1101)
            await until(lambda: d.broker.ready, what="resumed on 1101")
            assert d.md.subscriptions == 2
            n_reconciles = len(srv.received("reqPositions"))
            assert n_reconciles >= 3  # start, 1102, 1101
            # 1100 arriving while the 1101 reconcile runs keeps trading paused until the next 1102
            srv.send_error(1100)
            await until(lambda: not d.broker.ready, what="paused a third time")
            srv.send_error(1101)
            srv.send_error(1100)
            await asyncio.sleep(0.5)
            assert not d.broker.ready and not d.conn.is_up
            srv.send_error(1102)
            await until(lambda: d.broker.ready and d.conn.is_up, what="resumed after the last 1102")
        finally:
            await d.shutdown()
            await srv.aclose()

    run(go())


def _vixy_order(intent: str):
    from engine.orders import OrderRequest

    return OrderRequest(intent, "hedge", (OrderLeg(Equity("VIXY"), 1),), 10, None, "hedge-on")


def test_client_id_in_use_326_falls_back_or_backs_off(tmp_path):
    async def go():
        srv = await start_server()
        try:
            # the configured id is taken (326): the next id in client_id_fallbacks is used
            srv.reject_client_id(True, client_ids=[11])
            d = make_daemon(srv, tmp_path, ib={"client_id_fallbacks": [12]})
            assert await d._start()
            assert d.conn.client_id == 12
            await d.shutdown()
            # every id taken for a while: capped backoff until TWS lets go
            srv.reject_client_id(True)
            d2 = make_daemon(srv, tmp_path / "b")
            (tmp_path / "b").mkdir(exist_ok=True)
            task = asyncio.ensure_future(d2._start())
            await asyncio.sleep(1.0)
            assert not task.done() and d2.conn.client_id is None
            srv.reject_client_id(False)
            assert await asyncio.wait_for(task, 10)
            assert d2.conn.client_id == 11
            await d2.shutdown()
        finally:
            await srv.aclose()

    run(go())


# ---- (d) a non-DU account is refused -----------------------------------------------------------
def test_live_account_is_refused_unless_both_switches(tmp_path):
    async def go():
        srv = await start_server(account="U7654321")
        try:
            d = make_daemon(srv, tmp_path)
            with pytest.raises(LiveAccountRefused):
                await d._start()
            await d.shutdown()
            assert d.exit_code == 2 and not srv.book.orders
            d = make_daemon(srv, tmp_path / "x", allow_live=True)      # flag without the config switch
            (tmp_path / "x").mkdir(exist_ok=True)
            with pytest.raises(LiveAccountRefused):
                await d._start()
            await d.shutdown()
            (tmp_path / "y").mkdir(exist_ok=True)   # both switches: allowed
            table = daemon_table(srv.port, tmp_path / "y" / "state.sqlite", allow_live=True)
            d = Daemon(RunConfig(daemon=table), DaemonParams.model_validate(table), allow_live=True,
                       clock=ReplayClock(dt.datetime(2024, 1, 10, 9, 0, tzinfo=ET)), strategies=drill_strategies(None))
            assert await d._start()
            await d.shutdown()
        finally:
            await srv.aclose()

    run(go())


def test_cli_refuses_live_account_and_logs_json(tmp_path):
    async def go():
        srv = await start_server(account="U7654321")
        try:
            cfg = write_config(tmp_path / "drill.toml", daemon_table(srv.port, tmp_path / "state.sqlite"))
            proc = await asyncio.create_subprocess_exec(
                *ALVH, "run", "--config", str(cfg), cwd=ROOT, env=_env(),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            _, err = await asyncio.wait_for(proc.communicate(), 60)
            return proc.returncode, err.decode()
        finally:
            await srv.aclose()

    rc, err = run(go(), 90)
    assert rc == 1 and "refusing account U7****21" in err and "U7654321" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[-1].startswith("alvh: error: refusing account")      # the one-sentence user error
    events = [json.loads(ln)["event"] for ln in lines[:-1]]           # every log line before it is JSON
    assert "connected" in events and "account_refused" in events


# ---- halt / SIGTERM with the real CLI --------------------------------------------------------
def test_cli_run_halt_status_and_sigterm(tmp_path):
    async def go():
        srv = await start_server(now=None, fill_policy=NeverFill())
        state = tmp_path / "state.sqlite"
        try:
            cfg = write_config(tmp_path / "drill.toml", daemon_table(srv.port, state))
            proc = await asyncio.create_subprocess_exec(
                *ALVH, "run", "--config", str(cfg), cwd=ROOT, env=_env(),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            seen = []

            async def read_until(event):
                while True:
                    line = await asyncio.wait_for(proc.stderr.readline(), 30)
                    assert line, f"daemon exited before {event}: {seen[-5:]}"
                    if not line.startswith(b"{"):
                        continue  # e.g. a library warning; the JSON-only check is the refused-account test
                    rec = json.loads(line)
                    seen.append(rec)
                    if rec["event"] == event:
                        return rec

            await read_until("daemon_running")
            st = StateStore(state)
            st.set_halted("test kill switch")
            st.close()
            rec = await read_until("halted")
            assert rec["reason"] == "test kill switch"
            status = await asyncio.create_subprocess_exec(
                *ALVH, "status", "--config", str(cfg), cwd=ROOT, env=_env(),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            sout, _ = await asyncio.wait_for(status.communicate(), 60)
            proc.send_signal(signal.SIGTERM)
            await read_until("stopped")
            rc = await asyncio.wait_for(proc.wait(), 30)
            return rc, sout.decode(), seen
        finally:
            await srv.aclose()

    rc, status, seen = run(go(), 120)
    assert rc == 0
    assert "halted     YES: test kill switch" in status and "account    DU*****67" in status
    assert "heartbeat" in status
    leaked = [r for r in seen if "DU1234567" in json.dumps(r)]
    assert not leaked, leaked[:3]


# ---- (b) SIGKILL at 20+ points across an entry and a rebalance ---------------------------------
def _env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests" / "integration"), str(ROOT), env.get("PYTHONPATH", "")])
    env.pop("ALVH_CRASH_AT", None)
    env.pop("ALVH_CRASH_TRACE", None)
    if extra:
        env.update(extra)
    return env


async def _daemon_run(cfg: Path, env: dict, kill_after: float | None = None) -> int:
    proc = await asyncio.create_subprocess_exec(
        *ALVH, "run", "--config", str(cfg), "--paper-replay", DAY.isoformat(),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    if kill_after is not None:
        try:
            await asyncio.wait_for(proc.wait(), kill_after)
        except TimeoutError:
            proc.kill()  # SIGKILL at a random moment
    return await asyncio.wait_for(proc.wait(), 90)


async def _scenario(tmp: Path, crashes: list, results: list, sem: asyncio.Semaphore) -> None:
    """One fresh server + store; a run crashing at each point in turn, then a clean run to the end."""
    async with sem:
        srv = await start_server()
        tmp.mkdir(parents=True, exist_ok=True)
        cfg = write_config(tmp / "drill.toml", daemon_table(srv.port, tmp / "state.sqlite"))
        log = tmp / "crashes.log"
        try:
            rcs = []
            for point in crashes:
                if isinstance(point, float):
                    rcs.append(await _daemon_run(cfg, _env(), kill_after=point))
                else:
                    rcs.append(await _daemon_run(cfg, _env({"ALVH_CRASH_AT": point, "ALVH_CRASH_LOG": str(log)})))
            final_rc = await _daemon_run(cfg, _env())
            hit = log.read_text().split() if log.exists() else []
            results.append({"crashes": crashes, "hit": hit, "rcs": rcs, "final_rc": final_rc,
                            "orders": server_orders_by_ref(srv), "positions": server_positions(srv),
                            "store": store_summary(tmp / "state.sqlite")})
        finally:
            await srv.aclose()


def test_sigkill_at_20_plus_points_then_restart(tmp_path):
    async def go():
        # 1) a clean run, tracing every crash point it passes
        trace = tmp_path / "trace.log"
        srv = await start_server()
        (tmp_path / "ref").mkdir()
        cfg = write_config(tmp_path / "ref" / "drill.toml", daemon_table(srv.port, tmp_path / "ref" / "state.sqlite"))
        rc = await _daemon_run(cfg, _env({"ALVH_CRASH_TRACE": str(trace)}))
        ref = {"rc": rc, "orders": server_orders_by_ref(srv), "positions": server_positions(srv),
               "store": store_summary(tmp_path / "ref" / "state.sqlite")}
        await srv.aclose()
        points = trace.read_text().split()
        # 2) 7 chains of three crashes: the first at a named point of the clean run (covering every kind
        #    of point, at the open's entry and at the close's rebalance), the next two at random points
        #    of the restarted daemon's own run ("any:k"), i.e. during its recovery; then a clean finish.
        rng = random.Random(20240110)
        firsts = ["reconcile_positions:1", "decision_made:1", "order_sending:1", "order_placed:1", "order_acked:1",
                  "execution_recorded:3", "fill_applied:1", "decision_made:2", "order_sending:4", "order_placed:5",
                  "decision_committed:2", "execution_recorded:8", "fill_applied:4", "reconcile_mid:2"]
        firsts = [p for p in firsts if p in points]
        rng.shuffle(firsts)
        scenarios = [[p, f"any:{rng.randint(1, 6)}", f"any:{rng.randint(1, 8)}"] for p in firsts[:7]]
        scenarios.append([rng.uniform(1.2, 2.5), rng.uniform(1.2, 2.5)])  # plus SIGKILLs sent at random moments
        results: list = []
        sem = asyncio.Semaphore(4)
        await asyncio.gather(*(_scenario(tmp_path / f"s{i}", sc, results, sem) for i, sc in enumerate(scenarios)))
        return ref, points, results

    ref, points, results = run(go(), 300)
    assert ref["rc"] == 0
    assert set(ref["store"]["states"].values()) == {"filled"} and len(ref["orders"]) == 5
    assert ref["positions"] == {**expected_keys(), "VX": 3}
    crashes = duplicates = lost = 0
    for r in results:
        crashes += len(r["hit"]) + sum(1 for c, rc in zip(r["crashes"], r["rcs"]) if isinstance(c, float) and rc == -9)
        assert r["final_rc"] == 0, r
        dup = sum(len(ids) - 1 for ids in r["orders"].values())
        missing = set(ref["orders"]) - set(r["orders"])
        extra = set(r["orders"]) - set(ref["orders"])
        duplicates += dup + len(extra)
        lost += len(missing)
        assert not dup and not missing and not extra, r
        assert r["positions"] == ref["positions"], r
        st = r["store"]
        assert set(st["states"].values()) == {"filled"} and st["filled"] == st["quantities"], r
        assert st["ledger"] == ref["positions"] and st["dup_exec"] == 0, r
    print(f"\nSIGKILL drill: {len(points)} crash points in a clean run; {len(results)} scenarios; "
          f"{crashes} crashes; duplicates={duplicates} lost={lost}")
    assert crashes >= 20
    assert duplicates == 0 and lost == 0
