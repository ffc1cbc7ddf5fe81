"""The ports the edges implement: a broker, a market-data source, and the order journal a live broker writes.

The replay adapter + simulated broker implement the first two for backtests; the IB adapter for the daemon.
Brokers report back only through engine events published on the bus (OrderStatusEvent, FillEvent).

The order journal is what a broker that talks to a real venue needs to survive a crash: an intent is journaled
before it is sent, its state follows the venue's answers, every venue execution is recorded once (keyed by
the venue's execution id AND the order it belongs to, since ids can repeat across venue sessions), and the
engine fills built from executions are recorded with the executions they consumed. The daemon's SQLite state
store implements it; the IB adapter only sees this protocol, never the daemon.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from engine.bus import EventBus
from engine.orders import OrderRequest


class Broker(Protocol):
    def bind(self, bus: EventBus) -> None:
        """Called once by the kernel: the broker publishes order status and fills here."""

    def submit(self, order: OrderRequest) -> None:
        """Send an order. Outcome arrives as events. Must be idempotent per intent id."""

    def cancel(self, intent_id: str) -> None: ...

    def working_orders(self) -> list[OrderRequest]: ...

    def positions(self) -> dict[str, int]:
        """Instrument key -> signed quantity, as the broker sees the account."""


class MarketDataSource(Protocol):
    def bind(self, bus: EventBus) -> None: ...

    def run(self) -> None:
        """Publish market events and drive the bus until the source is exhausted (replay) or stopped."""


# ---- the order journal ---------------------------------------------------------------------------
FINAL_STATES = frozenset({"filled", "cancelled", "rejected", "abandoned"})
OPEN_STATES = frozenset({"pending", "sending", "working", "partially_filled"})


@dataclass(frozen=True)
class IntentRow:
    """One journaled intent: the order, where it is in its life, and the venue's ids for it."""

    intent_id: str
    book: str
    purpose: str
    session: dt.date
    order: OrderRequest
    quantity: int
    state: str            # pending, sending, working, partially_filled, filled, cancelled, rejected, abandoned
    filled: int
    order_id: int | None
    perm_id: int | None
    client_id: int | None
    limit_price: float | None
    working_price: float | None
    steps_done: int
    sends: int
    reason: str
    created: str
    updated: str

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


@dataclass(frozen=True)
class ExecutionRow:
    """One venue execution (a leg fill, or a combo-level report), and the engine fill it went into."""

    exec_id: str
    owner: str            # the order the execution belongs to: venue permId, else "ref:<orderRef>"
    intent_id: str | None
    order_id: int | None
    perm_id: int | None
    con_id: int | None
    instrument: str | None
    side: str
    shares: float
    price: float
    commission: float | None
    combo: bool
    ts: str
    fill_id: str | None

    @property
    def signed_shares(self) -> float:
        return self.shares if self.side.upper() in ("BOT", "BUY") else -self.shares


def execution_owner(perm_id: int | None, order_ref: str | None) -> str:
    """The order half of an execution's key: the venue's permanent order id, else the intent id it carries."""
    return str(int(perm_id)) if perm_id else f"ref:{order_ref or ''}"


class OrderJournal(Protocol):
    def transaction(self) -> AbstractContextManager[Any]:
        """All-or-nothing writes; nested calls join the outer transaction."""

    def sync(self) -> None:
        """Make every write so far durable against a machine crash; the broker calls it before an order it has
        journaled can reach the venue."""

    # intents
    def journal(self, order: OrderRequest, session: dt.date, state: str = "pending", reason: str = "") -> bool:
        """Record an intent before anything is sent; False if that intent id is already journaled."""

    def update_intent(self, intent_id: str, **fields: Any) -> None: ...

    def intent(self, intent_id: str) -> IntentRow | None: ...

    def intents(self, *, open_only: bool = False, session: dt.date | None = None) -> list[IntentRow]: ...

    def intent_for_perm(self, perm_id: int) -> str | None:
        """The intent a venue order (by permId) was sent for, if known."""

    # executions and fills
    def record_execution(self, row: ExecutionRow) -> str:
        """Store one execution. Returns "new", "known" (same execution again) or "corrected" (an execId
        `.NN` suffix correction replaced an earlier, not yet booked report of the same execution)."""

    def set_commission(self, exec_id: str, owner: str | None, commission: float) -> str | None:
        """Attach a commission report; the intent it belongs to when newly set, else None."""

    def executions(self, intent_id: str | None = None, *, unconsumed: bool = False) -> list[ExecutionRow]: ...

    def intents_with_unconsumed_executions(self) -> list[str]: ...

    def last_execution_ts(self) -> str | None: ...

    def record_fill(self, *, fill_id: str, intent_id: str, book: str, purpose: str, ts: dt.datetime, combo_qty: int,
                    net_price: float, commission: float, legs: list[dict], executions: list[tuple[str, str]]) -> bool:
        """Record an engine fill and mark the (exec_id, owner) executions it consumed."""

    def filled_units(self, intent_id: str) -> int: ...

    # the venue's view
    def replace_positions(self, rows: list[tuple[str, int | None, float, float | None]]) -> None: ...


class ContractCache(Protocol):
    """Resolved venue contract ids, kept so executions map back to instruments after a restart."""

    def save_contract(self, key: str, con_id: int, contract: dict) -> None: ...

    def contracts(self) -> Iterator[tuple[str, int, dict]] | list[tuple[str, int, dict]]: ...
