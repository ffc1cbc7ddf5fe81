"""Client connections (API sessions) and their per-session state: clientId, negotiated version,
subscriptions and the pacing window."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field

from .contracts import ContractSpec
from .orders import LegRecord


@dataclass
class MarketSubscription:
    """One streaming reqMktData: a single contract or a combo's legs, and what was last sent."""

    req_id: int
    specs: list[ContractSpec]
    legs: list[LegRecord]
    is_bag: bool
    last_sent: dict = field(default_factory=dict)


class Session:
    """One client connection. ``ready`` once startApi was accepted."""

    def __init__(self, conn_id: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, version: int):
        self.id = conn_id
        self.reader = reader
        self.writer = writer
        self.client_id: int | None = None
        self.version = version
        self.ready = False
        self.closed = False
        self.md_type = 1
        self.mkt: dict[int, MarketSubscription] = {}
        self.positions_sub = False
        self.account_sub = False
        self.multi_subs: set[int] = set()
        self.rx_times: deque[float] = deque()
        self.last_pacing_error = -1e9
        self.max_order_id = 0

    def write_raw(self, data: bytes) -> None:
        if self.closed or self.writer.is_closing():
            return
        with contextlib.suppress(Exception):
            self.writer.write(data)

    def abort(self) -> None:
        """Drop the socket with no goodbye."""
        self.closed = True
        with contextlib.suppress(Exception):
            self.writer.transport.abort()

    def close_after_flush(self) -> None:
        """Close once what was written is sent (a refused startApi: the error must arrive first)."""
        self.closed = True
        with contextlib.suppress(Exception):
            self.writer.close()


class Sessions:
    """Every open connection, by connection id."""

    def __init__(self) -> None:
        self._open: dict[int, Session] = {}
        self._seq = 0

    def open(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, version: int) -> Session:
        self._seq += 1
        conn = Session(self._seq, reader, writer, version)
        self._open[conn.id] = conn
        return conn

    def forget(self, conn: Session) -> None:
        self._open.pop(conn.id, None)

    def all(self, client_id: int | None = None) -> list[Session]:
        """Open connections, ready or not (optionally one clientId's)."""
        return [c for c in self._open.values() if client_id is None or c.client_id == client_id]

    def ready(self, client_id: int | None = None) -> list[Session]:
        """Live API sessions (optionally one clientId's)."""
        return [c for c in self._open.values()
                if c.ready and not c.closed and (client_id is None or c.client_id == client_id)]

    def client_ids(self) -> list[int]:
        return sorted(c.client_id for c in self.ready() if c.client_id is not None)

    def for_order(self, owner: int, master_client_id: int | None) -> list[Session]:
        """Who hears about an order: its owner's sessions, and the master client's."""
        out = self.ready(owner)
        if master_client_id is not None and master_client_id != owner:
            out += self.ready(master_client_id)
        return out

    def __len__(self) -> int:
        return len(self._open)
