"""Simulated broker: fills orders against the model market through the execution simulator.

Implements engine.ports.Broker, so a strategy cannot tell it from the IB adapter. Multi-leg orders
fill all-or-none. Limit orders that are not marketable rest until the session close (DAY) and are
then cancelled.

No fill is made at a stale price (MarketModel.fresh: a prior close or settle carried into the open snapshot).
Such an order is deferred, not refused: it stays working and is tried at the first snapshot where every leg
is fresh - normally the same day's close, what a trader expects of a DAY order sent at 09:30 for an
instrument that has not opened yet. A deferred order has not met the market, so it does not expire.
"""
from __future__ import annotations

from engine.bus import EventBus
from engine.events import (
    EndOfDayEvent,
    FillEvent,
    LegFill,
    OrderState,
    OrderStatusEvent,
    SettlementEvent,
)
from engine.execution import ExecutionSimulator
from engine.marketmodel import MarketModel
from engine.orders import OrderRequest


class SimulatedBroker:
    def __init__(self, execution: ExecutionSimulator | None = None) -> None:
        self.execution = execution or ExecutionSimulator()
        self.bus: EventBus | None = None
        self.market: MarketModel | None = None
        self._working: dict[str, OrderRequest] = {}
        self._seen: set[str] = set()
        self._positions: dict[str, int] = {}
        self._tries: dict[str, int] = {}   # snapshots at which a working order was tried against the market
        self._exec_n = 0

    def bind(self, bus: EventBus) -> None:
        self.bus = bus
        bus.subscribe(SettlementEvent, self._on_settlement)
        bus.subscribe(EndOfDayEvent, lambda ev: self.end_of_session())

    # ---- Broker port ---------------------------------------------------------------------------
    def submit(self, order: OrderRequest) -> None:
        if order.intent_id in self._seen:
            return  # idempotent: the same intent is never sent twice
        self._seen.add(order.intent_id)
        self._working[order.intent_id] = order
        self._status(order, OrderState.WORKING, 0)
        if self.execution.params.fill_timing == "same_snapshot":
            self._try_fill(order)

    def cancel(self, intent_id: str) -> None:
        order = self._working.pop(intent_id, None)
        self._tries.pop(intent_id, None)
        if order is not None:
            self._status(order, OrderState.CANCELLED, 0, "cancelled by strategy")

    def working_orders(self) -> list[OrderRequest]:
        return list(self._working.values())

    def positions(self) -> dict[str, int]:
        return {k: q for k, q in self._positions.items() if q}

    # ---- market --------------------------------------------------------------------------------
    def on_market(self, market: MarketModel) -> None:
        self.market = market
        if not self._working:
            return   # most snapshots: nothing resting
        retry_all = self.execution.params.fill_timing == "next_snapshot"
        for order in list(self._working.values()):
            # same_snapshot: only the orders deferred from an earlier snapshot (stale prices) are tried again
            if retry_all or self._tries.get(order.intent_id, 0) == 0:
                self._try_fill(order)

    def end_of_session(self) -> None:
        # A DAY order expires at the close once it has met the market. With next_snapshot fills an order
        # decided at the close has not yet: it gets its one chance at the next open (the "decide at the
        # close, trade at the next open" test), then expires at that day's close if still unfilled.
        for order in list(self._working.values()):
            if order.tif == "DAY" and self._tries.get(order.intent_id, 0) > 0:
                del self._working[order.intent_id]
                self._tries.pop(order.intent_id, None)
                self._status(order, OrderState.CANCELLED, 0, "DAY order expired unfilled")

    # ---- internals -----------------------------------------------------------------------------
    def _status(self, order: OrderRequest, state: OrderState, filled: int, reason: str = "") -> None:
        self.bus.publish(OrderStatusEvent(self.bus.now, order.intent_id, order.book, state, filled,
                                          order.quantity - filled, reason))

    def _try_fill(self, order: OrderRequest) -> None:
        m = self.market
        if m is None:
            return
        if m.quotes.stale and not all(m.fresh(leg.instrument) for leg in order.legs):
            return  # deferred: tried again at the next snapshot, and not counted as meeting the market
        self._tries[order.intent_id] = self._tries.get(order.intent_id, 0) + 1
        t = self.execution.order_terms(order, m)   # usually the pre-trade check's, a moment ago
        prices = t.prices
        if prices is None:
            return  # an unpriced leg: all-or-none means nothing fills
        net = 0.0   # added leg by leg (as before, whatever the Python version's sum() does)
        for r, p in zip(t.ratios, prices):
            net += r * p
        if order.limit is not None and net > order.limit + 1e-9:
            return  # not marketable at our limit
        insts, qtys, commission = t.instruments, t.quantities, t.commission
        self._exec_n += 1
        legs = tuple([LegFill(i, q, p) for i, q, p in zip(insts, qtys, prices)])
        positions = self._positions
        for i, q in zip(insts, qtys):
            positions[i.key] = positions.get(i.key, 0) + q
        del self._working[order.intent_id]
        self._tries.pop(order.intent_id, None)
        self.bus.publish(FillEvent(self.bus.now, order.intent_id, order.book, f"sim-{self._exec_n}", legs,
                                   order.quantity, net, commission, order.purpose))
        self._status(order, OrderState.FILLED, order.quantity)

    def _on_settlement(self, ev: SettlementEvent) -> None:
        key = ev.instrument.key
        self._positions[key] = self._positions.get(key, 0) - ev.quantity
