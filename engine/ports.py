"""The two ports the edges implement: a broker and a market-data source.

The replay adapter + simulated broker implement them for backtests; the IB adapter for the daemon.
Brokers report back only through engine events published on the bus (OrderStatusEvent, FillEvent).
"""
from __future__ import annotations

from typing import Protocol

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
