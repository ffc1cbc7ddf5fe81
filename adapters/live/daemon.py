"""The alvh daemon: the replay engine's Kernel and strategies, unchanged, trading an IB paper account.

Wiring: EventBus + Kernel + the configured strategies (config.wiring.build_kernel, the same objects
replay runs, with the same [risk] limits) + IBBroker (the kernel's broker) + the SQLite state store (the
broker's order journal). Events reach the engine through one Pump: publish, run the bus and persist in one
store transaction.

Life cycle
1. Open the state store (one sentence and no change if it is missing, damaged, locked, or was written by a
   rehearsal) and load it: ledger, strategy states, the intent journal, which of today's jobs are done.
2. Connect (bounded, backoff). Trade only the login's own account: it must be a managed account, equal to
   `daemon.ib.account` when set, and a paper (DU) account unless both `--allow-live` and `daemon.allow_live`
   say so (account.py); the store must belong to that account and mode. Nothing is written before this.
3. Subscribe market data, reconcile with IB (ib/reconcile.py); IB's positions are compared with the
   ledger's and a difference halts trading (configurable).
4. Run the session's jobs (jobs.py, scheduler.py); a job that finds trading not ready is deferred and runs
   when trading is ready again if its window is still open.
5. On any connection loss: trading pauses; on reconnect / 1101 / 1102: resubscribe, reconcile (retried with
   backoff until it succeeds), resume. Not ready for `recovery_deadline_seconds` -> halted with the reason.
6. SIGTERM/SIGINT: stop the scheduler, persist, disconnect (working DAY orders stay at IB and are adopted at
   the next start, unless `orders.cancel_on_shutdown`).

Kill switch (killswitch.py): `alvh halt`, a position mismatch, a loss limit or a missed recovery deadline halt
the kernel, cancel every order and are confirmed in the store; `alvh resume` clears it.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import os
import signal
from pathlib import Path

import structlog

from adapters.ib.accounts import mask
from adapters.ib.broker import IBBroker
from adapters.ib.connection import Connection, IBTimeout
from adapters.ib.contracts import ContractResolver
from adapters.ib.errors import DONE_STATUSES
from adapters.ib.marketdata import MarketData
from adapters.live.account import account_mode, choose_account
from adapters.live.errors import AccountRefused, DaemonError, StateError
from adapters.live.jobs import Jobs
from adapters.live.killswitch import KillSwitch
from adapters.live.pump import Pump
from adapters.live.scheduler import ReplayClock, SessionScheduler, in_reset_window, plan_session
from adapters.live.state import StateStore, configured_state_path
from config.daemon import DaemonParams, ScheduleParams
from config.wiring import build_kernel, build_strategies
from engine.clock import ET, WallClock
from engine.events import OrderState, OrderStatusEvent
from engine.strategy import Strategy

log = structlog.get_logger("alvh.daemon")

EXIT_OK = 0
EXIT_REFUSED = 2
EXIT_INTERNAL = 70


def daemon_params(cfg) -> DaemonParams:
    """The typed [daemon] table of a RunConfig, its state path resolved against the config file's directory
    (not the working directory); a config without one cannot run the daemon."""
    from config.errors import ConfigError

    if cfg.daemon is None:
        raise ConfigError(f"{cfg.source}: daemon: the daemon needs a [daemon] table (see config/ib_paper.toml)")
    return cfg.daemon.model_copy(update={"state_path": str(configured_state_path(cfg))})


def make_strategies(cfg, params: DaemonParams) -> list[Strategy]:
    if params.strategy_factory:
        mod, _, fn = params.strategy_factory.partition(":")
        return list(getattr(importlib.import_module(mod), fn)(cfg))
    return build_strategies(cfg)


def _log_task_error(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("internal_error", where="background task", error=repr(task.exception()))


class Daemon:
    def __init__(self, cfg, params: DaemonParams, *, allow_live: bool = False, clock=None,
                 strategies: list[Strategy] | None = None, ib=None, paper=None,
                 state_path: str | Path | None = None, rehearsal: bool = False) -> None:
        self.cfg = cfg
        self.p = params
        self.allow_live = allow_live
        self.rehearsal = rehearsal
        self.mode = "rehearsal" if rehearsal else "paper"
        self.clock = clock or WallClock()
        self.paper = paper
        self.store = StateStore(state_path or params.state_path)
        try:
            if rehearsal:
                self.store.check_identity("rehearsal")
            elif self.store.identity().get("mode") == "rehearsal":
                self.store.check_identity("paper")
        except StateError:
            self.store.close()
            raise
        self.claimed = False
        self.conn = Connection(params.ib, ib=ib, on_up=self._on_up, on_down=self._on_down)
        self.resolver = ContractResolver(self.conn.ib, self.conn.pacer, params.ib.request_timeout, self.store,
                                         today=self.today)
        self.md = MarketData(self.conn.ib, self.resolver, self.conn.pacer, params.market_data,
                             request_timeout=params.ib.request_timeout,
                             supplement=paper.supplement if paper is not None else None)
        self.killswitch = KillSwitch(self)
        self.kernel = build_kernel(
            cfg, lambda execution: IBBroker(self.conn, self.resolver, self.md, self.store, clock=self.clock,
                                            orders=params.orders, execution=execution, gate=self.killswitch.gate,
                                            listening=False),
            clock=lambda _bus: self.clock,
            strategies=strategies if strategies is not None else make_strategies(cfg, params),
            orders_today=self.store.count_intents, strict_settlement=False)
        self.kernel.blocked = self._block_reason
        self.strategies, self.bus, self.ledger = self.kernel.strategies, self.kernel.bus, self.kernel.ledger
        self.execution, self.broker = self.kernel.execution, self.kernel.broker
        self.pump = Pump(self.bus, self.store, persist=self.persist, after=self._maybe_flush, on_error=self._failed)
        self.broker.emit = self.pump
        self.bus.subscribe(OrderStatusEvent, self._on_status)
        self.jobs = Jobs(self)
        self.stopping = asyncio.Event()
        self.exit_code = EXIT_OK
        self.failed = False
        self.mismatch: dict[str, tuple[int, int]] = {}
        self._flush_task: asyncio.Task | None = None
        self._bg: set[asyncio.Task] = set()
        self._up_lock = asyncio.Lock()
        self._restore()

    @property
    def jobs_run(self) -> list[str]:
        return self.jobs.ran

    # ---- state ---------------------------------------------------------------------------------
    def today(self) -> dt.date:
        return self.clock.now().astimezone(ET).date()

    def _restore(self) -> None:
        st = self.store
        had_ledger = st.load_ledger(self.ledger)
        states = st.strategy_states()
        for s in self.strategies:
            if s.book in states:
                s.restore(states[s.book])
        kernel_meta = st.get_meta("kernel") or {}
        if kernel_meta.get("last_interest_date"):
            self.kernel._last_interest_date = kernel_meta["last_interest_date"]
        # on_start runs again in every process (at the first snapshot), after restore(): strategies wire
        # themselves there (the hedge finds the condor book), as they do at the start of a replay
        ids = st.intent_ids(since=self.today() - dt.timedelta(days=1))  # ids carry their date
        for ctx in self.kernel.contexts.values():
            ctx.remember_intents(ids)  # a restarted decision numbers repeated intents the same way
        log.info("state_loaded", path=str(st.path), ledger=had_ledger, strategies=sorted(states),
                 open_intents=len(st.intents(open_only=True)), halted=bool(st.halted()))

    def persist(self) -> None:
        st = self.store
        self.killswitch.sync_from_kernel()
        st.save_ledger(self.ledger)
        for s in self.strategies:
            st.save_strategy(s.book, s.state())
        st.set_meta("kernel", {"last_interest_date": self.kernel._last_interest_date})

    def _failed(self, e: Exception) -> None:
        log.error("internal_error", where="pump", error=repr(e))
        self.exit_code = EXIT_INTERNAL
        self.failed = True
        self.stopping.set()

    def _on_status(self, ev: OrderStatusEvent) -> None:
        if ev.state is OrderState.REJECTED and self.store.intent(ev.intent_id) is None:
            log.warning("order_refused", intent=ev.intent_id, book=ev.book, reason=ev.reason, by="kernel")

    def layer_levels(self) -> dict[tuple[str, int], float]:
        """Hedge layers' levels from the strategies' own state (any strategy exposing state()["layers"])."""
        out = {}
        for s in self.strategies:
            try:
                layers = s.state().get("layers")
            except Exception:  # noqa: BLE001 - observability only
                layers = None
            if isinstance(layers, list):
                for i, la in enumerate(layers):
                    if isinstance(la, dict) and isinstance(la.get("level"), (int, float)):
                        out[(s.book, i)] = float(la["level"])
        return out

    def log_layer_changes(self, before: dict, after: dict) -> None:
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

    def spawn(self, coro) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()
            return
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)
        task.add_done_callback(_log_task_error)

    # ---- connection callbacks ------------------------------------------------------------------
    def _on_down(self, reason: str) -> None:
        self.broker.ready = False
        log.warning("trading_paused", reason=reason)

    async def _on_up(self, reason: str) -> None:
        async with self._up_lock:  # 1101 then 1102 in quick succession: one reconcile after the other
            await self._resume(reason)

    def _claim(self) -> None:
        """The login's account, checked; then (and only then) the store is written: identity, schema."""
        account = choose_account(self.conn.managed, self.p.ib.account, self.allow_live, self.p.allow_live)
        mode = account_mode(account, self.rehearsal)
        if self.claimed:
            if account != self.conn.account or mode != self.mode:
                raise AccountRefused(f"the login changed to account {mask(account)} while trading "
                                     f"{mask(self.conn.account)}")
            return
        self.store.claim(mode, account, pid=os.getpid(), config=str(self.cfg.source),
                         started=dt.datetime.now(dt.UTC).isoformat())
        self.conn.account, self.mode, self.claimed = account, mode, True
        self.broker.listening = True

    async def _resume(self, reason: str) -> None:
        try:
            self._claim()
        except (AccountRefused, StateError) as e:
            if self.claimed:  # the login changed under a running daemon: stop trading and stop
                self.killswitch.halt(str(e), by="daemon")
                self.stop("account changed")
            raise
        if reason != "restored_data_kept" or not self.md.subscribed:
            await self.md.subscribe()
        report = await self.broker.reconcile(today=self.today())
        self.check_positions()
        log.info("trading_resumed" if reason != "connected" else "trading_ready", reason=reason,
                 adopted=len(report["adopted"]), resent=len(report["resent"]))
        self._maybe_flush()
        if self.jobs.deferred:
            self.spawn(self.jobs.run_deferred())

    def check_positions(self) -> dict[str, tuple[int, int]]:
        """IB's positions vs the ledger's (instruments expiring today or earlier are skipped: they settle)."""
        today = self.today()
        ib_pos = self.broker.positions()
        ours = self.ledger.net_positions()
        insts = {p.instrument.key: p.instrument for p in self.ledger.positions.values()}
        diff = {}
        for key in set(ib_pos) | set(ours):
            inst = insts.get(key) or self.resolver.instrument_for_key(key)
            expiry = getattr(inst, "expiry", None)
            if expiry is not None and expiry <= today:
                continue
            a, b = ib_pos.get(key, 0), ours.get(key, 0)
            if a != b:
                diff[key] = (a, b)
        self.mismatch = diff
        if diff:
            log.error("position_mismatch", differences={k: {"ib": a, "ledger": b} for k, (a, b) in sorted(diff.items())})
            if self.cfg.risk.halt_on_position_mismatch and self.kernel.halted is None:
                self.killswitch.halt("position mismatch with IB: " + ", ".join(sorted(diff)), by="daemon")
        return diff

    # ---- jobs, end of day ----------------------------------------------------------------------
    async def run_job(self, job) -> None:
        await self.jobs.run(job)

    def end_of_day(self) -> dict[str, int]:
        """Forget what the day finished: the daemon's memory stays the size of one day's working set. (The
        kernel's replay records - equity rows, fills - are a backtest's output; the store holds the daemon's.)"""
        records = self.kernel.records
        for rows in (records.equity, records.fills, records.settlements, records.rejections):
            rows.clear()
        return {"orders": self.broker.prune(), "contracts": self.resolver.prune(), "quotes": self.md.prune(),
                "ib_trades": self.conn.forget_done(DONE_STATUSES)}

    async def _settle_orders(self, seconds: float) -> None:
        await self.broker.wait_final([o.intent_id for o in self.broker.working_orders()], seconds)

    # ---- heartbeat -----------------------------------------------------------------------------
    async def heartbeat(self) -> None:
        if not self.claimed:
            return
        self.killswitch.poll()
        self.killswitch.watch_recovery()
        self.store.heartbeat({
            "pid": os.getpid(), "poll": self.p.halt_poll_seconds, "connection": self.conn.state, "ready": self.broker.ready,
            "halted": self.kernel.halted is not None, "account": mask(self.conn.account),
            "clock": self.clock.now().isoformat(), "equity": round(self.ledger.equity(), 2),
            "working": len(self.broker.working_orders()), "mismatch": len(self.mismatch)})

    async def _heartbeat_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                await self.heartbeat()
            except Exception as e:  # noqa: BLE001
                log.warning("heartbeat_failed", error=repr(e))
            try:
                await asyncio.wait_for(self.stopping.wait(), self.p.halt_poll_seconds)
            except TimeoutError:
                pass

    # ---- running -------------------------------------------------------------------------------
    def stop(self, why: str = "requested") -> None:
        if not self.stopping.is_set():
            log.info("stopping", reason=why)
        self.stopping.set()

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.stop, sig.name)
            except (NotImplementedError, RuntimeError, ValueError):
                pass

    async def _start(self) -> bool:
        self._install_signals()
        self.killswitch.restore()
        start = asyncio.ensure_future(self.conn.start())
        stop = asyncio.ensure_future(self.stopping.wait())
        done, _ = await asyncio.wait({start, stop}, return_when=asyncio.FIRST_COMPLETED)
        if start not in done:
            start.cancel()
            await asyncio.gather(start, return_exceptions=True)
            return False
        stop.cancel()
        try:
            start.result()
        except (AccountRefused, StateError) as e:
            log.error("account_refused", error=str(e))
            self.exit_code = EXIT_REFUSED
            raise
        except (IBTimeout, ConnectionError, OSError, TimeoutError) as e:
            s = self.p.ib
            raise DaemonError(f"could not connect to TWS/Gateway at {s.host}:{s.port} after "
                              f"{s.reconnect_attempts} attempt(s): {e}") from None
        self.spawn(self._heartbeat_loop())
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
                await self.stopping.wait()
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
                if self.stopping.is_set():
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
            while clock.now() < t and not self.stopping.is_set():
                await asyncio.sleep(min(1.0, (t - clock.now()).total_seconds()))
            return
        if clock.speed:
            while clock.now() < t and not self.stopping.is_set():
                await asyncio.sleep(min(0.5, max((t - clock.now()).total_seconds() / clock.speed, 0.001)))
        clock.set(t)

    async def shutdown(self) -> None:
        self.stopping.set()
        for t in list(self._bg):
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
        if self.claimed:
            try:
                with self.store.transaction():
                    self.persist()
            except Exception as e:  # noqa: BLE001
                log.warning("persist_on_shutdown_failed", error=repr(e))
        await self.conn.close()
        if self.claimed:
            self.store.close()
        else:
            self.store.discard()  # a refused start leaves nothing behind (an existing file is untouched)
        log.info("stopped", exit_code=self.exit_code)

