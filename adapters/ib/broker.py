"""IBBroker: engine.ports.Broker over ib_async. Strategies never see an ib_async object.

Orders
- A multi-leg intent (the iron condor) goes out as ONE BAG order: action BUY, legs BUY/SELL by the
  sign of their ratio, a whole-order limit in the engine's convention (positive = debit paid,
  negative = credit received - so a condor credit of 1.85 is a BUY at -1.85). No per-leg prices, no
  NonGuaranteed, and never a contract-details request for the BAG.
- A single-leg intent (VX future, VIX option, ETP) goes out as a plain limit order.
- Prices walk from the mid toward the bound (orders.py); orderRef = the intent id, so an order is
  recognised after a restart.
- Risk limits and the kill switch are the engine's (the kernel checks every order before it gets here).
  The broker only honours them at the wire: `gate()` (set by the owner) is asked immediately before every
  placeOrder and every price step, with no await in between, and a cancel requested while an order is on
  its way aborts it before it reaches IB. So once a halt is set, nothing more reaches IB.

Journal (the engine's OrderJournal port): `submit` journals the intent (state pending) inside the
caller's transaction and queues it; `flush()` sends queued intents (pending -> sending -> working).
Journal state changes a strategy must see (working, filled, cancelled, rejected) are written by the
broker's own bus handlers, i.e. in the same transaction as the strategy's reaction. `emit` (set by the
owner) publishes engine events and runs the bus inside one journal transaction.

Events from IB -> engine events: order status -> OrderStatusEvent; executions + commission reports ->
FillEvents and final states (executions.py); positions are kept for `positions()`; reconcile.py resolves the journal
against IB after every (re)connection.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import structlog

from adapters.ib.connection import Connection, IBTimeout
from adapters.ib.contracts import ContractError, ContractResolver
from adapters.ib.errors import ACKED_STATUSES, ErrorKind, classify
from adapters.ib.executions import Fills
from adapters.ib.marketdata import MarketData
from adapters.ib.orders import TERMINAL_IB, LiveOrder, ib_limit, price_path
from adapters.ib.reconcile import Reconciler
from config.daemon import OrderParams
from engine.bus import EventBus
from engine.crashpoints import crashpoint
from engine.events import Event, FillEvent, OrderState, OrderStatusEvent
from engine.execution import ExecutionSimulator
from engine.orders import OrderRequest
from engine.ports import OrderJournal

log = structlog.get_logger("alvh.ib")

_JOURNAL_STATE = {OrderState.WORKING: "working", OrderState.PARTIALLY_FILLED: "partially_filled",
                  OrderState.FILLED: "filled", OrderState.CANCELLED: "cancelled", OrderState.REJECTED: "rejected",
                  OrderState.PENDING: "pending"}


class IBBroker:
    def __init__(self, conn: Connection, resolver: ContractResolver, market_data: MarketData, journal: OrderJournal,
                 *, clock, orders: OrderParams | None = None, execution: ExecutionSimulator | None = None,
                 gate: Callable[[], str | None] | None = None, listening: bool = True) -> None:
        self.conn = conn
        self.ib = conn.ib
        self.resolver = resolver
        self.md = market_data
        self.journal = journal
        self.clock = clock
        self.p = orders or OrderParams()
        self.execution = execution or ExecutionSimulator()
        self.gate: Callable[[], str | None] = gate or (lambda: None)
        self.emit: Callable[[list[Event]], None] = self._unwired
        # IB's order/execution events are ignored until the owner has checked the login (the reconcile
        # after that asks IB for everything again): nothing is journaled for an account not yet accepted
        self.listening = listening
        self.bus: EventBus | None = None
        self._ready = False
        self._ready_event = asyncio.Event()
        self._live: dict[str, LiveOrder] = {}
        self._queue: list[str] = []
        self._positions: dict[str, int] = {}
        self.order_errors: dict[int, tuple[int, str]] = {}
        self._flush_lock = asyncio.Lock()
        self._unsynced = False  # intents journaled since the last journal.sync()
        self._tasks: set[asyncio.Task] = set()
        self.sent_orders = 0
        self.fills = Fills(self)
        self.reconciler = Reconciler(self, self.fills)
        ib = self.ib
        ib.orderStatusEvent += self._on_trade_status
        ib.execDetailsEvent += self.fills.on_exec_details
        ib.commissionReportEvent += self.fills.on_commission
        ib.positionEvent += self._on_position
        ib.errorEvent += self._on_error

    @staticmethod
    def _unwired(events: list[Event]) -> None:
        raise RuntimeError("IBBroker.emit is not wired (the owner publishes events through its journal pump)")

    # ---- readiness: connected and reconciled ---------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._ready

    @ready.setter
    def ready(self, value: bool) -> None:
        self._ready = bool(value)
        if self._ready:
            self._ready_event.set()
        else:
            self._ready_event.clear()

    # ---- Broker port ---------------------------------------------------------------------------
    def bind(self, bus: EventBus) -> None:
        self.bus = bus
        bus.subscribe(FillEvent, self.fills.on_engine_fill)
        bus.subscribe(OrderStatusEvent, self._record_engine_status)

    def submit(self, order: OrderRequest) -> None:
        existing = self.journal.intent(order.intent_id)
        if existing is not None:
            log.info("duplicate_intent_ignored", intent=order.intent_id, state=existing.state)
            return
        self.journal.journal(order, self._today(), state="pending")
        self._unsynced = True
        self._live[order.intent_id] = LiveOrder(order)
        self._queue.append(order.intent_id)
        log.info("order_journaled", intent=order.intent_id, book=order.book, purpose=order.purpose,
                 legs=[f"{leg.ratio:+d} {leg.key}" for leg in order.legs], quantity=order.quantity, limit=order.limit)

    def cancel(self, intent_id: str, reason: str | None = None) -> None:
        """Cancel an order wherever it is: queued -> never sent; on its way -> aborted before the wire;
        at IB -> cancelOrder (again after a reconnect if IB could not be told). Without a reason the gate's
        (a halt) or the strategy's."""
        live = self._live.get(intent_id)
        if live is None or live.final:
            return
        reason = reason or self.gate() or "cancelled by strategy"
        if intent_id in self._queue:
            self._queue.remove(intent_id)
            self.finish_unsent(live, f"{reason}: never sent")
            return
        if not live.cancel_requested:
            live.cancel_requested, live.cancel_reason = True, reason
        if live.trade is not None and not live.cancel_sent:
            self.spawn(self.cancel_at_ib(intent_id, reason))

    def working_orders(self) -> list[OrderRequest]:
        return [lv.order for lv in self._live.values() if not lv.final]

    def positions(self) -> dict[str, int]:
        return {k: q for k, q in self._positions.items() if q}

    def set_positions(self, positions: dict[str, int]) -> None:
        self._positions = dict(positions)

    def live(self, intent_id: str) -> LiveOrder | None:
        return self._live.get(intent_id)

    def track(self, order: OrderRequest) -> LiveOrder:
        live = self._live.get(order.intent_id)
        if live is None:
            live = self._live[order.intent_id] = LiveOrder(order)
        return live

    # ---- helpers -------------------------------------------------------------------------------
    def now(self) -> dt.datetime:
        now = self.clock.now()
        if self.bus is not None and self.bus.now is not None and now < self.bus.now:
            return self.bus.now
        return now

    def _today(self) -> dt.date:
        return self.clock.now().date()

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("broker_task_failed", error=repr(task.exception()))

    def status_event(self, order: OrderRequest, state: OrderState, filled: int, reason: str = "") -> OrderStatusEvent:
        return OrderStatusEvent(self.now(), order.intent_id, order.book, state, filled, order.quantity - filled, reason)

    @staticmethod
    def mark_final(live: LiveOrder) -> None:
        live.final = True
        live.done.set()

    def stopped(self, live: LiveOrder) -> str | None:
        """Why this order must not reach IB now (its own cancel, or the owner's gate), else None."""
        if live.cancel_requested:
            return live.cancel_reason or "cancelled"
        return self.gate()

    # ---- sending -------------------------------------------------------------------------------
    def has_queued(self) -> bool:
        return bool(self._queue)

    def is_queued(self, intent_id: str) -> bool:
        return intent_id in self._queue

    def requeue(self, intent_id: str) -> None:
        if intent_id not in self._queue:
            self._queue.append(intent_id)

    async def flush(self) -> None:
        """Send every queued intent, in decision order (one flush at a time)."""
        async with self._flush_lock:
            while self._queue:
                intent = self._queue.pop(0)
                live = self._live.get(intent)
                if live is None or live.final or live.trade is not None:
                    continue
                if not await self.wait_ready(self.p.send_deadline_seconds, lambda lv=live: self.stopped(lv)) \
                        or self.stopped(live):
                    if not live.final:
                        why = self.stopped(live)
                        self.finish_unsent(live, why or "not connected within the send deadline")
                    continue
                if self._unsynced:  # the decision is on disk before its order can reach IB
                    self.journal.sync()
                    self._unsynced = False
                try:
                    await self._send(live)
                except (ContractError, IBTimeout) as e:
                    log.error("order_send_failed", intent=intent, error=str(e))
                    self._reject(live, str(e))
                except (ConnectionError, OSError) as e:
                    # the socket went away mid-send: keep the intent; the reconcile after the reconnect
                    # decides whether IB got it (adopt) or not (send again, same intent id)
                    log.warning("order_send_interrupted", intent=intent, error=str(e) or type(e).__name__)
                    if live.trade is None and intent not in self._queue:
                        self._queue.insert(0, intent)

    async def wait_ready(self, timeout: float, give_up: Callable[[], object] | None = None) -> bool:
        """Wait until connected and reconciled; False after `timeout` or once `give_up()` is true (checked at
        least every 0.25 s while waiting; no wait at all when ready)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not (self._ready and self.conn.is_up):
            if (give_up is not None and give_up()) or loop.time() >= end:
                return False
            try:
                await asyncio.wait_for(self._ready_event.wait(), min(0.25, max(end - loop.time(), 0.001)))
            except TimeoutError:
                pass
        return True

    async def _send(self, live: LiveOrder) -> None:
        from ib_async import LimitOrder

        order = live.order
        intent = order.intent_id
        insts = [leg.instrument for leg in order.legs]
        contracts = await self.resolver.resolve(insts)
        # the order's own message is paced before its quotes are asked for, so nothing waits between the
        # quotes and the wire (a quote a pacer wait old is a worse price)
        await self.conn.pacer.acquire()
        quotes = await self.md.leg_quotes(insts)
        path, source = price_path(order, quotes, self.p)
        if not path:
            self._reject(live, "no usable quotes and no limit")
            return
        if order.is_combo:
            contract = self.resolver.bag(order.legs)
            action, qty = "BUY", order.quantity
        else:
            leg = order.legs[0]
            contract = contracts[leg.key]
            action, qty = ("BUY" if leg.ratio > 0 else "SELL"), order.quantity * abs(leg.ratio)
        lmt = ib_limit(order, path[0])
        ib_order = LimitOrder(action, qty, round(lmt, 6), orderRef=intent, tif=order.tif or "DAY", transmit=True)
        if self.conn.account:
            ib_order.account = self.conn.account
        crashpoint("order_sending")
        # the last look before the wire: nothing awaits between this check and placeOrder
        stop = self.stopped(live) or (None if self.conn.is_up else "not connected")
        if stop is not None:
            if self.conn.is_up or live.cancel_requested:
                self.finish_unsent(live, f"not sent: {stop}")
            elif intent not in self._queue:
                self._queue.insert(0, intent)  # lost the connection on the way: send after the reconcile
            return
        trade = self.ib.placeOrder(contract, ib_order)
        live.trade, live.path, live.step = trade, path, 0
        self.sent_orders += 1
        crashpoint("order_placed")
        row = self.journal.intent(intent)
        self.journal.update_intent(intent, state="sending", sends=(row.sends if row else 0) + 1, working_price=path[0],
                                   order_id=int(trade.order.orderId), client_id=int(self.conn.client_id or 0))
        log.info("order_submitted", intent=intent, order_id=trade.order.orderId, action=action, quantity=qty,
                 limit=round(lmt, 4), combo=order.is_combo, price_source=source, path=[round(p, 4) for p in path])
        if source != "quotes":
            log.warning("order_priced_without_quotes", intent=intent,
                        legs={k: q.reason for k, q in quotes.items() if not q.ok}, limit=path[0])
        live.task = self.spawn(self.work(intent))

    async def work(self, intent: str) -> None:
        """Walk the limit toward the bound one step every `step_seconds`, then time out and cancel.
        A step is only taken on an acknowledged order while connected (never a modify in flight during
        a connectivity loss); the whole walk is bounded by steps x step_seconds + timeout_seconds."""
        live = self._live[intent]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.p.step_seconds * max(len(live.path) - 1, 0) + self.p.timeout_seconds
        while live.step < len(live.path) - 1 and loop.time() < deadline:
            if await self._wait_done(live, self.p.step_seconds):
                return
            if not self._can_modify(live):
                continue
            await self._modify(live, live.step + 1)
        remaining = deadline - loop.time()
        if remaining > 0 and await self._wait_done(live, remaining):
            return
        if not live.final:
            await self.cancel_at_ib(intent, "timed out")

    def _can_modify(self, live: LiveOrder) -> bool:
        trade = live.trade
        return (trade is not None and not live.final and self._ready and self.conn.is_up
                and trade.orderStatus.status in ACKED_STATUSES and self.stopped(live) is None)

    async def _wait_done(self, live: LiveOrder, seconds: float) -> bool:
        try:
            await asyncio.wait_for(live.done.wait(), seconds)
            return True
        except TimeoutError:
            return live.final

    async def _modify(self, live: LiveOrder, step: int) -> None:
        order = live.order
        await self.conn.pacer.acquire()
        if not self._can_modify(live):  # re-checked after the only await: a halt in between wins
            log.info("price_step_skipped", intent=order.intent_id, connected=self.conn.is_up,
                     stopped=self.stopped(live))
            return
        net = live.path[step]
        lmt = ib_limit(order, net)
        live.step = step
        trade = live.trade
        trade.order.lmtPrice = round(lmt, 6)
        self.ib.placeOrder(trade.contract, trade.order)
        self.journal.update_intent(order.intent_id, working_price=net, steps_done=step)
        log.info("order_price_step", intent=order.intent_id, step=step, limit=round(lmt, 4))

    def own(self, live: LiveOrder) -> bool:
        return live.trade is not None and int(live.trade.order.clientId or 0) == int(self.conn.client_id or -1)

    async def cancel_at_ib(self, intent: str, reason: str) -> None:
        live = self._live.get(intent)
        if live is None or live.final or live.trade is None:
            return
        live.cancel_requested = True
        live.cancel_reason = live.cancel_reason or reason
        if not self.own(live):
            log.warning("cancel_impossible", intent=intent, client_id=live.trade.order.clientId,
                        reason="the order belongs to another client id")
            return
        if not self.conn.is_up:
            log.warning("cancel_deferred", intent=intent, reason="not connected: cancelled after the reconnect")
            return
        if live.cancel_sent:
            return
        live.cancel_sent = True
        await self.conn.pacer.acquire()
        if live.final:
            return
        self.ib.cancelOrder(live.trade.order)
        log.info("order_cancel_requested", intent=intent, reason=reason)

    def finish_unsent(self, live: LiveOrder, reason: str) -> None:
        if live.final:
            return
        self.mark_final(live)
        live.abandoned = True
        log.warning("order_abandoned", intent=live.intent_id, reason=reason)
        self.emit([self.status_event(live.order, OrderState.CANCELLED, 0, reason)])

    def _reject(self, live: LiveOrder, reason: str) -> None:
        if live.final:
            return
        self.mark_final(live)
        filled = self.journal.filled_units(live.intent_id)
        state = OrderState.REJECTED if filled == 0 else OrderState.CANCELLED
        log.warning("order_rejected", intent=live.intent_id, reason=reason, filled=filled)
        self.emit([self.status_event(live.order, state, filled, reason)])

    # ---- IB events -----------------------------------------------------------------------------
    def _on_error(self, req_id: int, code: int, message: str, contract: Any) -> None:
        if not self.listening:
            return
        kind = classify(code)
        if kind in (ErrorKind.ORDER_REJECTED, ErrorKind.ORDER_CANCELLED, ErrorKind.ORDER_WARNING,
                    ErrorKind.DUPLICATE_ORDER_ID) and req_id > 0:
            self.order_errors[req_id] = (code, message)
            intent = next((i for i, lv in self._live.items() if lv.order_id == req_id), None)
            log.warning("order_error", intent=intent, order_id=req_id, code=code, kind=kind.value, message=message)

    def _on_trade_status(self, trade) -> None:
        if not self.listening:
            return
        intent = getattr(trade.order, "orderRef", "") or ""
        live = self._live.get(intent)
        if live is None or live.final:
            return
        live.trade = trade
        status = trade.orderStatus.status
        live.ib_status = status
        if status in ACKED_STATUSES and not live.acked:
            live.acked = True
            self.journal.update_intent(intent, order_id=int(trade.order.orderId),
                                       perm_id=int(trade.order.permId or 0) or None)
            filled = self.journal.filled_units(intent)
            log.info("order_acknowledged", intent=intent, order_id=trade.order.orderId, perm_id=trade.order.permId)
            self.emit([self.status_event(live.order, OrderState.WORKING if filled == 0 else OrderState.PARTIALLY_FILLED,
                                    filled)])
            crashpoint("order_acked")
        if status == "Filled" or status in TERMINAL_IB:
            code = self.order_errors.get(int(trade.order.orderId or 0))
            if code is not None:
                live.last_error, live.last_error_msg = code
            else:
                for entry in reversed(trade.log):
                    if getattr(entry, "errorCode", 0):
                        live.last_error, live.last_error_msg = entry.errorCode, entry.message
                        break
            self.fills.schedule(intent, self.p.commission_wait_seconds, finalize=True)

    def _on_position(self, position) -> None:
        if not self.listening:
            return
        inst = self.resolver.instrument_for(position.contract)
        key = inst.key if inst is not None else f"conId:{position.contract.conId}"
        self._positions[key] = round(position.position)

    # ---- journal updates from engine events (same transaction as the strategy's reaction) ------
    def _record_engine_status(self, ev: OrderStatusEvent) -> None:
        row = self.journal.intent(ev.intent_id)
        if row is None:
            return
        state = _JOURNAL_STATE[ev.state]
        if row.final and state not in ("filled", "cancelled", "rejected"):
            return
        live = self._live.get(ev.intent_id)
        if state == "cancelled" and live is not None and live.abandoned:
            state = "abandoned"
        self.journal.update_intent(ev.intent_id, state=state, filled=ev.filled, reason=ev.reason[:500])

    # ---- stopping everything -------------------------------------------------------------------
    def cancel_all(self, reason: str) -> list[str]:
        """Cancel every order not yet final (queued, on its way, or at IB); the intents concerned."""
        out = []
        for intent, live in list(self._live.items()):
            if not live.final:
                self.cancel(intent, reason)
                out.append(intent)
        return out

    async def wait_final(self, intents: list[str], timeout: float) -> list[str]:
        """Wait until these orders are final (IB confirmed); the ones still not final after `timeout`."""
        pending = [self._live[i] for i in intents if i in self._live and not self._live[i].final]
        if pending:
            waits = [asyncio.ensure_future(lv.done.wait()) for lv in pending]
            await asyncio.wait(waits, timeout=timeout)
            for w in waits:
                w.cancel()
        return [lv.intent_id for lv in pending if not lv.final]

    # ---- reconcile, pruning, shutdown ---------------------------------------------------------
    async def reconcile(self, *, today: dt.date, allow_resend: bool = True) -> dict:
        return await self.reconciler.run(today=today, allow_resend=allow_resend)

    def prune(self) -> int:
        """Forget finished orders (end of day): the maps stay the size of one day's working set."""
        done = [i for i, lv in self._live.items() if lv.final and not self.fills.pending(i) and i not in self._queue]
        for intent in done:
            del self._live[intent]
        live_ids = {lv.order_id for lv in self._live.values()}
        self.order_errors = {k: v for k, v in self.order_errors.items() if k in live_ids}
        self.fills.forget()
        return len(done)

    async def close(self) -> None:
        self.fills.close()
        if self.p.cancel_on_shutdown and self.conn.is_up:
            intents = self.cancel_all("shutdown")
            await self.wait_final(intents, 5.0)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
