"""How an order is priced and walked at IB, and what the broker remembers about each order it works.

Price improvement: the first limit is the combo mid from IB's leg quotes (plus `start_fraction` of the way
to the natural price); every `step_seconds` it moves one of `improve_steps` steps toward the bound, which is
the natural price scaled by `max_concession` and never worse than the strategy's own limit. Every price is
rounded to the tick in our favour (engine.ticks). Without usable leg quotes the order is priced at the
strategy's limit.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import StrictBool

from adapters.ib.connection import Connection
from adapters.ib.contracts import ContractResolver
from adapters.ib.marketdata import LegQuote, MarketData
from config.daemon import OrderParams
from engine.events import Event, OrderState, OrderStatusEvent
from engine.execution import ExecutionSimulator
from engine.orders import OrderRequest
from engine.ports import OrderJournal
from engine.ticks import ceil_tick, floor_tick, instrument_tick

TERMINAL_IB = frozenset({"Cancelled", "ApiCancelled", "Inactive"})


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
    tick = instrument_tick(leg.instrument, abs(px))
    px = floor_tick(px, tick) if leg.ratio > 0 else ceil_tick(px, tick)
    return round(px * leg.ratio, 10)


def ib_limit(order: OrderRequest, net: float) -> float:
    """The limit IB sees: the net combo price for a BAG, the per-contract price for a single leg."""
    return net if order.is_combo else net / order.legs[0].ratio


@dataclass
class LiveOrder:
    """An order the broker works: its IB trade, price path and where it is in its life."""

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
    cancel_reason: str = ""
    cancel_sent: StrictBool = False      # cancelOrder went out on this connection
    abandoned: StrictBool = False        # finished without reaching IB: journaled `abandoned`, not `cancelled`

    @property
    def intent_id(self) -> str:
        return self.order.intent_id

    @property
    def order_id(self) -> int:
        return int(self.trade.order.orderId or 0) if self.trade is not None else 0


class BrokerView(Protocol):
    """What the broker's fill book (executions.py) and reconciler (reconcile.py) use of the broker."""

    conn: Connection
    ib: Any
    journal: OrderJournal
    resolver: ContractResolver
    md: MarketData
    p: OrderParams
    execution: ExecutionSimulator
    listening: bool
    ready: bool
    order_errors: dict[int, tuple[int, str]]
    emit: Callable[[list[Event]], None]

    def now(self) -> dt.datetime: ...
    def live(self, intent_id: str) -> LiveOrder | None: ...
    def track(self, order: OrderRequest) -> LiveOrder: ...
    def mark_final(self, live: LiveOrder) -> None: ...
    def status_event(self, order: OrderRequest, state: OrderState, filled: int,
                     reason: str = "") -> OrderStatusEvent: ...
    def stopped(self, live: LiveOrder) -> str | None: ...
    def own(self, live: LiveOrder) -> bool: ...
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task: ...
    def set_positions(self, positions: dict[str, int]) -> None: ...
    def is_queued(self, intent_id: str) -> bool: ...
    def requeue(self, intent_id: str) -> None: ...
    def finish_unsent(self, live: LiveOrder, reason: str) -> None: ...
    async def cancel_at_ib(self, intent: str, reason: str) -> None: ...
    async def work(self, intent: str) -> None: ...
