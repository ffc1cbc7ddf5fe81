"""The alvh daemon: the replay engine's Kernel and strategies, unchanged, trading an IB paper account.

Wiring: EventBus + Kernel + the configured strategies (config.wiring.build_kernel, the same
objects replay runs) + IBBroker (the kernel's broker) + the SQLite state store.

Life cycle
1. Load state: ledger snapshot, strategy states, the intent journal, which of today's jobs are done.
2. Connect (bounded, backoff). Refuse any account whose id does not start with DU unless both
   `--allow-live` and `daemon.allow_live = true` say so.
3. Subscribe market data, reconcile with IB (positions, open orders, completed orders, executions):
   every journaled non-final intent is resolved - working -> adopted, filled -> fills recorded once
   (execId), never reached IB -> re-sent under the same intent id (same session) or abandoned.
   IB's positions are compared with the ledger's; a difference halts new orders (configurable).
4. Run the session's jobs (scheduler.py): each snapshot job builds a MarketSnapshot from IB quotes,
   runs the kernel (strategies decide) and commits journal rows + strategy states + ledger + the
   job's done-marker in ONE transaction; only then are the new orders sent.
5. On any connection loss: trading pauses; on reconnect / 1101 / 1102: resubscribe, reconcile, resume.
6. SIGTERM/SIGINT: stop the scheduler, persist, disconnect (working DAY orders stay at IB and are
   adopted at the next start, unless `orders.cancel_on_shutdown`).

Kill switch: `alvh halt` sets a flag in the store; the daemon polls it every heartbeat, cancels
working orders and refuses new ones until `alvh resume` clears it. Snapshot jobs are skipped while
halted.

Paper replay (`alvh run --paper-replay DATE`): the same daemon against the loopback test server
(adapters.faketws.FakeTWS) quoting that historical day, on an accelerated clock. The pre-day state
(ledger, strategy states, positions) comes from the replay engine run up to the previous day, so the
daemon's orders for the day can be compared with the replay engine's.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from adapters.ib.accounts import mask
from adapters.ib.broker import IBBroker
from adapters.ib.connection import Connection, FatalConnectionError
from adapters.ib.contracts import ContractResolver
from adapters.ib.marketdata import MarketData
from adapters.live import crashpoint
from adapters.live.scheduler import Job, SessionScheduler, in_reset_window, plan_session
from adapters.live.state import StateStore
from config.daemon import DaemonParams, ScheduleParams
from config.wiring import build_kernel, build_strategies
from engine.clock import ET, WallClock
from engine.events import Event, MarketQuotes, MarketSnapshot, OrderState, OrderStatusEvent, Phase
from engine.execution import ExecutionSimulator
from engine.instruments import Equity, FutureContract, OptionContract
from engine.kernel import Kernel
from engine.ledger import Ledger
from engine.strategy import Strategy

log = structlog.get_logger("alvh.daemon")

EXIT_OK = 0
EXIT_REFUSED = 2
EXIT_INTERNAL = 70


class DaemonError(Exception):
    """A problem the user can fix (config, account): one sentence."""


class LiveAccountRefused(DaemonError, FatalConnectionError):
    pass


def daemon_params(cfg) -> DaemonParams:
    """The typed [daemon] table of a RunConfig; a config without one cannot run the daemon."""
    from config.errors import ConfigError

    if cfg.daemon is None:
        raise ConfigError(f"{cfg.source}: daemon: the daemon needs a [daemon] table (see config/ib_paper.toml)")
    return cfg.daemon


def make_strategies(cfg, params: DaemonParams) -> list[Strategy]:
    if params.strategy_factory:
        mod, _, fn = params.strategy_factory.partition(":")
        return list(getattr(importlib.import_module(mod), fn)(cfg))
    return build_strategies(cfg)


def _log_task_error(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("internal_error", where="order flush", error=repr(task.exception()))


def _drop_derived_keys(obj):
    """Instruments now carry their text `key` as a (non-init) dataclass field, so dataclasses.asdict() in a
    strategy's state() writes it and Instrument(**d) in its restore() rejects it: drop it from
    instrument-shaped dicts before restoring (a no-op once the strategies stop writing it)."""
    if isinstance(obj, dict):
        shaped = "key" in obj and ("expiry" in obj or "symbol" in obj)
        return {k: _drop_derived_keys(v) for k, v in obj.items() if not (shaped and k == "key")}
    if isinstance(obj, list):
        return [_drop_derived_keys(v) for v in obj]
    return obj


def check_account(account: str, allow_live_flag: bool, allow_live_config: bool) -> None:
    if account.startswith("DU"):
        return
    if allow_live_flag and allow_live_config:
        log.warning("live_account_allowed", account=mask(account))
        return
    raise LiveAccountRefused(
        f"refusing account {mask(account) or '<none>'}: not a paper account (ids start with DU); "
        "a live account needs both --allow-live and daemon.allow_live = true")


class ReplayClock:
    """Paper-replay clock: jumps to each job's time; between jobs it runs at `speed` x wall time (0 = frozen)."""

    def __init__(self, start: dt.datetime, speed: float = 0.0) -> None:
        self._t = start
        self._mark = time.monotonic()
        self.speed = speed

    def now(self) -> dt.datetime:
        if self.speed:
            return self._t + dt.timedelta(seconds=(time.monotonic() - self._mark) * self.speed)
        return self._t

    def set(self, t: dt.datetime) -> None:
        now = self.now()
        self._t = max(now, t)
        self._mark = time.monotonic()


# ---------------------------------------------------------------------------------------------
class Daemon:
    def __init__(self, cfg, params: DaemonParams, *, allow_live: bool = False, clock=None,
                 strategies: list[Strategy] | None = None, ib=None, paper: PaperReplay | None = None,
                 state_path: str | Path | None = None, mode: str = "paper") -> None:
        self.cfg = cfg
        self.mode = mode
        self.p = params
        self.allow_live = allow_live
        self.clock = clock or WallClock()
        self.paper = paper
        self.store = StateStore(state_path or params.state_path)
        self.conn = Connection(params.ib, ib=ib, on_up=self._on_up, on_down=self._on_down)
        self.resolver = ContractResolver(self.conn.ib, self.conn.pacer, params.ib.request_timeout, self.store,
                                         today=self.today)
        self.md = MarketData(self.conn.ib, self.resolver, self.conn.pacer, params.market_data,
                             request_timeout=params.ib.request_timeout,
                             supplement=paper.supplement if paper is not None else None)
        self.kernel = build_kernel(
            cfg, lambda execution: IBBroker(self.conn, self.resolver, self.md, self.store, clock=self.clock,
                                            orders=params.orders, risk=cfg.risk, execution=execution,
                                            block_reason=self._block_reason),
            clock=lambda _bus: self.clock,
            strategies=strategies if strategies is not None else make_strategies(cfg, params),
            strict_settlement=False)
        self.strategies, self.bus, self.ledger = self.kernel.strategies, self.kernel.bus, self.kernel.ledger
        self.execution, self.broker = self.kernel.execution, self.kernel.broker
        self.broker.emit = self.pump
        self.bus.subscribe(OrderStatusEvent, self._on_status)
        self._pumping = False
        self._stop = asyncio.Event()
        self.exit_code = EXIT_OK
        self.mismatch: dict[str, tuple[int, int]] = {}
        self._flush_task: asyncio.Task | None = None
        self._bg: list[asyncio.Task] = []
        self._account_checked = False
        self._up_lock = asyncio.Lock()
        self.jobs_run: list[str] = []
        self._restore()

    # ---- state ---------------------------------------------------------------------------------
    def today(self) -> dt.date:
        return self.clock.now().astimezone(ET).date()

    def _restore(self) -> None:
        st = self.store
        had_ledger = st.load_ledger(self.ledger)
        states = st.strategy_states()
        for s in self.strategies:
            if s.book in states:
                s.restore(_drop_derived_keys(states[s.book]))
        kernel_meta = st.get_meta("kernel") or {}
        if kernel_meta.get("last_interest_date"):
            self.kernel._last_interest_date = kernel_meta["last_interest_date"]
        # on_start runs again in every process (at the first snapshot), after restore(): strategies wire
        # themselves there (the hedge finds the condor book), as they do at the start of a replay
        ids = [r.intent_id for r in st.intents()]
        for ctx in self.kernel.contexts.values():
            ctx.remember_intents(ids)  # a restarted decision numbers repeated intents the same way
        st.set_meta("daemon", {"pid": os.getpid(), "mode": self.mode,
                               "config": str(self.cfg.source), "started": dt.datetime.now(dt.UTC).isoformat()})
        log.info("state_loaded", path=str(st.path), ledger=had_ledger, strategies=sorted(states),
                 open_intents=len(st.intents(open_only=True)), halted=bool(st.halted()))

    def persist(self) -> None:
        st = self.store
        st.save_ledger(self.ledger)
        for s in self.strategies:
            st.save_strategy(s.book, s.state())
        st.set_meta("kernel", {"last_interest_date": self.kernel._last_interest_date})

    def pump(self, events: list[Event]) -> None:
        """Publish events and run the kernel; journal, fills, ledger and strategy states commit together."""
        if self._pumping:
            for ev in events:
                self.bus.publish(ev)
            return
        self._pumping = True
        try:
            with self.store.transaction():
                for ev in events:
                    self.bus.publish(ev)
                self.bus.run()
                self.persist()
        except Exception as e:
            log.error("internal_error", where="pump", error=repr(e))
            self.exit_code = EXIT_INTERNAL
            self._stop.set()
            raise
        finally:
            self._pumping = False
        self._maybe_flush()

    def _on_status(self, ev: OrderStatusEvent) -> None:
        if ev.state is OrderState.REJECTED and self.store.intent(ev.intent_id) is None:
            log.warning("order_rejected", intent=ev.intent_id, book=ev.book, reason=ev.reason, by="pretrade_check")

    def _layer_levels(self) -> dict[tuple[str, int], float]:
        """Hedge layers' levels from the strategies' own state (any strategy exposing state()["layers"])."""
        out = {}
        for s in self.strategies:
            layers = None
            with contextlib.suppress(Exception):  # observability only
                layers = s.state().get("layers")
            if isinstance(layers, list):
                for i, la in enumerate(layers):
                    if isinstance(la, dict) and isinstance(la.get("level"), (int, float)):
                        out[(s.book, i)] = float(la["level"])
        return out

    def _log_layer_changes(self, before: dict, after: dict) -> None:
        for key, level in after.items():
            prev = before.get(key, 0.0)
            if prev <= 0.0 < level:
                log.info("layer_activated", book=key[0], layer=key[1], level=level)
            elif prev > 0.0 >= level:
                log.info("layer_deactivated", book=key[0], layer=key[1])
            elif level != prev:
                log.info("layer_level_changed", book=key[0], layer=key[1], level=level, previous=prev)

    def _maybe_flush(self) -> None:
        if self.broker.has_queued() and (self._flush_task is None or self._flush_task.done()):
            try:
                self._flush_task = asyncio.get_running_loop().create_task(self.broker.flush())
            except RuntimeError:
                return
            self._flush_task.add_done_callback(_log_task_error)

    def _block_reason(self) -> str | None:
        if in_reset_window(self.clock.now(), self.p.schedule):
            return "inside the broker reset window"
        return None

    # ---- connection callbacks ------------------------------------------------------------------
    def _on_down(self, reason: str) -> None:
        self.broker.ready = False
        log.warning("trading_paused", reason=reason)

    async def _on_up(self, reason: str) -> None:
        async with self._up_lock:  # 1101 then 1102 in quick succession: one reconcile after the other
            await self._resume(reason)

    async def _resume(self, reason: str) -> None:
        account = self.conn.account
        if not self._account_checked:
            check_account(account, self.allow_live, self.p.allow_live)
            self._account_checked = True
            self.store.set_meta("account", mask(account))
            if not account.startswith("DU"):
                self.mode = "live"
                self.store.set_meta("daemon", {**(self.store.get_meta("daemon") or {}), "mode": "live"})
        if reason != "restored_data_kept" or not self.md.subscribed:
            await self.md.subscribe()
        report = await self.broker.reconcile(today=self.today())
        self.check_positions()
        log.info("trading_resumed" if reason != "connected" else "trading_ready", reason=reason,
                 adopted=len(report["adopted"]), resent=len(report["resent"]))
        self._maybe_flush()

    def check_positions(self) -> dict[str, tuple[int, int]]:
        """IB's positions vs the ledger's (instruments expiring today or earlier are skipped: they settle)."""
        today = self.today()
        ib_pos = self.broker.positions()
        ours = self.ledger.net_positions()
        insts = {p.instrument.key: p.instrument for p in self.ledger.positions.values()}
        diff = {}
        for key in set(ib_pos) | set(ours):
            inst = insts.get(key) or self.resolver_instrument(key)
            expiry = getattr(inst, "expiry", None)
            if expiry is not None and expiry <= today:
                continue
            a, b = ib_pos.get(key, 0), ours.get(key, 0)
            if a != b:
                diff[key] = (a, b)
        self.mismatch = diff
        if diff:
            log.error("position_mismatch", differences={k: {"ib": a, "ledger": b} for k, (a, b) in sorted(diff.items())})
            if self.cfg.risk.halt_on_position_mismatch and not self.store.halted():
                self.store.set_halted("position mismatch with IB: " + ", ".join(sorted(diff)), by="daemon")
                self._spawn(self._apply_halt())
        return diff

    def resolver_instrument(self, key: str):
        for inst in self.resolver._by_con_id.values():
            if inst.key == key:
                return inst
        return None

    # ---- jobs ----------------------------------------------------------------------------------
    async def run_job(self, job: Job) -> None:
        if self.store.job_done(job.session, job.name):
            log.info("job_skipped", job=job.name, session=str(job.session), reason="already done")
            return
        log.info("job_started", job=job.name, session=str(job.session), at=job.at.isoformat())
        try:
            if job.kind == "preopen":
                await self._preopen(job)
            elif job.kind == "snapshot":
                await self._snapshot_job(job)
            elif job.kind == "eod":
                await self._eod(job)
        except Exception as e:
            log.error("job_failed", job=job.name, error=repr(e))
            if self.exit_code == EXIT_INTERNAL:
                raise
            return
        self.jobs_run.append(job.name)

    async def _ready(self, deadline_s: float) -> bool:
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        while not (self.broker.ready and self.conn.is_up):
            if loop.time() > end or self._stop.is_set():
                return False
            await asyncio.sleep(0.05)
        return True

    async def _preopen(self, job: Job) -> None:
        ok = await self._ready(self.p.ready_wait_seconds)
        info: dict[str, Any] = {"connected": ok, "account": mask(self.conn.account), "halted": bool(self.store.halted())}
        if ok:
            _, rep = await self.md.snapshot(Phase.OPEN, job.session)
            info.update(market_data=rep.usable, missing=rep.missing, stale=rep.stale)
            self.check_positions()
            info["position_mismatch"] = len(self.mismatch)
        log.info("preopen_ok" if ok and info.get("market_data") and not self.mismatch else "preopen_problem", **info)
        self.store.mark_job_done(job.session, job.name)

    async def _snapshot_job(self, job: Job) -> None:
        if self.store.halted():
            log.warning("job_skipped", job=job.name, reason="halted")
            self.store.mark_job_done(job.session, job.name)
            return
        if not await self._ready(self.p.ready_wait_seconds):
            log.error("job_skipped", job=job.name, reason="not connected/reconciled")
            self.store.mark_job_done(job.session, job.name)
            return
        quotes, rep = None, None
        for attempt in range(3):
            quotes, rep = await self.md.snapshot(job.phase, job.session)
            if quotes is not None:
                break
            log.warning("snapshot_incomplete", job=job.name, attempt=attempt + 1, missing=rep.missing, stale=rep.stale)
            await asyncio.sleep(1.0)
        if quotes is None:
            log.error("snapshot_skipped", job=job.name, missing=rep.missing, stale=rep.stale)
            self.store.mark_job_done(job.session, job.name)
            return
        if rep.missing or rep.stale:
            log.warning("market_data_partial", job=job.name, missing=rep.missing, stale=rep.stale)
        snap = MarketSnapshot(self.clock.now(), job.session, job.phase, quotes)
        before = {r.intent_id for r in self.store.intents(session=job.session)}
        levels = self._layer_levels()
        self._pumping = True
        try:
            with self.store.transaction():
                self.bus.publish(snap)
                self.bus.run()
                crashpoint("decision_made")
                self.persist()
                self.store.mark_job_done(job.session, job.name)
        except Exception as e:
            log.error("internal_error", where=job.name, error=repr(e))
            self.exit_code = EXIT_INTERNAL
            self._stop.set()
            raise
        finally:
            self._pumping = False
        crashpoint("decision_committed")
        self._log_layer_changes(levels, self._layer_levels())
        new = [r for r in self.store.intents(session=job.session) if r.intent_id not in before]
        log.info("snapshot_processed", job=job.name, phase=job.phase.value, spx=quotes.spx, vix=quotes.vix,
                 vx=len(quotes.vx), equity=round(self.ledger.equity(), 2), new_intents=[r.intent_id for r in new])
        await self.broker.flush()

    async def _eod(self, job: Job) -> None:
        n = await self.broker.cancel_all("end of day") if self.conn.is_up else 0
        if n:
            await self._settle_orders(10.0)
        if self.conn.is_up and self.broker.ready:
            try:
                await self.broker.reconcile(today=job.session, allow_resend=False)
                self.check_positions()
            except Exception as e:  # noqa: BLE001 - the summary still gets written
                log.warning("eod_reconcile_failed", error=repr(e))
        with self.store.transaction():
            self.persist()
            self.store.mark_job_done(job.session, job.name)
        intents = self.store.intents(session=job.session)
        states: dict[str, int] = {}
        for r in intents:
            states[r.state] = states.get(r.state, 0) + 1
        log.info("daily_summary", session=str(job.session), equity=round(self.ledger.equity(), 2),
                 cash=round(self.ledger.cash, 2), positions=len(self.ledger.positions),
                 books={s.book: round(self.ledger.book_pnl(s.book), 2) for s in self.strategies},
                 intents=states, fills=len(self.store.fills(session=job.session)),
                 position_mismatch=len(self.mismatch), cancelled_at_eod=n)

    async def _settle_orders(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while self.broker.working_orders() and loop.time() < end:
            await asyncio.sleep(0.05)

    # ---- kill switch and heartbeat -------------------------------------------------------------
    async def _apply_halt(self) -> None:
        h = self.store.halted()
        if h is None or self.broker.halted:
            return
        await self.broker.halt(h.get("reason", ""))
        log.warning("halted", reason=h.get("reason", ""), by=h.get("by", ""))

    async def poll_halt(self) -> None:
        h = self.store.halted()
        if h is not None and not self.broker.halted:
            await self._apply_halt()
        elif h is None and self.broker.halted:
            self.broker.resume()
            log.info("resumed")

    async def heartbeat(self) -> None:
        await self.poll_halt()
        self.store.heartbeat({
            "pid": os.getpid(), "connection": self.conn.state, "ready": self.broker.ready, "halted": self.broker.halted,
            "account": mask(self.conn.account), "clock": self.clock.now().isoformat(),
            "equity": round(self.ledger.equity(), 2), "working": len(self.broker.working_orders()),
            "mismatch": len(self.mismatch)})

    async def _heartbeat_loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.heartbeat()
            except Exception as e:  # noqa: BLE001
                log.warning("heartbeat_failed", error=repr(e))
            try:
                await asyncio.wait_for(self._stop.wait(), self.p.halt_poll_seconds)
            except TimeoutError:
                pass

    def _spawn(self, coro) -> None:
        try:
            self._bg.append(asyncio.get_running_loop().create_task(coro))
        except RuntimeError:
            coro.close()

    # ---- running -------------------------------------------------------------------------------
    def stop(self, why: str = "requested") -> None:
        if not self._stop.is_set():
            log.info("stopping", reason=why)
        self._stop.set()

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.stop, sig.name)
            except (NotImplementedError, RuntimeError, ValueError):
                pass

    async def _start(self) -> bool:
        self._install_signals()
        start = asyncio.ensure_future(self.conn.start())
        stop = asyncio.ensure_future(self._stop.wait())
        done, _ = await asyncio.wait({start, stop}, return_when=asyncio.FIRST_COMPLETED)
        if start not in done:
            start.cancel()
            await asyncio.gather(start, return_exceptions=True)
            return False
        stop.cancel()
        try:
            start.result()
        except LiveAccountRefused as e:
            log.error("account_refused", error=str(e))
            self.exit_code = EXIT_REFUSED
            raise
        self._bg.append(asyncio.get_running_loop().create_task(self._heartbeat_loop()))
        await self.poll_halt()
        return True

    async def run(self) -> int:
        """Live/paper daemon: apscheduler jobs until SIGTERM/SIGINT."""
        try:
            if not await self._start():
                return self.exit_code
            sched = SessionScheduler(self.p.schedule, self.run_job, self.heartbeat, self.clock.now)
            sched.start()
            log.info("daemon_running", jobs=[j.key for j in sched.installed])
            try:
                await self._stop.wait()
            finally:
                sched.shutdown()
        finally:
            await self.shutdown()
        return self.exit_code

    async def run_day(self, day: dt.date, params: ScheduleParams | None = None) -> int:
        """Run one session's plan on the (replay) clock: jump, or run at `speed`, from job to job."""
        try:
            if not await self._start():
                return self.exit_code
            for job in plan_session(day, params or self.p.schedule):
                if self._stop.is_set():
                    break
                await self._advance_to(job.at)
                await self.run_job(job)
                await self.heartbeat()
                # the replay clock does not move while orders work: let them finish (fill, walk, time out)
                o = self.p.orders
                await self._settle_orders(o.step_seconds * o.improve_steps + o.timeout_seconds + 2.0)
        finally:
            await self.shutdown()
        return self.exit_code

    async def _advance_to(self, t: dt.datetime) -> None:
        clock = self.clock
        if not isinstance(clock, ReplayClock):
            while clock.now() < t and not self._stop.is_set():
                await asyncio.sleep(min(1.0, (t - clock.now()).total_seconds()))
            return
        if clock.speed:
            while clock.now() < t and not self._stop.is_set():
                await asyncio.sleep(min(0.5, max((t - clock.now()).total_seconds() / clock.speed, 0.001)))
        clock.set(t)

    async def shutdown(self) -> None:
        self._stop.set()
        for t in self._bg:
            t.cancel()
        await asyncio.gather(*self._bg, return_exceptions=True)
        if self._flush_task is not None and not self._flush_task.done():
            self._flush_task.cancel()
            await asyncio.gather(self._flush_task, return_exceptions=True)
        try:
            await self.broker.close()
            self.md.unsubscribe()
        except Exception as e:  # noqa: BLE001
            log.warning("shutdown_problem", error=repr(e))
        try:
            with self.store.transaction():
                self.persist()
        except Exception as e:  # noqa: BLE001
            log.warning("persist_on_shutdown_failed", error=repr(e))
        await self.conn.close()
        self.store.close()
        log.info("stopped", exit_code=self.exit_code)


# ---------------------------------------------------------------------------------------------
# status (read-only; used by `alvh status`)
def status_report(path: str | Path) -> dict:
    st = StateStore(path, readonly=True)
    try:
        hb = st.get_meta("heartbeat") or {}
        age = None
        if hb.get("at"):
            age = (dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(hb["at"])).total_seconds()
        ledger = st.get_meta("ledger") or {}
        strategies = st.strategy_states()
        layers = {book: s["layers"] for book, s in strategies.items() if isinstance(s, dict) and "layers" in s}
        working = [{"intent": r.intent_id, "book": r.book, "purpose": r.purpose, "state": r.state,
                    "filled": r.filled, "quantity": r.quantity, "order_id": r.order_id,
                    "limit": r.working_price if r.working_price is not None else r.limit_price,
                    "legs": [f"{leg.ratio:+d} {leg.key}" for leg in r.order.legs]}
                   for r in st.intents(open_only=True)]
        return {
            "state_path": str(path),
            "account": st.get_meta("account", ""),
            "daemon": st.get_meta("daemon", {}),
            "halted": st.halted(),
            "heartbeat": hb, "heartbeat_age_seconds": None if age is None else round(age, 1),
            "equity": None if not ledger else ledger["cash"] + sum(
                p["quantity"] * (p["mark"] - (p["vm_price"] if p["instrument"]["type"] == "future" else 0.0))
                * p["instrument"].get("multiplier", 1) for p in ledger["positions"]),
            "cash": ledger.get("cash"),
            "ledger_positions": [{"book": p["book"], "instrument": _key(p["instrument"]), "quantity": p["quantity"],
                                  "avg_price": p["avg_price"], "mark": p["mark"]} for p in ledger.get("positions", [])],
            "broker_positions": st.positions(),
            "layers": layers,
            "working_orders": working,
            "recent_intents": [{"intent": r.intent_id, "state": r.state, "filled": r.filled, "quantity": r.quantity,
                                "reason": r.reason} for r in st.intents()[-10:]],
        }
    finally:
        st.close()


def _key(d: dict) -> str:
    from adapters.live.state import instrument_from_dict

    return instrument_from_dict(d).key


# ---------------------------------------------------------------------------------------------
# paper replay
@dataclass
class PaperReplay:
    """One historical day served by a FakeTWS: quotes by phase, series IB would not have, pre-day state."""

    cfg: Any
    panel: Any
    day: dt.date
    clock: ReplayClock
    close_at: dt.datetime
    replay: Any = None
    index: int = 0
    _open: MarketQuotes | None = None
    _close: MarketQuotes | None = None
    _models: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from adapters.sim.replay import HistoricalReplay

        self.replay = HistoricalReplay(self.panel, self.day, self.day)
        if self.day not in self.replay.dates:
            raise DaemonError(f"{self.day} is not a trading day in the market data")
        self.index = self.replay.dates.index(self.day)
        self._open = self.replay.open_quotes(self.index)
        self._close = self.replay.close_quotes(self.index)

    def quotes(self, phase: Phase | None = None) -> tuple[Phase, MarketQuotes]:
        if phase is None:
            phase = Phase.CLOSE if self.clock.now() >= self.close_at else Phase.OPEN
        return (Phase.CLOSE, self._close) if phase is Phase.CLOSE else (Phase.OPEN, self._open)

    def supplement(self, phase: Phase, today: dt.date) -> dict:
        _, q = self.quotes(Phase.CLOSE if phase is Phase.CLOSE else Phase.OPEN)
        out: dict[str, Any] = {"rate": q.rate, "vix9d": q.vix9d, "vix3m": q.vix3m, "vix6m": q.vix6m, "vvix": q.vvix,
                               "skew": q.skew, "stale": set(q.stale), "vx": dict(q.vx), "etps": dict(q.etps),
                               "vx_final": dict(q.vx_final)}
        return {k: v for k, v in out.items() if not (isinstance(v, float) and not math.isfinite(v))}

    def model(self, phase: Phase):
        m = self._models.get(phase)
        if m is None:
            from engine.marketmodel import MarketModel

            ph, q = self.quotes(phase)
            t = dt.datetime.combine(self.day, dt.time(9, 30) if ph is Phase.OPEN else dt.time(16, 0), tzinfo=ET)
            m = self._models[phase] = MarketModel(MarketSnapshot(t, self.day, ph, q), self.cfg.pricing)
        return m

    def quote_provider(self):
        """FakeTWS QuoteProvider: the replay's quotes for indices/VX/ETPs, the engine model for options."""
        from adapters.faketws import Quote

        execution = ExecutionSimulator(self.cfg.execution)

        def provide(f: dict):
            phase, q = self.quotes()
            sec, sym = f.get("secType", ""), f.get("symbol", "")
            if sec == "IND":
                lvl = {"SPX": q.spx, "VIX": q.vix}.get(sym)
                if lvl is None or not math.isfinite(lvl):
                    return None
                return Quote(last=lvl, close=lvl, bid_size=0, ask_size=0, last_size=0)
            if sec == "STK":
                px = q.etps.get(sym)
                return None if px is None or not math.isfinite(px) else Quote(bid=px, ask=px, last=px, close=px)
            exp = f.get("lastTradeDateOrContractMonth", "")
            if len(exp) < 8:
                return None
            expiry = dt.date(int(exp[:4]), int(exp[4:6]), int(exp[6:8]))
            if sec == "FUT":
                px = q.vx.get(expiry, q.vx_final.get(expiry))
                return None if px is None or not math.isfinite(px) else Quote(bid=px, ask=px, last=px, close=px)
            if sec == "OPT":
                tc = f.get("tradingClass") or sym
                root = "VIX" if sym == "VIX" else tc
                inst = OptionContract(root, expiry, float(f.get("strike") or 0.0), (f.get("right") or "C")[:1],
                                      "PM" if root == "SPXW" else "AM")
                try:
                    m = self.model(phase)
                    mid = float(m.mids([inst])[0])
                except Exception:  # noqa: BLE001 - unpriceable: no quote
                    return None
                if not math.isfinite(mid):
                    return None
                qt = execution.quotes([inst], [mid], q.vix)[0]
                # quotes on the exchange's tick grid (0.05 below 3.00, 0.10 above), bid down, ask up
                bid = math.floor(qt.bid / _tick(qt.bid) + 1e-9) * _tick(qt.bid)
                ask = math.ceil(qt.ask / _tick(qt.ask) - 1e-9) * _tick(qt.ask)
                return Quote(bid=round(bid, 2), ask=round(max(ask, bid + 0.05), 2), last=round(mid, 4),
                             close=round(mid, 4), opt_price=mid)
            return None

        return provide

    def prior_state(self, strategies_factory: Callable[[], list[Strategy]], start: dt.date | None = None):
        """Run the replay engine up to the previous trading day: (ledger, strategies, kernel)."""
        from adapters.sim.broker import SimulatedBroker
        from adapters.sim.replay import HistoricalReplay

        kernel = build_kernel(self.cfg, SimulatedBroker, strategies=strategies_factory())
        if self.index > 0:
            rp = HistoricalReplay(self.panel, start or self.cfg.run.start, self.replay.dates[self.index - 1])
            rp.bind(kernel.bus)
            rp.run()
        return kernel.ledger, kernel.strategies, kernel


def _tick(price: float) -> float:
    return 0.05 if price < 3.0 else 0.10


def seed_store(store: StateStore, ledger: Ledger, strategies: list[Strategy], kernel: Kernel | None = None) -> None:
    """Write a pre-day state (from the replay engine) into a fresh store."""
    with store.transaction():
        store.save_ledger(ledger)
        for s in strategies:
            store.save_strategy(s.book, s.state())
        if kernel is not None:
            store.set_meta("kernel", {"last_interest_date": kernel._last_interest_date})
        store.set_meta("seeded", {"at": dt.datetime.now(dt.UTC).isoformat()})


def seed_fake_positions(server, positions: dict) -> None:
    """Give a FakeTWS account the positions {Instrument: qty} (paper replay's pre-day holdings)."""
    from adapters.faketws.book import PositionRecord

    u = server.universe
    for inst, qty in positions.items():
        if not qty:
            continue
        if isinstance(inst, OptionContract):
            symbol = "VIX" if inst.root == "VIX" else "SPX"
            spec = u.option(symbol, inst.root, inst.expiry, inst.right, inst.strike)
        elif isinstance(inst, FutureContract):
            spec = u.vx_future(inst.expiry)
        elif isinstance(inst, Equity):
            spec = next((s for s in u._registry.values() if s.sec_type == "STK" and s.symbol == inst.symbol), None)
            if spec is None:
                continue
        else:
            continue
        server.book.positions[spec.con_id] = PositionRecord(spec, float(qty), 0.0)


def replay_schedule(params: ScheduleParams, hedge_checks: bool) -> ScheduleParams:
    """Paper replay takes its snapshots when the replay engine does (09:30 open, 16:00 close)."""
    return params.model_copy(update={"open_snapshot": dt.time(9, 30), "close_lead_minutes": 0,
                                     "hedge_every_minutes": params.hedge_every_minutes if hedge_checks else 0,
                                     "misfire_grace_seconds": 0})


async def run_paper_replay(cfg, params: DaemonParams, day: dt.date, panel, *, state_path: str | Path | None = None,
                           speed: float | None = None, server=None) -> int:
    """Rehearse one historical day on an accelerated clock against the loopback test server.

    With a panel: the server (in-process unless `server` is given or replay.server is external) quotes
    that day, and a fresh store is seeded with the replay engine's state at the end of the previous day.
    Without one (replay.use_panel = false): an external server's quotes only, from an empty state."""
    from adapters.live.scheduler import session_hours

    sched = replay_schedule(params.schedule, params.replay.hedge_checks)
    _, close = session_hours(day)
    clock = ReplayClock(dt.datetime.combine(day, dt.time(9, 0), tzinfo=ET),
                        params.replay.speed if speed is None else speed)
    paper = None
    if panel is not None:
        paper = PaperReplay(cfg, panel, day, clock, close_at=close - dt.timedelta(minutes=sched.close_lead_minutes))
    if paper is None and server is None and params.replay.server == "internal":
        raise DaemonError("paper replay with the in-process test server needs market data (daemon.replay.use_panel)")
    path = Path(state_path or params.state_path)
    fresh = True
    if path.exists():
        probe = StateStore(path)
        fresh = probe.get_meta("seeded") is None and probe.get_meta("daemon") is None
        probe.close()
    strategies = None
    positions: dict = {}
    if fresh and paper is not None:
        ledger, strategies, kernel = paper.prior_state(lambda: make_strategies(cfg, params), params.replay.warmup_start)
        store = StateStore(path)
        seed_store(store, ledger, strategies, kernel)
        store.close()
        for p in ledger.positions.values():
            positions[p.instrument] = positions.get(p.instrument, 0) + p.quantity
    own_server = None
    if server is None and params.replay.server == "internal":
        from adapters.faketws import FakeTWS

        # SPXTR is our synthetic total-return series, not a listed share
        etps = {sym: ("ARCA", sym, px) for sym, px in paper._open.etps.items() if sym != "SPXTR"}
        own_server = FakeTWS(port=0, account="DU0000001", quote_provider=paper.quote_provider(), now=clock.now,
                             spx=paper._open.spx, etps=etps or None)
        await own_server.start()
        server = own_server
    if server is not None and positions:
        seed_fake_positions(server, positions)
    if server is not None:
        params = params.model_copy(update={"ib": params.ib.model_copy(update={"host": "127.0.0.1", "port": server.port})})
    md = params.market_data
    # the replay clock jumps: streaming ticks would still show the last push, so every job snapshots
    md = md.model_copy(update={"mode": "snapshot"})
    if paper is not None:
        md = md.model_copy(update={"indices": [], "vx_months": max(md.vx_months, 9)})
    params = params.model_copy(update={"schedule": sched, "market_data": md})
    log.info("paper_replay", day=str(day), port=params.ib.port, seeded=bool(fresh and paper), speed=clock.speed)
    daemon = Daemon(cfg, params, clock=clock, paper=paper, state_path=path, strategies=strategies, mode="paper_replay")
    try:
        return await daemon.run_day(day, sched)
    finally:
        if own_server is not None:
            await own_server.aclose()
