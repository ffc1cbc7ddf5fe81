"""Connection-level requests: startApi (clientId checks, nextValidId, managedAccounts, farm notices),
order ids, the clock, the market data type, and the requests the server answers with a refusal."""

from __future__ import annotations

from .book import Book
from .clock import ServerClock
from .outbox import Outbox
from .sessions import Session, Sessions
from .settings import Settings
from .wire import OUT, FieldReader

FARM_NOTICES = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)
MSG_CLIENT_ID_IN_USE = "Unable to connect as the client id is already in use. Retry with a unique client id."


class Handshake:
    def __init__(self, settings: Settings, clock: ServerClock, sessions: Sessions, outbox: Outbox, book: Book):
        self.settings = settings
        self.clock = clock
        self.sessions = sessions
        self.outbox = outbox
        self.book = book
        self.reject_client_ids: set[int] | None = None  # None = off; empty set = every id

    def start_api(self, conn: Session, r: FieldReader) -> None:
        r.int()  # version
        client_id = r.int()
        r.str() if r.remaining() else ""  # optional capabilities
        conn.client_id = client_id
        in_use = self.settings.enforce_unique_client_id and any(
            c is not conn and c.client_id == client_id for c in self.sessions.ready())
        forced = self.reject_client_ids is not None and (
            not self.reject_client_ids or client_id in self.reject_client_ids)
        if in_use or forced:
            self.outbox.error(conn, -1, 326, MSG_CLIENT_ID_IN_USE)
            conn.close_after_flush()  # like TWS: the error, then the socket closes
            return
        conn.ready = True
        self.book.roll_day()
        self.outbox.send(conn, [OUT.NEXT_VALID_ID, 1, self.book.next_valid_id(client_id)])
        self.managed_accounts(conn)
        if self.settings.farm_notices:
            for code, text in FARM_NOTICES:
                self.outbox.error(conn, -1, code, text)

    def managed_accounts(self, conn: Session, r: FieldReader | None = None) -> None:
        self.outbox.send(conn, [OUT.MANAGED_ACCTS, 1, self.settings.account])

    def req_ids(self, conn: Session, r: FieldReader) -> None:
        next_id = max(self.book.next_valid_id(conn.client_id), conn.max_order_id + 1)
        self.outbox.send(conn, [OUT.NEXT_VALID_ID, 1, next_id])

    def req_current_time(self, conn: Session, r: FieldReader) -> None:
        self.outbox.send(conn, [OUT.CURRENT_TIME, 1, int(self.clock.now().timestamp())])

    def req_market_data_type(self, conn: Session, r: FieldReader) -> None:
        r.int()
        conn.md_type = r.int(1)

    def req_user_info(self, conn: Session, r: FieldReader) -> None:
        self.outbox.send(conn, [OUT.USER_INFO, r.int(), ""])

    def req_historical(self, conn: Session, r: FieldReader) -> None:
        # reqHistoricalData has no version field, head timestamp / ticks neither
        req_id = r.int()
        self.outbox.error(conn, req_id, 162,
                          "Historical Market Data Service error message:FakeTWS has no historical data")

    def req_matching_symbols(self, conn: Session, r: FieldReader) -> None:
        req_id = r.int()
        self.outbox.send(conn, [OUT.SYMBOL_SAMPLES, req_id, 0])

    @staticmethod
    def ignore(conn: Session, r: FieldReader) -> None:
        """Accepted, nothing to answer (reqAutoOpenOrders, cancelAccountSummary, cancelPositionsMulti)."""
