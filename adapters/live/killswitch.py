"""The daemon's kill switch: one halted state, whoever sets it, applied at once and confirmed.

Sources: `alvh halt` (a flag in the store, from another process), a position mismatch after a reconcile, the
engine's loss limits (Kernel.halt inside a snapshot), a recovery that missed its deadline. Whatever the source:
1. the flag is in the store (it survives restarts until `alvh resume`) and the engine's kernel is halted
   (every new order is refused);
2. every order not yet final is cancelled - queued ones never leave, one on its way is stopped before the
   wire, working ones get cancelOrder - synchronously, before anything else runs;
3. the broker's gate, asked immediately before every placeOrder and price step, reads the kernel and the
   store, so even an order already past the kernel cannot reach IB after the flag is committed;
4. once IB confirms every cancel (or `HALT_CONFIRM_SECONDS` pass) a `halt_ack` is written to the store,
   naming what was cancelled and what could not be confirmed; `alvh halt` waits for it.
"""
from __future__ import annotations

import asyncio
import datetime as dt

import structlog

from adapters.live.scheduler import in_reset_window
from adapters.live.view import DaemonView

log = structlog.get_logger("alvh.daemon")

HALT_CONFIRM_SECONDS = 15.0


class KillSwitch:
    def __init__(self, daemon: DaemonView) -> None:
        self.d = daemon
        self._handled: str | None = None        # the halt request already applied
        self.not_ready_since: float | None = None

    # ---- the broker's gate ---------------------------------------------------------------------
    def gate(self) -> str | None:
        """Why no order may reach IB right now, else None. Cheap: one SQLite read."""
        d = self.d
        if d.kernel.halted:
            return f"trading halted: {d.kernel.halted}"
        if d.store.halted() is not None:
            self.poll()
            return f"trading halted: {d.kernel.halted}"
        if in_reset_window(d.clock.now(), d.p.schedule):
            return "inside the broker reset window"
        return None

    # ---- halting -------------------------------------------------------------------------------
    def halt(self, reason: str, *, by: str) -> None:
        """Halt now (synchronous): store flag, kernel halted, every order cancelled; confirmation follows."""
        self.d.store.set_halted(reason or "halted", by=by)
        self.poll()

    def sync_from_kernel(self) -> None:
        """The engine halted on its own (a loss limit inside a snapshot): persist it, cancel, confirm. Runs
        inside the snapshot's transaction, so the flag commits with the decision that breached the limit."""
        d = self.d
        if d.kernel.halted and d.store.halted() is None:
            d.store.set_halted(d.kernel.halted, by="engine")
            self.poll()

    def restore(self) -> None:
        """At start: a stored halt applies to the kernel before anything is reconciled or sent (confirmed by
        the first poll, once the login is accepted and the store may be written)."""
        flag = self.d.store.halted()
        if flag is not None and self.d.kernel.halted is None:
            self.d.kernel.halt(flag.get("reason", "") or "halted")

    def poll(self) -> None:
        """Bring the engine in line with the store: a new halt request (`alvh halt`, or one of the daemon's
        own) halts the kernel and cancels every order, then is confirmed; no flag (`alvh resume`) resumes."""
        d = self.d
        flag = d.store.halted()
        if flag is None:
            if d.kernel.halted is not None:
                d.kernel.resume()
                self._handled = None
                log.info("resumed")
            return
        request = d.store.halt_request() or flag
        if request.get("at") == self._handled:
            return
        self._handled = request.get("at")
        reason = flag.get("reason", "") or "halted"
        intents = [o.intent_id for o in d.broker.working_orders()]
        if d.kernel.halted is None:
            d.kernel.halt(reason)  # cancels every order; the broker reads the reason through its gate
            log.warning("halted", reason=reason, by=flag.get("by", ""), cancelling=intents)
        d.broker.cancel_all(f"trading halted: {reason}")  # an order on its way, or a second `alvh halt`
        d.spawn(self._confirm(request, intents))

    async def _confirm(self, request: dict, intents: list[str]) -> None:
        d = self.d
        unconfirmed = await d.broker.wait_final(intents, HALT_CONFIRM_SECONDS)
        unconfirmed += [o.intent_id for o in d.broker.working_orders() if o.intent_id not in unconfirmed]
        ack = {"for": request.get("at"), "at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
               "cancelled": [i for i in intents if i not in unconfirmed], "unconfirmed": sorted(set(unconfirmed))}
        if d.store.halted() is not None:
            d.store.set_meta("halt_ack", ack)
        if unconfirmed:
            log.error("halt_unconfirmed", cancelled=ack["cancelled"], unconfirmed=ack["unconfirmed"])
        else:
            log.info("halt_confirmed", cancelled=ack["cancelled"])

    # ---- recovery deadline ---------------------------------------------------------------------
    def watch_recovery(self) -> None:
        """Halt with a reason when trading has not been ready for `recovery_deadline_seconds`."""
        d = self.d
        loop = asyncio.get_running_loop()
        if d.broker.ready and d.conn.is_up:
            self.not_ready_since = None
            return
        if self.not_ready_since is None:
            self.not_ready_since = loop.time()
            return
        waited = loop.time() - self.not_ready_since
        if waited > d.p.recovery_deadline_seconds and d.kernel.halted is None:
            self.halt(f"recovery failed: not reconnected and reconciled for {waited:.0f}s "
                      f"(last error: {d.conn.last_error or 'none'})", by="daemon")
