"""IBBroker: engine.ports.Broker over ib_async. Strategies never see an ib_async object.

Orders
- A multi-leg intent (the iron condor) goes out as ONE BAG order: action BUY, legs BUY/SELL by the
  sign of their ratio, a whole-order limit in the engine's convention (positive = debit paid,
  negative = credit received - so a condor credit of 1.85 is a BUY at -1.85). No per-leg prices, no
  NonGuaranteed, and never a contract-details request for the BAG.
- A single-leg intent (VX future, VIX option, ETP) goes out as a plain limit order.
- Price improvement: the first limit is the combo mid from IB's leg quotes (plus `start_fraction` of
  the way to the natural price); every `step_seconds` it moves one of `improve_steps` steps toward
  the bound, which is the natural price scaled by `max_concession` and never worse than the
  strategy's own limit. After the last step the order waits `timeout_seconds`, then is cancelled.
  Without usable leg quotes the order is priced at the strategy's limit (logged, not silent).
- orderRef = the intent id, so an order is recognised after a restart.
- Risk limits (max contracts per order, max orders per day, max hedge notional per order) and the
  kill switch are enforced here, after the kernel's buying-power check.

Journal (adapters.live.state): `submit` journals the intent (state pending) inside the caller's
transaction and queues it; `flush()` sends queued intents (pending -> sending -> working). Journal
state changes that a strategy must see (working, filled, cancelled, rejected) are written by the
broker's own bus handlers, i.e. in the same transaction as the strategy's reaction.

Events from IB -> engine events: order status -> OrderStatusEvent; executions (deduplicated by
execId in the store) + commission reports -> FillEvent once whole combo units are complete
(partial fills produce several FillEvents); positions are kept for `positions()`.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import StrictBool

from adapters.ib.connection import Connection, IBTimeout, bounded
from adapters.ib.contracts import ContractError, ContractResolver
from adapters.ib.errors import ACKED_STATUSES, ErrorKind, classify
from adapters.ib.marketdata import LegQuote, MarketData
from adapters.live import crashpoint
from adapters.live.state import StateStore
from config.daemon import OrderParams
from engine.bus import EventBus
from engine.events import Event, FillEvent, LegFill, OrderState, OrderStatusEvent
from engine.execution import ExecutionSimulator
from engine.instruments import Equity, FutureContract, OptionContract
from engine.limits import RiskLimits
from engine.marketmodel import MarketModel
from engine.orders import OrderRequest

log = structlog.get_logger("alvh.ib")

TERMINAL_IB = frozenset({"Cancelled", "ApiCancelled", "Inactive"})


# ---- pricing ---------------------------------------------------------------------------------
def option_tick(price: float) -> float:
    return 0.05 if abs(price) < 3.0 - 1e-9 else 0.10


def leg_tick(inst, price: float) -> float:
    if isinstance(inst, OptionContract):
        return option_tick(price)
    if isinstance(inst, FutureContract):
        return 0.05
    return 0.01


def floor_tick(x: float, tick: float) -> float:
    return round(math.floor(x / tick + 1e-9) * tick, 10)


def price_path(order: OrderRequest, quotes: dict[str, LegQuote] | None, params: OrderParams) -> tuple[list[float], str]:
    """Net limit prices (engine convention, per combo unit) to try in turn, and where they came from.

    Lower is always better for us (less debit / more credit); every price is rounded to the tick in
    our favour, so it is never worse than the bound."""
    legs = order.legs
    usable = quotes is not None and all(quotes.get(leg.key) is not None and quotes[leg.key].ok for leg in legs)
    if not usable:
        if order.limit is None:
            return [], "no quotes and no limit"
        return [round_net(order, order.limit, params.combo_tick)], "strategy_limit"
    mid = sum(leg.ratio * quotes[leg.key].mid for leg in legs)
    natural = sum(leg.ratio * (quotes[leg.key].ask if leg.ratio > 0 else quotes[leg.key].bid) for leg in legs)
    span = max(natural - mid, 0.0)
    start = mid + params.start_fraction * span
    bound = mid + params.max_concession * span
    if order.limit is not None:
        bound = min(bound, order.limit)
    if start > bound:
        return [round_net(order, bound, params.combo_tick)], "quotes"
    n = params.improve_steps
    path = [start + (bound - start) * k / n for k in range(n + 1)] if n else [bound]
    out: list[float] = []
    for p in path:
        r = round_net(order, p, params.combo_tick)
        if not out or abs(r - out[-1]) > 1e-9:
            out.append(r)
    return out, "quotes"


def round_net(order: OrderRequest, net: float, combo_tick: float = 0.05) -> float:
    """Round a net price to the order's tick in our favour (combos: the combo tick; single legs: the
    leg's own tick in leg-price space - down for a buy, up for a sell)."""
    if order.is_combo:
        return floor_tick(net, combo_tick)
    leg = order.legs[0]
    px = net / leg.ratio
    tick = leg_tick(leg.instrument, abs(px))
    px = floor_tick(px, tick) if leg.ratio > 0 else ceil_tick(px, tick)
    return round(px * leg.ratio, 10)


def ceil_tick(x: float, tick: float) -> float:
    return round(math.ceil(x / tick - 1e-9) * tick, 10)


# ---- live order bookkeeping -----------------------------------------------------------------
@dataclass
class _Live:
    order: OrderRequest
    trade: Any = None
    path: list[float] = field(default_factory=list)
    step: int = 0
    acked: StrictBool = False
    final: StrictBool = False
    ib_status: str = ""
    last_error: int | None = None
    last_error_msg: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None
    cancel_requested: StrictBool = False


class IBBroker:
    def __init__(self, conn: Connection, resolver: ContractResolver, market_data: MarketData, store: StateStore, *,
                 clock, orders: OrderParams | None = None, risk: RiskLimits | None = None,
                 execution: ExecutionSimulator | None = None,
                 block_reason: Callable[[], str | None] | None = None) -> None:
        self.conn = conn
        self.ib = conn.ib
        self.resolver = resolver
        self.md = market_data
        self.store = store
        self.clock = clock
        self.p = orders or OrderParams()
        self.risk = (risk or RiskLimits()).with_live_defaults()
        self.execution = execution or ExecutionSimulator()
        self.block_reason = block_reason or (lambda: None)
        self.bus: EventBus | None = None
        self.market: MarketModel | None = None
        self.ready = False                     # True once connected and reconciled
        self.halted = False
        self._live: dict[str, _Live] = {}
        self._queue: list[str] = []
        self._fill_execs: dict[str, list[str]] = {}
        self._positions: dict[str, int] = {}
        self._pending_agg: dict[str, asyncio.TimerHandle] = {}
        self._pending_final: set[str] = set()
        self._order_errors: dict[int, tuple[int, str]] = {}
        self._emitting = False
        self._abandoning: set[str] = set()
        self._flush_lock = asyncio.Lock()
        self.emit: Callable[[list[Event]], None] = self._default_emit
        self._tasks: set[asyncio.Task] = set()
        self.sent_orders = 0
        ib = self.ib
        ib.orderStatusEvent += self._on_trade_status
        ib.execDetailsEvent += self._on_exec_details
        ib.commissionReportEvent += self._on_commission
        ib.positionEvent += self._on_position
        ib.errorEvent += self._on_error

    # ---- Broker port ---------------------------------------------------------------------------
    def bind(self, bus: EventBus) -> None:
        self.bus = bus
        bus.subscribe(FillEvent, self._record_engine_fill)
        bus.subscribe(OrderStatusEvent, self._record_engine_status)

    def on_market(self, market: MarketModel) -> None:
        self.market = market

    def submit(self, order: OrderRequest) -> None:
        existing = self.store.intent(order.intent_id)
        if existing is not None:
            log.info("duplicate_intent_ignored", intent=order.intent_id, state=existing.state)
            return
        reason = self._refusal(order)
        session = self._today()
        if reason is not None:
            self.store.journal(order, session, state="rejected", reason=reason)
            log.warning("order_refused", intent=order.intent_id, reason=reason)
            self.emit([self._status(order, OrderState.REJECTED, 0, reason)])
            return
        self.store.journal(order, session, state="pending")
        self._live[order.intent_id] = _Live(order)
        self._queue.append(order.intent_id)
        log.info("order_journaled", intent=order.intent_id, book=order.book, purpose=order.purpose,
                 legs=[f"{leg.ratio:+d} {leg.key}" for leg in order.legs], quantity=order.quantity, limit=order.limit)

    def cancel(self, intent_id: str) -> None:
        live = self._live.get(intent_id)
        if live is None or live.final:
            return
        if intent_id in self._queue:
            self._queue.remove(intent_id)
            self._finish_unsent(live, "cancelled before sending")
            return
        live.cancel_requested = True
        self._spawn(self._cancel_at_ib(intent_id, "cancelled by strategy"))

    def working_orders(self) -> list[OrderRequest]:
        return [lv.order for lv in self._live.values() if not lv.final]

    def positions(self) -> dict[str, int]:
        return {k: q for k, q in self._positions.items() if q}

    # ---- helpers -------------------------------------------------------------------------------
    def _now(self) -> dt.datetime:
        now = self.clock.now()
        if self.bus is not None and self.bus.now is not None and now < self.bus.now:
            return self.bus.now
        return now

    def _today(self) -> dt.date:
        return self.clock.now().date()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("broker_task_failed", error=repr(task.exception()))

    def _default_emit(self, events: list[Event]) -> None:
        """Publish and dispatch (inside one store transaction). The daemon replaces this with its pump."""
        if self.bus is None:
            return
        if self._emitting:
            for ev in events:
                self.bus.publish(ev)
            return
        self._emitting = True
        try:
            with self.store.transaction():
                for ev in events:
                    self.bus.publish(ev)
                self.bus.run()
        finally:
            self._emitting = False

    def _status(self, order: OrderRequest, state: OrderState, filled: int, reason: str = "") -> OrderStatusEvent:
        return OrderStatusEvent(self._now(), order.intent_id, order.book, state, filled, order.quantity - filled, reason)

    def _refusal(self, order: OrderRequest) -> str | None:
        if self.halted:
            return "trading halted (kill switch)"
        blocked = self.block_reason()
        if blocked:
            return blocked
        r = self.risk
        derivs = [leg for leg in order.legs if not isinstance(leg.instrument, Equity)]  # ETP shares: notional limit
        contracts = max((abs(leg.ratio) for leg in derivs), default=0) * order.quantity
        if contracts > r.max_contracts_per_order:
            return f"{contracts} contracts per leg exceeds max_contracts_per_order {r.max_contracts_per_order}"
        today = self._today()
        n = self.store.count_intents(today)
        if n >= r.max_orders_per_day:
            return f"max_orders_per_day {r.max_orders_per_day} reached"
        notional = self.hedge_notional(order)
        if notional is None:
            return "cannot value the hedge notional (no price)"
        if notional > r.max_hedge_notional:
            return f"hedge notional {notional:,.0f} exceeds max_hedge_notional {r.max_hedge_notional:,.0f}"
        return None

    def hedge_notional(self, order: OrderRequest) -> float | None:
        """Underlying value of the VIX-complex legs (VX futures, VIX options, ETPs); 0 for SPX legs."""
        total = 0.0
        m = self.market
        for leg in order.legs:
            inst = leg.instrument
            qty = abs(leg.ratio) * order.quantity
            if isinstance(inst, OptionContract) and inst.root != "VIX":
                continue
            if m is None:
                return None
            if isinstance(inst, (FutureContract, OptionContract)):
                px, mult = m.vx(inst.expiry), inst.multiplier
            elif isinstance(inst, Equity):
                px, mult = m.etp(inst.symbol), inst.multiplier
            else:
                return None
            if not math.isfinite(px):
                return None
            total += qty * px * mult
        return total

    # ---- sending -------------------------------------------------------------------------------
    def has_queued(self) -> bool:
        return bool(self._queue)

    async def flush(self) -> None:
        """Send every queued intent, in decision order (one flush at a time)."""
        async with self._flush_lock:
            while self._queue:
                intent = self._queue.pop(0)
                live = self._live.get(intent)
                if live is None or live.final or live.trade is not None:
                    continue
                if not await self._wait_ready(self.p.send_deadline_seconds):
                    if not live.final:
                        self._finish_unsent(live, "halted before sending" if self.halted
                                            else "not connected within the send deadline")
                    continue
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

    async def _wait_ready(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not (self.ready and self.conn.is_up):
            if loop.time() >= end or self.halted:
                return False
            await asyncio.sleep(0.05)
        return True

    async def _send(self, live: _Live) -> None:
        from ib_async import LimitOrder

        order = live.order
        intent = order.intent_id
        insts = [leg.instrument for leg in order.legs]
        contracts = await self.resolver.resolve(insts)
        quotes = await self.md.leg_quotes(insts)
        path, source = price_path(order, quotes, self.p)
        if not path:
            self._reject(live, "no usable quotes and no limit")
            return
        if source != "quotes":
            log.warning("order_priced_without_quotes", intent=intent,
                        legs={k: q.reason for k, q in quotes.items() if not q.ok}, limit=path[0])
        live.path, live.step = path, 0
        if order.is_combo:
            contract = self.resolver.bag(order.legs)
            action, qty, lmt = "BUY", order.quantity, path[0]
        else:
            leg = order.legs[0]
            contract = contracts[leg.key]
            action = "BUY" if leg.ratio > 0 else "SELL"
            qty, lmt = order.quantity * abs(leg.ratio), path[0] / leg.ratio
        row = self.store.intent(intent)
        self.store.update_intent(intent, state="sending", sends=(row.sends if row else 0) + 1, working_price=path[0])
        crashpoint("order_sending")
        ib_order = LimitOrder(action, qty, round(lmt, 6), orderRef=intent, tif=order.tif or "DAY", transmit=True)
        if self.conn.account:
            ib_order.account = self.conn.account
        await self.conn.pacer.acquire()
        trade = self.ib.placeOrder(contract, ib_order)
        live.trade = trade
        self.sent_orders += 1
        self.store.update_intent(intent, order_id=int(trade.order.orderId), client_id=int(self.conn.client_id or 0))
        log.info("order_submitted", intent=intent, order_id=trade.order.orderId, action=action, quantity=qty,
                 limit=round(lmt, 4), combo=order.is_combo, price_source=source, path=[round(p, 4) for p in path])
        crashpoint("order_placed")
        if live.cancel_requested:
            await self._cancel_at_ib(intent, "cancelled by strategy")
        live.task = self._spawn(self._work(intent))

    async def _work(self, intent: str) -> None:
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
            live.step += 1
            await self._modify(live, live.path[live.step])
        remaining = deadline - loop.time()
        if remaining > 0 and await self._wait_done(live, remaining):
            return
        if not live.final:
            await self._cancel_at_ib(intent, "timed out")

    def _can_modify(self, live: _Live) -> bool:
        trade = live.trade
        return (trade is not None and not live.final and self.ready and self.conn.is_up
                and trade.orderStatus.status in ACKED_STATUSES)

    async def _wait_done(self, live: _Live, seconds: float) -> bool:
        try:
            await asyncio.wait_for(live.done.wait(), seconds)
            return True
        except TimeoutError:
            return live.final

    async def _modify(self, live: _Live, net: float) -> None:
        trade = live.trade
        order = live.order
        if not self._can_modify(live):
            log.info("price_step_skipped", intent=order.intent_id, connected=self.conn.is_up)
            return
        lmt = net if order.is_combo else net / order.legs[0].ratio
        trade.order.lmtPrice = round(lmt, 6)
        await self.conn.pacer.acquire()
        self.ib.placeOrder(trade.contract, trade.order)
        self.store.update_intent(order.intent_id, working_price=net, steps_done=live.step)
        log.info("order_price_step", intent=order.intent_id, step=live.step, limit=round(lmt, 4))

    async def _cancel_at_ib(self, intent: str, reason: str) -> None:
        live = self._live.get(intent)
        if live is None or live.final or live.trade is None:
            return
        if not self.conn.is_up:
            log.warning("cancel_deferred", intent=intent, reason="not connected")
            return
        await self.conn.pacer.acquire()
        self.ib.cancelOrder(live.trade.order)
        log.info("order_cancel_requested", intent=intent, reason=reason)

    def _finish_unsent(self, live: _Live, reason: str) -> None:
        live.final = True
        live.done.set()
        self._abandoning.add(live.order.intent_id)
        log.warning("order_abandoned", intent=live.order.intent_id, reason=reason)
        self.emit([self._status(live.order, OrderState.CANCELLED, 0, reason)])

    def _reject(self, live: _Live, reason: str) -> None:
        if live.final:
            return
        live.final = True
        live.done.set()
        filled = self.store.filled_units(live.order.intent_id)
        state = OrderState.REJECTED if filled == 0 else OrderState.CANCELLED
        log.warning("order_rejected", intent=live.order.intent_id, reason=reason, filled=filled)
        self.emit([self._status(live.order, state, filled, reason)])

    # ---- IB events -----------------------------------------------------------------------------
    def _intent_for_trade(self, trade) -> str | None:
        ref = getattr(trade.order, "orderRef", "") or ""
        if ref in self._live:
            return ref
        return None

    def _on_error(self, req_id: int, code: int, message: str, contract: Any) -> None:
        kind = classify(code)
        if kind in (ErrorKind.ORDER_REJECTED, ErrorKind.ORDER_CANCELLED, ErrorKind.ORDER_WARNING,
                    ErrorKind.DUPLICATE_ORDER_ID) and req_id > 0:
            self._order_errors[req_id] = (code, message)
            intent = next((i for i, lv in self._live.items() if lv.trade is not None and lv.trade.order.orderId == req_id),
                          None)
            log.warning("order_error", intent=intent, order_id=req_id, code=code, kind=kind.value, message=message)

    def _on_trade_status(self, trade) -> None:
        intent = self._intent_for_trade(trade)
        if intent is None:
            return
        live = self._live[intent]
        if live.final:
            return
        live.trade = trade
        status = trade.orderStatus.status
        live.ib_status = status
        if status in ACKED_STATUSES and not live.acked:
            live.acked = True
            self.store.update_intent(intent, order_id=int(trade.order.orderId), perm_id=int(trade.order.permId or 0) or None)
            filled = self.store.filled_units(intent)
            log.info("order_acknowledged", intent=intent, order_id=trade.order.orderId, perm_id=trade.order.permId)
            self.emit([self._status(live.order, OrderState.WORKING if filled == 0 else OrderState.PARTIALLY_FILLED,
                                    filled)])
            crashpoint("order_acked")
        if status == "Filled" or status in TERMINAL_IB:
            code = self._order_errors.get(int(trade.order.orderId or 0))
            if code is not None:
                live.last_error, live.last_error_msg = code
            else:
                for entry in reversed(trade.log):
                    if getattr(entry, "errorCode", 0):
                        live.last_error, live.last_error_msg = entry.errorCode, entry.message
                        break
            self._schedule_aggregate(intent, self.p.commission_wait_seconds, finalize=True)

    def _on_exec_details(self, trade, fill) -> None:
        self._record_execution(fill.contract, fill.execution, fill.commissionReport)

    def _record_execution(self, contract, execution, report=None) -> bool:
        intent = execution.orderRef or ""
        if not intent:
            row = next((r for r in self.store.intents() if r.perm_id and r.perm_id == execution.permId), None)
            intent = row.intent_id if row else ""
        known = self.store.intent(intent) if intent else None
        combo = (contract.secType or "") == "BAG"
        inst = None if combo else self.resolver.instrument_for(contract)
        commission = None
        if report is not None and report.execId == execution.execId and report.currency:
            commission = float(report.commission)
        new = self.store.record_execution(
            exec_id=execution.execId, intent_id=intent if known else None, order_id=execution.orderId,
            perm_id=execution.permId, con_id=int(contract.conId or 0), instrument=inst.key if inst else None,
            side=execution.side, shares=float(execution.shares), price=float(execution.price), commission=commission,
            combo=combo, ts=_exec_ts(execution))
        if not new:
            return False
        if known is None:
            log.warning("foreign_execution", exec_id=execution.execId, order_ref=intent, symbol=contract.symbol)
            return True
        log.info("execution", intent=intent, exec_id=execution.execId, instrument=inst.key if inst else "BAG",
                 side=execution.side, shares=execution.shares, price=execution.price)
        crashpoint("execution_recorded")
        if not combo:
            self._schedule_aggregate(intent, 0.0 if commission is not None else self.p.commission_wait_seconds)
        return True

    def _on_commission(self, trade, fill, report) -> None:
        if self.store.set_commission(report.execId, float(report.commission)):
            intent = self.store.execution_intent(report.execId)
            if intent:
                self._schedule_aggregate(intent, 0.0)

    def _on_position(self, position) -> None:
        inst = self.resolver.instrument_for(position.contract)
        key = inst.key if inst is not None else f"conId:{position.contract.conId}"
        self._positions[key] = round(position.position)

    # ---- executions -> engine fills ------------------------------------------------------------
    def _schedule_aggregate(self, intent: str, delay: float, finalize: bool = False) -> None:
        """(Re)arm one timer per intent; a pending finalize request survives re-arming."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        prev = self._pending_agg.pop(intent, None)
        if prev is not None:
            prev.cancel()
        if finalize:
            self._pending_final.add(intent)

        def run() -> None:
            self._pending_agg.pop(intent, None)
            final = intent in self._pending_final
            self._pending_final.discard(intent)
            try:
                self.aggregate(intent, force=delay > 0 or final)
                if final:
                    self._finalize(intent)
            except Exception as e:
                log.error("fill_processing_failed", intent=intent, error=repr(e))
                raise

        self._pending_agg[intent] = loop.call_later(delay, run)

    def aggregate(self, intent: str, force: bool = False) -> int:
        """Turn this intent's unconsumed leg executions into engine FillEvents (whole combo units only).
        Returns the units emitted."""
        row = self.store.intent(intent)
        if row is None:
            return 0
        execs = self.store.executions(intent, unconsumed=True)
        if not execs:
            return 0
        if not force and any(e.commission is None for e in execs):
            self._schedule_aggregate(intent, self.p.commission_wait_seconds)
            return 0
        order = row.order
        by_key: dict[str, list] = defaultdict(list)
        for e in execs:
            by_key[e.instrument].append(e)
        units = min(sum(abs(e.shares) for e in by_key.get(leg.key, [])) / abs(leg.ratio) for leg in order.legs)
        units = int(units + 1e-9)
        picked: dict[str, list] = {}
        while units > 0:
            picked = {}
            for leg in order.legs:
                need = units * abs(leg.ratio)
                take, total = [], 0.0
                for e in by_key[leg.key]:
                    if total >= need - 1e-9:
                        break
                    take.append(e)
                    total += abs(e.shares)
                if abs(total - need) > 1e-9:
                    break
                picked[leg.key] = take
            if len(picked) == len(order.legs):
                break
            units -= 1
        if units <= 0:
            return 0
        legs, exec_ids, commission = [], [], 0.0
        for leg in order.legs:
            take = picked[leg.key]
            qty = sum(e.signed_shares for e in take)
            px = sum(abs(e.shares) * e.price for e in take) / sum(abs(e.shares) for e in take)
            legs.append(LegFill(leg.instrument, round(qty), float(px)))
            for e in take:
                exec_ids.append(e.exec_id)
                if e.commission is not None:
                    commission += e.commission
                else:
                    commission += self.execution.commission([leg.instrument], [round(e.signed_shares)])
        net = sum(lf.quantity * lf.price for lf in legs) / units
        fill_id = "ib:" + min(exec_ids)
        self._fill_execs[fill_id] = exec_ids
        filled = self.store.filled_units(intent) + units
        events: list[Event] = [FillEvent(self._now(), intent, order.book, fill_id, tuple(legs), units, float(net),
                                         float(commission), order.purpose)]
        live = self._live.get(intent)
        if filled >= order.quantity:
            events.append(self._status(order, OrderState.FILLED, filled))
            if live is not None:
                live.final = True
                live.done.set()
        else:
            events.append(self._status(order, OrderState.PARTIALLY_FILLED, filled))
        log.info("order_filled" if filled >= order.quantity else "order_partially_filled", intent=intent,
                 units=units, filled=filled, quantity=order.quantity, net_price=round(net, 4),
                 commission=round(commission, 2), fill_id=fill_id)
        self.emit(events)
        crashpoint("fill_applied")
        return units

    def _finalize(self, intent: str) -> None:
        """IB says the order is done: publish the final engine status once every fill is in."""
        live = self._live.get(intent)
        row = self.store.intent(intent)
        if row is None or row.final:
            if live is not None:
                live.final = True
                live.done.set()
            return
        filled = self.store.filled_units(intent)
        status = live.ib_status if live is not None else ""
        if filled >= row.quantity:
            return  # FILLED already published by aggregate
        if live is not None and status == "Filled":
            return  # executions still to come (reconcile or late execDetails)
        if live is not None:
            live.final = True
            live.done.set()
            if live.trade is not None:
                err = self._order_errors.get(int(live.trade.order.orderId or 0))
                if err is not None:
                    live.last_error, live.last_error_msg = err
        code = live.last_error if live else None
        rejected = filled == 0 and code is not None and classify(code) in (ErrorKind.ORDER_REJECTED,
                                                                           ErrorKind.DUPLICATE_ORDER_ID)
        reason = (f"IB error {code}: {live.last_error_msg}" if code else f"IB status {status}") if live else "not at IB"
        log.info("order_rejected" if rejected else "order_cancelled", intent=intent, filled=filled, reason=reason)
        order = row.order
        self.emit([self._status(order, OrderState.REJECTED if rejected else OrderState.CANCELLED, filled, reason)])

    # ---- journal updates from engine events (same transaction as the strategy's reaction) ------
    def _record_engine_fill(self, fill: FillEvent) -> None:
        execs = self._fill_execs.pop(fill.exec_id, None)
        if execs is None:
            return  # not ours (e.g. a simulated fill in tests)
        self.store.record_fill(fill_id=fill.exec_id, intent_id=fill.intent_id, book=fill.book, purpose=fill.purpose,
                               ts=fill.ts, combo_qty=fill.combo_quantity, net_price=fill.net_price,
                               commission=fill.commission,
                               legs=[{"instrument": leg.instrument.key, "quantity": leg.quantity, "price": leg.price}
                                     for leg in fill.legs], exec_ids=execs)

    def _record_engine_status(self, ev: OrderStatusEvent) -> None:
        row = self.store.intent(ev.intent_id)
        if row is None:
            return
        state = {OrderState.WORKING: "working", OrderState.PARTIALLY_FILLED: "partially_filled",
                 OrderState.FILLED: "filled", OrderState.CANCELLED: "cancelled",
                 OrderState.REJECTED: "rejected", OrderState.PENDING: "pending"}[ev.state]
        if row.final and state not in ("filled", "cancelled", "rejected"):
            return
        if state == "cancelled" and ev.intent_id in self._abandoning:
            self._abandoning.discard(ev.intent_id)
            state = "abandoned"
        self.store.update_intent(ev.intent_id, state=state, filled=ev.filled, reason=ev.reason[:500])

    # ---- kill switch ---------------------------------------------------------------------------
    async def halt(self, reason: str) -> None:
        """Stop new orders and cancel every working one."""
        self.halted = True
        for intent in list(self._queue):
            live = self._live.get(intent)
            self._queue.remove(intent)
            if live is not None and not live.final:
                self._finish_unsent(live, f"halted: {reason}")
        await self.cancel_all(f"halted: {reason}")

    def resume(self) -> None:
        self.halted = False

    async def cancel_all(self, reason: str) -> int:
        n = 0
        for intent, live in list(self._live.items()):
            if not live.final and live.trade is not None:
                await self._cancel_at_ib(intent, reason)
                n += 1
        return n

    # ---- reconcile -----------------------------------------------------------------------------
    async def reconcile(self, *, today: dt.date, allow_resend: bool = True) -> dict:
        """Positions, open orders, completed orders and executions from IB; resolve every journaled
        intent that is not final. Trading resumes (ready=True) only after this returns."""
        from ib_async import ExecutionFilter

        self.ready = False
        t = self.conn.settings.request_timeout
        await self.conn.pacer.acquire()
        positions = await bounded(self.ib.reqPositionsAsync(), t, "positions")
        self._positions = {}
        rows = []
        for p in positions:
            if self.conn.account and p.account and p.account != self.conn.account:
                continue
            inst = self.resolver.instrument_for(p.contract)
            key = inst.key if inst is not None else f"conId:{p.contract.conId}"
            qty = round(p.position)
            if qty:
                self._positions[key] = self._positions.get(key, 0) + qty
                rows.append((key, int(p.contract.conId or 0), qty, float(p.avgCost)))
        self.store.replace_positions(rows)
        crashpoint("reconcile_positions")
        await self.conn.pacer.acquire()
        open_trades = await bounded(self.ib.reqAllOpenOrdersAsync(), t, "open orders")
        await self.conn.pacer.acquire()
        completed = await bounded(self.ib.reqCompletedOrdersAsync(apiOnly=True), t, "completed orders")
        since = self.store.last_execution_ts()
        flt = ExecutionFilter()
        if since:
            ts = dt.datetime.fromisoformat(since) - dt.timedelta(minutes=5)
            flt.time = ts.astimezone(dt.UTC).strftime("%Y%m%d-%H:%M:%S")
        await self.conn.pacer.acquire()
        fills = await bounded(self.ib.reqExecutionsAsync(flt), t, "executions")
        new_execs = 0
        for f in fills:
            if self._record_execution(f.contract, f.execution, f.commissionReport):
                new_execs += 1
        crashpoint("reconcile_mid")
        open_by_ref = {}
        for tr in open_trades:
            ref = tr.order.orderRef or ""
            if ref:
                open_by_ref[ref] = tr
        done_by_ref: dict[str, list] = defaultdict(list)
        for tr in completed:
            ref = tr.order.orderRef or ""
            if ref:
                done_by_ref[ref].append(tr)
        report = {"positions": len(self._positions), "open_orders": len(open_by_ref), "new_executions": new_execs,
                  "adopted": [], "filled": [], "cancelled": [], "resent": [], "abandoned": [], "unknown_orders": []}
        journal = {r.intent_id: r for r in self.store.intents()}
        for ref, tr in open_by_ref.items():
            if ref not in journal:
                report["unknown_orders"].append(ref)
                log.warning("unknown_open_order", order_ref=ref, order_id=tr.order.orderId)
            elif journal[ref].final and int(tr.order.clientId or 0) == int(self.conn.client_id or -1):
                # the journal says done (e.g. a cancel that never reached IB): do not leave it working
                log.warning("orphan_order_cancelled", intent=ref, order_id=tr.order.orderId, state=journal[ref].state)
                await self.conn.pacer.acquire()
                self.ib.cancelOrder(tr.order)
        for row in self.store.intents(open_only=True):
            intent = row.intent_id
            live = self._live.get(intent)
            if live is None:
                live = self._live[intent] = _Live(row.order)
            live.final = False
            live.done.clear()
            tr = open_by_ref.get(intent)
            if tr is not None:
                self._adopt(live, tr, row)
                report["adopted"].append(intent)
                continue
            execs = self.store.executions(intent)
            done = done_by_ref.get(intent, [])
            if execs or done:
                status = done[-1].orderStatus.status if done else "Filled"
                live.ib_status = status if status else "Cancelled"
                if live.ib_status not in TERMINAL_IB and live.ib_status != "Filled":
                    live.ib_status = "Cancelled"
                report["filled" if live.ib_status == "Filled" else "cancelled"].append(intent)
                continue
            # nothing at IB under this intent id
            if intent in self._queue:
                continue
            if row.state in ("pending", "sending") and allow_resend and row.session == today and not self.halted:
                live.trade, live.acked, live.task = None, False, None
                self._queue.append(intent)
                report["resent"].append(intent)
                log.info("intent_resend", intent=intent, previous_state=row.state, reason="never reached IB")
            else:
                report["abandoned"].append(intent)
        # fills first (every execution we now hold), then final states
        for intent in self.store.intents_with_unconsumed_executions():
            self.aggregate(intent, force=True)
        for intent in report["filled"] + report["cancelled"]:
            live = self._live.get(intent)
            if live is not None and live.ib_status == "Filled" and self.store.filled_units(intent) < live.order.quantity:
                log.error("fills_missing", intent=intent, filled=self.store.filled_units(intent),
                          quantity=live.order.quantity)
                live.ib_status = "Cancelled"
            self._finalize(intent)
        for intent in report["abandoned"]:
            row = self.store.intent(intent)
            reason = "never reached IB: abandoned" if row.state in ("pending", "sending") else "not at IB: presumed expired"
            self._finish_unsent(self._live[intent], reason)
        self.ready = self.conn.link_ok  # a 1100 during the reconcile keeps trading paused until 1101/1102
        log.info("reconciled", **{k: (len(v) if isinstance(v, list) else v) for k, v in report.items()},
                 intents=[*report["adopted"], *report["resent"]])
        return report

    def _adopt(self, live: _Live, trade, row) -> None:
        live.trade = trade
        live.ib_status = trade.orderStatus.status
        was_acked = row.state in ("working", "partially_filled")
        live.acked = trade.orderStatus.status in ACKED_STATUSES
        self.store.update_intent(row.intent_id, order_id=int(trade.order.orderId), perm_id=int(trade.order.permId or 0) or None,
                                 client_id=int(trade.order.clientId or 0))
        if not live.path:
            price = row.working_price if row.working_price is not None else row.limit_price
            live.path = [price] if price is not None else []
            live.step = 0
        log.info("order_adopted", intent=row.intent_id, order_id=trade.order.orderId, status=live.ib_status)
        if live.acked and not was_acked:
            filled = self.store.filled_units(row.intent_id)
            self.emit([self._status(live.order, OrderState.WORKING if filled == 0 else OrderState.PARTIALLY_FILLED,
                                    filled)])
        own = int(trade.order.clientId or 0) == int(self.conn.client_id or -1)
        if not own:
            log.warning("order_of_another_client", intent=row.intent_id, client_id=trade.order.clientId,
                        note="it can be watched but not modified or cancelled from this client id")
            return
        if live.cancel_requested or self.halted:
            self._spawn(self._cancel_at_ib(row.intent_id, "halted" if self.halted else "cancelled by strategy"))
        elif live.task is None or live.task.done():
            live.task = self._spawn(self._work_adopted(row.intent_id))

    async def _work_adopted(self, intent: str) -> None:
        """An order found working after a restart/reconnect: rebuild its price path from fresh quotes,
        never stepping back below the price it already shows, and carry on walking/timing out."""
        live = self._live[intent]
        row = self.store.intent(intent)
        current = row.working_price if row is not None and row.working_price is not None else None
        try:
            quotes = await self.md.leg_quotes([leg.instrument for leg in live.order.legs])
        except Exception as e:  # noqa: BLE001 - keep the order's current price
            log.warning("adopted_order_quotes_failed", intent=intent, error=repr(e))
            quotes = None
        path, _ = price_path(live.order, quotes, self.p)
        if current is not None:
            path = [current] + [p for p in path if p > current + 1e-9]
        live.path, live.step = path or live.path, 0
        await self._work(intent)

    async def close(self) -> None:
        for h in self._pending_agg.values():
            h.cancel()
        self._pending_agg.clear()
        if self.p.cancel_on_shutdown and self.conn.is_up:
            await self.cancel_all("shutdown")
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _exec_ts(execution) -> str:
    t = execution.time
    if isinstance(t, dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.UTC)
        return t.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
