"""What the daemon's jobs (jobs.py) and kill switch (killswitch.py) see of the daemon: its parts and the few
things it does for them. A protocol, so neither module imports the daemon that owns it."""
from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

from adapters.ib.broker import IBBroker
from adapters.ib.connection import Connection
from adapters.ib.marketdata import MarketData
from adapters.live.pump import Pump
from adapters.live.state import StateStore
from config.daemon import DaemonParams
from engine.clock import Clock
from engine.kernel import Kernel
from engine.ledger import Ledger
from engine.strategy import Strategy


class DaemonView(Protocol):
    p: DaemonParams
    store: StateStore
    kernel: Kernel
    broker: IBBroker
    md: MarketData
    conn: Connection
    clock: Clock
    ledger: Ledger
    strategies: list[Strategy]
    pump: Pump
    stopping: asyncio.Event
    failed: bool
    mismatch: dict[str, tuple[int, int]]

    def check_positions(self) -> dict[str, tuple[int, int]]: ...
    def end_of_day(self) -> dict[str, int]: ...
    def layer_levels(self) -> dict[tuple[str, int], float]: ...
    def log_layer_changes(self, before: dict, after: dict) -> None: ...
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...

