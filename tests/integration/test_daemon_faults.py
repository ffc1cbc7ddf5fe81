"""Fault tests for the daemon against the loopback FakeTWS (127.0.0.1 only):

(a) the connection drops while orders are working -> reconnect, reconcile, no duplicate order, each
    fill recorded once (also: fills that happen while disconnected, and the nightly reset);
(b) randomized SIGKILLs (at a random moment or at a random crash point) across working orders that fill at
    once, slowly or in parts, then a restart: no duplicated, lost or orphaned order, server = ledger =
    expected positions. The seed is drawn per run and printed; ALVH_FAULT_SEED=<seed> replays it.
    bench/daemon_sigkill.py runs the same scenarios for 200 kills;
(c) 1100/1101/1102 pause and resume trading, a reconcile that times out is retried until it succeeds,
    a job that finds trading not ready runs when it is ready again; 326 (client id in use) is survived;
(d) a non-DU account is refused.

The drill strategies and helpers are in daemon_drill.py.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal

import pytest

pytest.importorskip("ib_async")

from daemon_drill import (
    ALVH,
    ROOT,
    daemon_run,
    daemon_table,
    drill_strategies,
    env,
    expected_keys,
    fault_scenario,
    fault_seed,
    job,
    kills_done,
    make_daemon,
    run,
    scenario_problems,
    server_filled,
    server_orders_by_ref,
    start_server,
    store_summary,
    until,
    write_config,
)

from adapters.faketws import NeverFill
from adapters.live.daemon import Daemon
from adapters.live.errors import LiveAccountRefused
from adapters.live.scheduler import ReplayClock
from adapters.live.state import StateStore
from config.daemon import DaemonParams
from config.settings import RunConfig
from engine.clock import ET
from engine.events import Phase
from engine.instruments import Equity
from engine.orders import OrderLeg


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
            assert s["filled"] == s["quantities"]                                          # each fill once
            assert s["filled"] == {ref: int(q) for ref, q in server_filled(srv).items()}   # ... as IB filled it
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
                *ALVH, "run", "--config", str(cfg), cwd=ROOT, env=env(),
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
                *ALVH, "run", "--config", str(cfg), cwd=ROOT, env=env(),
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
                *ALVH, "status", "--config", str(cfg), cwd=ROOT, env=env(),
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
def test_randomized_sigkills_across_working_orders_then_restart(tmp_path):
    seed = fault_seed()
    print(f"\nfault seed {seed} (ALVH_FAULT_SEED={seed} replays this run)")

    async def go():
        # a clean run gives the intent ids every scenario must end with (they are deterministic)
        srv = await start_server()
        (tmp_path / "ref").mkdir()
        cfg = write_config(tmp_path / "ref" / "drill.toml", daemon_table(srv.port, tmp_path / "ref" / "state.sqlite"))
        rc = await daemon_run(cfg, env())
        refs = set(server_orders_by_ref(srv))
        await srv.aclose()
        sem = asyncio.Semaphore(4)
        results = await asyncio.gather(*(fault_scenario(tmp_path / f"s{i}", seed + i, sem) for i in range(6)))
        return rc, refs, results

    rc, refs, results = run(go(), 400)
    assert rc == 0 and len(refs) == 5
    expected = {**expected_keys(), "VX": 3}
    kills = sum(kills_done(r) for r in results)
    totals = {"duplicated": 0, "lost": 0, "orphaned": 0}
    for r in results:
        problems = scenario_problems(r, refs, expected)
        for k in totals:
            totals[k] += len(problems[k])
        assert not any(problems.values()), (f"seed {r['seed']}", problems, r)
    print(f"SIGKILL drill (seed {seed}): {len(results)} scenarios, {kills} SIGKILLs done; {totals}; fills: "
          f"{sorted({k for r in results for k in r['fills'].values()})}")
    assert kills >= 4          # the scenarios really killed the daemon, mostly with orders working


# ---- (c) recovery that never gives up, jobs that wait for it --------------------------------------------
def test_a_reconcile_that_times_out_is_retried_and_the_missed_job_runs_when_ready(tmp_path):
    async def go():
        srv = await start_server()
        d = make_daemon(srv, tmp_path, ready_wait_seconds=0.3, ib={"request_timeout": 0.5})
        try:
            assert await d._start()
            srv.send_error(1100)
            await until(lambda: not d.broker.ready, what="paused on 1100")
            srv.drop_replies(["positionEnd"])          # the reconcile after 1102 times out, again and again
            srv.send_error(1102)
            await until(lambda: "positions did not answer" in d.conn.last_error, what="a failed reconcile")
            await d.run_job(job("open", Phase.OPEN, 9, 30))      # finds trading not ready: deferred, not lost
            deferred = list(d.jobs.deferred) and not d.store.job_done(d.today(), "open")
            assert not server_orders_by_ref(srv)
            await asyncio.sleep(1.0)
            still_down = not d.broker.ready
            srv.drop_replies(None)                     # IB answers again: the next retry succeeds
            await until(lambda: d.broker.ready, what="trading resumed")
            await until(lambda: d.store.job_done(d.today(), "open") and len(server_orders_by_ref(srv)) == 3,
                        what="the deferred open job ran")
            # a job deferred past its window is recorded as skipped, never run late
            srv.send_error(1100)
            await until(lambda: not d.broker.ready, what="paused")
            await d.run_job(job("close", Phase.CLOSE, 15, 45))
            d.clock.set(d.clock.now().replace(hour=16, minute=5))
            srv.send_error(1102)
            await until(lambda: d.store.job_done(d.today(), "close"), what="the close job settled")
            return deferred, still_down, len(server_orders_by_ref(srv)), d.jobs.ran
        finally:
            await d.shutdown()
            await srv.aclose()

    deferred, still_down, n_orders, ran = run(go(), 60)
    assert deferred and still_down
    assert n_orders == 3 and ran == ["open"]          # the close ran neither on time nor after its window


def test_recovery_that_misses_its_deadline_halts_with_the_reason(tmp_path):
    async def go():
        srv = await start_server()
        d = make_daemon(srv, tmp_path, recovery_deadline_seconds=1.5, ib={"request_timeout": 0.3})
        try:
            assert await d._start()
            srv.send_error(1100)
            srv.drop_replies(["positionEnd"])
            srv.send_error(1102)
            await until(lambda: d.store.halted() is not None, what="halted after the deadline")
            return d.store.halted(), d.kernel.halted
        finally:
            await d.shutdown()
            await srv.aclose()

    flag, reason = run(go(), 30)
    assert flag["by"] == "daemon" and flag["reason"].startswith("recovery failed: not reconnected and reconciled")
    assert "positions did not answer" in flag["reason"] and reason == flag["reason"]
