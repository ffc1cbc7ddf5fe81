"""The daemon's scheduled jobs: pre-open checks, snapshot decisions, end of day.

A snapshot job builds a MarketSnapshot from IB quotes, runs the kernel (the strategies decide) and commits the
new journal rows, strategy states, ledger and the job's done-marker in ONE transaction; only then are the new
orders sent. A job is never run twice for a session.

A job that finds trading not ready (disconnected, or a reconcile still failing) waits `ready_wait_seconds`,
then is *deferred*, not dropped: when trading is ready again it runs if its window is still open, else it is
recorded as skipped. Windows (scheduler.job_window): a snapshot job until the next snapshot job of the session
(the close job until the session close), the pre-open check until the open job, the end-of-day job until
midnight. So at most one decision per window, and never a decision on a phase that has passed.
"""
from __future__ import annotations

import asyncio
from typing import Any

import structlog

from adapters.ib.accounts import mask
from adapters.live.scheduler import Job, job_window
from adapters.live.view import DaemonView
from engine.crashpoints import crashpoint
from engine.events import MarketSnapshot, Phase

log = structlog.get_logger("alvh.daemon")


class Jobs:
    def __init__(self, daemon: DaemonView) -> None:
        self.d = daemon
        self.deferred: dict[str, Job] = {}
        self.ran: list[str] = []

    async def run(self, job: Job) -> None:
        d = self.d
        if d.store.job_done(job.session, job.name):
            log.info("job_skipped", job=job.name, session=str(job.session), reason="already done")
            return
        log.info("job_started", job=job.name, session=str(job.session), at=job.at.isoformat())
        try:
            if job.kind == "preopen":
                done = await self._preopen(job)
            elif job.kind == "snapshot":
                done = await self._snapshot(job)
            else:
                done = await self._eod(job)
        except Exception as e:
            log.error("job_failed", job=job.name, error=repr(e))
            if d.failed:
                raise
            return
        if done:
            self.deferred.pop(job.key, None)
            self.ran.append(job.name)

    def _defer(self, job: Job) -> bool:
        end = job_window(job, self.d.p.schedule)
        log.error("job_deferred", job=job.name, reason="not connected/reconciled", until=end.isoformat())
        self.deferred[job.key] = job
        return False

    async def run_deferred(self) -> None:
        """Trading is ready again: run each deferred job whose window is still open (in time order)."""
        d = self.d
        now = d.clock.now()
        for key, job in sorted(self.deferred.items(), key=lambda kv: kv[1].at):
            if job_window(job, d.p.schedule) <= now:
                self.deferred.pop(key, None)
                log.warning("job_skipped", job=job.name, session=str(job.session), reason="window passed while "
                            "trading was not ready")
                d.store.mark_job_done(job.session, job.name)
                continue
            await self.run(job)

    async def _ready(self) -> bool:
        return await self.d.broker.wait_ready(self.d.p.ready_wait_seconds, self.d.stopping.is_set)

    async def _preopen(self, job: Job) -> bool:
        d = self.d
        ok = await self._ready()
        info: dict[str, Any] = {"connected": ok, "account": mask(d.conn.account), "halted": bool(d.store.halted())}
        if ok:
            _, rep = await d.md.snapshot(Phase.OPEN, job.session)
            info.update(market_data=rep.usable, missing=rep.missing, stale=rep.stale)
            d.check_positions()
            info["position_mismatch"] = len(d.mismatch)
        log.info("preopen_ok" if ok and info.get("market_data") and not d.mismatch else "preopen_problem", **info)
        d.store.mark_job_done(job.session, job.name)
        return True

    async def _snapshot(self, job: Job) -> bool:
        d = self.d
        if d.store.halted():
            log.warning("job_skipped", job=job.name, reason="halted")
            d.store.mark_job_done(job.session, job.name)
            return True
        if not await self._ready():
            return self._defer(job)
        quotes, rep = None, None
        for attempt in range(3):
            quotes, rep = await d.md.snapshot(job.phase, job.session)
            if quotes is not None:
                break
            log.warning("snapshot_incomplete", job=job.name, attempt=attempt + 1, missing=rep.missing, stale=rep.stale)
            await asyncio.sleep(1.0)
        if quotes is None:
            log.error("snapshot_skipped", job=job.name, missing=rep.missing, stale=rep.stale)
            d.store.mark_job_done(job.session, job.name)
            return True
        if rep.missing or rep.stale:
            log.warning("market_data_partial", job=job.name, missing=rep.missing, stale=rep.stale)
        snap = MarketSnapshot(d.clock.now(), job.session, job.phase, quotes)
        before = set(d.store.intent_ids(since=job.session))
        levels = d.layer_levels()

        def decided() -> None:
            crashpoint("decision_made")
            d.store.mark_job_done(job.session, job.name)

        d.pump([snap], then=decided)
        crashpoint("decision_committed")
        d.log_layer_changes(levels, d.layer_levels())
        new = [i for i in d.store.intent_ids(since=job.session) if i not in before]
        log.info("snapshot_processed", job=job.name, phase=job.phase.value, spx=quotes.spx, vix=quotes.vix,
                 vx=len(quotes.vx), equity=round(d.ledger.equity(), 2), new_intents=new)
        await d.broker.flush()
        return True

    async def _eod(self, job: Job) -> bool:
        d = self.d
        cancelled = d.broker.cancel_all("end of day") if d.conn.is_up else []
        if cancelled:
            await d.broker.wait_final(cancelled, 10.0)
        if d.conn.is_up and d.broker.ready:
            try:
                await d.broker.reconcile(today=job.session, allow_resend=False)
                d.check_positions()
            except Exception as e:  # noqa: BLE001 - the summary still gets written; recovery retries
                log.warning("eod_reconcile_failed", error=repr(e))
                d.conn.recover("eod_reconcile_failed")
        d.pump([], then=lambda: d.store.mark_job_done(job.session, job.name))
        pruned = d.end_of_day()
        if d.conn.is_up:  # tomorrow's VX months: a daemon can stay connected for days
            try:
                await d.md.roll()
            except Exception as e:  # noqa: BLE001 - the next (re)connection subscribes again
                log.warning("market_data_roll_failed", error=repr(e))
        intents = d.store.intents(session=job.session)
        states: dict[str, int] = {}
        for r in intents:
            states[r.state] = states.get(r.state, 0) + 1
        log.info("daily_summary", session=str(job.session), equity=round(d.ledger.equity(), 2),
                 cash=round(d.ledger.cash, 2), positions=len(d.ledger.positions),
                 books={s.book: round(d.ledger.book_pnl(s.book), 2) for s in d.strategies},
                 intents=states, fills=len(d.store.fills(session=job.session)),
                 position_mismatch=len(d.mismatch), cancelled_at_eod=len(cancelled), pruned=pruned)
        return True
