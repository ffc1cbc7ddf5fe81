"""What a strategy sees: events in, order intents out. Nothing here knows replay from live."""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
from typing import Protocol

from engine.clock import Clock
from engine.events import FillEvent, MarketSnapshot, OrderStatusEvent, SettlementEvent
from engine.execution import ExecutionSimulator
from engine.ledger import Ledger, Position
from engine.marketmodel import MarketModel
from engine.orders import OrderLeg, OrderRequest
from engine.ports import Broker


class KernelView(Protocol):
    """What a strategy's context reads from the kernel (engine.kernel.Kernel implements it)."""

    market: MarketModel | None
    clock: Clock
    ledger: Ledger
    execution: ExecutionSimulator
    broker: Broker

    def submit(self, order: OrderRequest) -> None: ...


def add_fill(held: dict, fill: FillEvent) -> None:
    """Book a fill's legs into a strategy's own {instrument: quantity} view, dropping flat lines."""
    for leg in fill.legs:
        q = held.get(leg.instrument, 0) + leg.quantity
        if q:
            held[leg.instrument] = q
        else:
            held.pop(leg.instrument, None)


class Strategy:
    """Base class. Override the hooks you need; `book` names this strategy's positions in the ledger."""

    book: str = "strategy"

    def on_start(self, ctx: StrategyContext) -> None: ...

    def on_snapshot(self, snap: MarketSnapshot, ctx: StrategyContext) -> None: ...

    def on_fill(self, fill: FillEvent, ctx: StrategyContext) -> None: ...

    def on_order_status(self, event: OrderStatusEvent, ctx: StrategyContext) -> None: ...

    def on_settlement(self, event: SettlementEvent, ctx: StrategyContext) -> None: ...

    def on_end_of_day(self, date: dt.date, ctx: StrategyContext) -> None: ...

    # The daemon persists this between restarts; replay never needs it.
    def state(self) -> dict:
        return {}

    def restore(self, state: dict) -> None: ...


@functools.lru_cache(maxsize=1 << 16)
def _digest(body: str) -> str:
    """The intent id's hash of what is asked: the same bodies recur (a book's rolls, a sweep's runs)."""
    return hashlib.sha1(body.encode()).hexdigest()[:10]


class StrategyContext:
    """The order API and read-only account view handed to one strategy."""

    def __init__(self, kernel: KernelView, book: str) -> None:
        self._kernel = kernel
        self.book = book
        self._ids: set[str] = set()
        self._day: tuple = (None, "")   # (clock time, its "%Y%m%d") of the last intent id

    @property
    def market(self) -> MarketModel:
        return self._kernel.market

    def now(self) -> dt.datetime:
        return self._kernel.clock.now()

    @property
    def equity(self) -> float:
        return self._kernel.ledger.equity()

    @property
    def cash(self) -> float:
        return self._kernel.ledger.cash

    def positions(self) -> dict[str, Position]:
        return self._kernel.ledger.book_positions(self.book)

    def quotes(self, instruments) -> list:
        """Bid/ask for each instrument: the execution model's quotes in replay, real quotes live."""
        k = self._kernel
        return k.execution.quotes(list(instruments), k.market.mids(list(instruments)), k.market.vix)

    def book_pnl(self) -> float:
        return self._kernel.ledger.book_pnl(self.book)

    def working_orders(self) -> list[OrderRequest]:
        return [o for o in self._kernel.broker.working_orders() if o.book == self.book]

    def intent_id(self, legs: tuple[OrderLeg, ...], quantity: int, purpose: str) -> str:
        """Deterministic id from what is being asked and when: a restarted daemon that reaches the same
        decision produces the same id and so recognises the order it already sent."""
        now = self.now()
        last, day = self._day
        if last is None or now != last or now.tzinfo is not last.tzinfo:   # a snapshot's orders share its day
            day = f"{now:%Y%m%d}"
            self._day = (now, day)
        body = "|".join([f"{leg.instrument.key}:{leg.ratio}" for leg in legs]) + f"|{quantity}|{purpose}"
        base = f"{self.book}-{day}-{purpose}-{_digest(body)}"
        intent, n = base, 1
        while intent in self._ids:
            n += 1
            intent = f"{base}-{n}"
        self._ids.add(intent)
        return intent

    def remember_intents(self, intent_ids) -> None:
        """After a restart: intents already issued today, so a repeated decision gets the next suffix."""
        self._ids.update(intent_ids)

    def submit(self, legs: list[OrderLeg] | tuple[OrderLeg, ...], quantity: int, *, purpose: str,
               limit: float | None = None) -> str:
        legs = tuple(legs)
        order = OrderRequest(self.intent_id(legs, quantity, purpose), self.book, legs, quantity, limit, purpose)
        self._kernel.submit(order)
        return order.intent_id

    def cancel(self, intent_id: str) -> None:
        self._kernel.broker.cancel(intent_id)
