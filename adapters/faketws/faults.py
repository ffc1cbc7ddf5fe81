"""Fault injection: dropped sockets, connectivity notices, a ghost clientId (326), held back or missing
replies, and the nightly reset."""

from __future__ import annotations

from collections.abc import Iterable

from . import wire
from .book import Book
from .handshake import Handshake
from .order_entry import OrderEntry
from .outbox import ALL_TYPES, Outbox
from .sessions import Sessions
from .transport import Transport

NOTICES = {
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
    2110: "Connectivity between Trader Workstation and server is broken. It will be restored automatically.",
    10197: "No market data during competing live session",
}


class Faults:
    def __init__(self, sessions: Sessions, outbox: Outbox, handshake: Handshake, transport: Transport,
                 orders: OrderEntry, book: Book):
        self.sessions = sessions
        self.outbox = outbox
        self.handshake = handshake
        self.transport = transport
        self.orders = orders
        self.book = book

    def drop_connections(self, client_id: int | None = None) -> int:
        conns = self.sessions.all(client_id)
        for conn in conns:
            conn.abort()
        return len(conns)

    def send_error(self, code: int, msg: str = "", req_id: int = -1, client_id: int | None = None,
                   advanced: str = "") -> None:
        for conn in self.sessions.ready(client_id):
            self.outbox.error(conn, req_id, code, msg or NOTICES.get(code, f"FakeTWS error {code}"), advanced)

    def reject_client_id(self, flag: bool = True, client_ids: Iterable[int] | None = None) -> None:
        self.handshake.reject_client_ids = (set(client_ids) if client_ids else set()) if flag else None

    def delay_replies(self, msg_type: int | str | None, seconds: float) -> None:
        key: int | str = ALL_TYPES if msg_type in (None, "all", "*") else wire.out_msg_id(msg_type)  # type: ignore[arg-type]
        if seconds and seconds > 0:
            self.outbox.delays[key] = float(seconds)
        else:
            self.outbox.delays.pop(key, None)

    def drop_replies(self, msg_types: Iterable[int | str] | int | str | None) -> None:
        if msg_types is None:
            self.outbox.drops = set()
            return
        if isinstance(msg_types, (int, str)):
            msg_types = [msg_types]
        self.outbox.drops = {wire.out_msg_id(m) for m in msg_types}

    def daily_reset(self, seconds: float = 5.0, cancel_day_orders: bool = False) -> None:
        if cancel_day_orders:
            for rec in self.book.working_orders():
                if rec.tif.upper() == "DAY":
                    self.orders.cancel(rec, 202, "Order expired")
        self.transport.close_for(seconds)
