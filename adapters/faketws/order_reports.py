"""Order and execution reports: reqOpenOrders, reqAllOpenOrders, reqCompletedOrders and reqExecutions
(with the ExecutionFilter), and the execDetails + commissionReport pair a fill sends."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from .book import Book
from .clock import UTC, ServerClock
from .order_layouts import (
    commission_fields,
    completed_order_fields,
    exec_fields,
    open_order_fields,
    order_status_fields,
)
from .orders import ExecutionRecord, OrderRecord
from .outbox import Outbox
from .sessions import Session
from .settings import Settings
from .wire import OUT, FieldReader

log = logging.getLogger("alvh.faketws")

SIDES = {"BUY": "BOT", "SELL": "SLD", "BOT": "BOT", "SLD": "SLD"}


def parse_filter_time(s: str, tz: dt.tzinfo) -> dt.datetime | None:
    """ExecutionFilter.time: 'yyyymmdd-hh:mm:ss' is UTC, 'yyyymmdd hh:mm:ss' is TWS local time (``tz``),
    'yyyymmdd hh:mm:ss Zone/Name' is in that zone."""
    s = s.strip()
    if len(s) >= 9 and s[8] == "-":
        tz = UTC
        s = s[:8] + " " + s[9:]
    parts = s.split()
    if len(parts) >= 3:
        try:
            tz = ZoneInfo(parts[2])
        except (KeyError, ValueError):
            log.warning("FakeTWS: unknown time zone in execution filter %r", s)
    for fmt, core in (("%Y%m%d %H:%M:%S", " ".join(parts[:2])), ("%Y%m%d %H:%M", " ".join(parts[:2])),
                      ("%Y%m%d", parts[0] if parts else "")):
        try:
            return dt.datetime.strptime(core, fmt).replace(tzinfo=tz)
        except ValueError:
            continue
    log.warning("FakeTWS: unparseable execution filter time %r", s)
    return None


@dataclass
class ExecutionFilter:
    client_id: int = 0
    account: str = ""
    since: dt.datetime | None = None
    symbol: str = ""
    sec_type: str = ""
    exchange: str = ""
    side: str = ""  # BOT / SLD / "" for any

    @classmethod
    def read(cls, r: FieldReader, tz: dt.tzinfo) -> ExecutionFilter:
        client_id, account, time_, symbol, sec_type, exchange, side = (
            r.int(), r.str(), r.str(), r.str(), r.str(), r.str(), r.str())
        return cls(client_id, account, parse_filter_time(time_, tz) if time_ else None, symbol, sec_type,
                   exchange, SIDES.get(side.upper(), "") if side else "")

    def matches(self, ex: ExecutionRecord) -> bool:
        return not (
            self.client_id and ex.order.client_id != self.client_id
            or self.account and ex.account != self.account
            or self.since is not None and ex.time < self.since
            or self.symbol and ex.contract.get("symbol", "").upper() != self.symbol.upper()
            or self.sec_type and ex.sec_type.upper() != self.sec_type.upper()
            or self.exchange and ex.exchange.upper() != self.exchange.upper()
            or self.side and ex.side != self.side
        )


class OrderReports:
    def __init__(self, settings: Settings, clock: ServerClock, book: Book, outbox: Outbox):
        self.settings = settings
        self.clock = clock
        self.book = book
        self.outbox = outbox

    def send_execution(self, conn: Session, req_id: int, ex: ExecutionRecord) -> None:
        """execDetails, then its commissionReport (none for a combo-level execution unless
        ``bag_commission_report``)."""
        self.outbox.send(conn, exec_fields(req_id, ex, conn.version, self.clock.tws_time(ex.time)))
        if not ex.combo_level or self.settings.bag_commission_report:
            self.outbox.send(conn, commission_fields(ex))

    def req_open_orders(self, conn: Session, r: FieldReader) -> None:
        cid = None if self.settings.sees_all_orders(conn.client_id) else conn.client_id
        self._send_open_orders(conn, self.book.working_orders(cid))

    def req_all_open_orders(self, conn: Session, r: FieldReader) -> None:
        self._send_open_orders(conn, self.book.working_orders())

    def _send_open_orders(self, conn: Session, orders: list[OrderRecord]) -> None:
        for rec in orders:
            self.outbox.send(conn, open_order_fields(rec, conn.version))
            self.outbox.send(conn, order_status_fields(rec))
        self.outbox.send(conn, [OUT.OPEN_ORDER_END, 1])

    def req_completed_orders(self, conn: Session, r: FieldReader) -> None:
        self.book.roll_day()  # TWS reports the orders finished today
        for rec in self.book.completed_orders():
            self.outbox.send(conn, completed_order_fields(rec, conn.version))
        self.outbox.send(conn, [OUT.COMPLETED_ORDERS_END])

    def req_executions(self, conn: Session, r: FieldReader) -> None:
        r.int()  # version
        req_id = r.int()
        flt = ExecutionFilter.read(r, self.clock.tz)
        self.book.roll_day()  # TWS reports only today's executions (since midnight, TWS zone)
        sees_all = self.settings.sees_all_orders(conn.client_id)
        for ex in self.book.executions:
            if (sees_all or ex.order.client_id == conn.client_id) and flt.matches(ex):
                self.send_execution(conn, req_id, ex)
        self.outbox.send(conn, [OUT.EXECUTION_DATA_END, 1, req_id])
