"""Account reports: positions (reqPositions, reqPositionsMulti), account values and portfolio
(reqAccountUpdates, reqAccountUpdatesMulti, reqAccountSummary), and the pushes that follow a fill."""

from __future__ import annotations

from .book import Book, PositionRecord
from .clock import ServerClock
from .outbox import Outbox
from .sessions import Session, Sessions
from .settings import Settings
from .wire import OUT, FieldReader, fmt_float

_RATIOS = ("Cushion", "Leverage")  # sent with 6 decimals, money with 2


class AccountReports:
    def __init__(self, settings: Settings, clock: ServerClock, book: Book, sessions: Sessions, outbox: Outbox):
        self.settings = settings
        self.clock = clock
        self.book = book
        self.sessions = sessions
        self.outbox = outbox

    # ------------------------------------------------------------ layouts
    def position_fields(self, pos: PositionRecord) -> list:
        s = pos.spec
        return [OUT.POSITION_DATA, 3, self.settings.account, s.con_id, s.symbol, s.sec_type, s.last_trade,
                fmt_float(s.strike) if s.sec_type == "OPT" else "0", s.right, s.multiplier, "", s.currency,
                s.local_symbol, s.trading_class, fmt_float(pos.qty), fmt_float(pos.avg_cost)]

    def account_rows(self) -> list[tuple[str, str, str]]:
        rows = [("AccountCode", self.settings.account, ""), ("AccountReady", "true", ""),
                ("AccountType", "INDIVIDUAL", ""), ("Currency", "USD", "USD")]
        rows += [(k, fmt_float(round(v, 6 if k in _RATIOS else 2)), "USD")
                 for k, v in self.book.account_values().items()]
        return rows

    def portfolio_fields(self, item: dict) -> list:
        pos = item["pos"]
        s = pos.spec
        return [OUT.PORTFOLIO_VALUE, 8, s.con_id, s.symbol, s.sec_type, s.last_trade,
                fmt_float(s.strike) if s.sec_type == "OPT" else "0", s.right, s.multiplier, s.primary_exchange,
                s.currency, s.local_symbol, s.trading_class, fmt_float(pos.qty), fmt_float(round(item["mark"], 6)),
                fmt_float(round(item["value"], 2)), fmt_float(round(pos.avg_cost, 6)),
                fmt_float(round(item["unrealized"], 2)), fmt_float(round(pos.realized, 2)), self.settings.account]

    # ------------------------------------------------------------ positions
    def req_positions(self, conn: Session, r: FieldReader) -> None:
        conn.positions_sub = True
        for pos in self.book.positions.values():
            if pos.qty != 0:
                self.outbox.send(conn, self.position_fields(pos))
        self.outbox.send(conn, [OUT.POSITION_END, 1])

    def cancel_positions(self, conn: Session, r: FieldReader) -> None:
        conn.positions_sub = False

    def req_positions_multi(self, conn: Session, r: FieldReader) -> None:
        r.int()
        req_id = r.int()
        r.str()
        model = r.str()
        for pos in self.book.positions.values():
            if pos.qty != 0:
                f = self.position_fields(pos)
                self.outbox.send(conn, [OUT.POSITION_MULTI, 1, req_id, self.settings.account] + f[3:] + [model])
        self.outbox.send(conn, [OUT.POSITION_MULTI_END, 1, req_id])

    # ------------------------------------------------------------ account values
    def _send_account_snapshot(self, conn: Session) -> None:
        account = self.settings.account
        for key, val, cur in self.account_rows():
            self.outbox.send(conn, [OUT.ACCT_VALUE, 2, key, val, cur, account])
        for item in self.book.portfolio():
            if item["pos"].qty != 0:
                self.outbox.send(conn, self.portfolio_fields(item))
        self.outbox.send(conn, [OUT.ACCT_UPDATE_TIME, 1, self.clock.local().strftime("%H:%M")])

    def req_account_updates(self, conn: Session, r: FieldReader) -> None:
        r.int()
        subscribe = r.bool()
        r.str()  # account code
        conn.account_sub = subscribe
        if subscribe:
            self._send_account_snapshot(conn)
            self.outbox.send(conn, [OUT.ACCT_DOWNLOAD_END, 1, self.settings.account])

    def req_account_updates_multi(self, conn: Session, r: FieldReader) -> None:
        r.int()
        req_id = r.int()
        r.str()  # account
        model = r.str()
        conn.multi_subs.add(req_id)
        self._send_multi(conn, req_id, model)
        self.outbox.send(conn, [OUT.ACCOUNT_UPDATE_MULTI_END, 1, req_id])

    def _send_multi(self, conn: Session, req_id: int, model: str = "") -> None:
        for key, val, cur in self.account_rows():
            self.outbox.send(conn, [OUT.ACCOUNT_UPDATE_MULTI, 1, req_id, self.settings.account, model, key, val, cur])

    def cancel_account_updates_multi(self, conn: Session, r: FieldReader) -> None:
        r.int()
        conn.multi_subs.discard(r.int())

    def req_account_summary(self, conn: Session, r: FieldReader) -> None:
        r.int()
        req_id = r.int()
        r.str()  # group
        tags = [t.strip() for t in r.str().split(",") if t.strip()]
        rows = {k: (v, c) for k, v, c in self.account_rows()}
        for tag in tags:
            if tag in rows:
                val, cur = rows[tag]
                self.outbox.send(conn, [OUT.ACCOUNT_SUMMARY, 1, req_id, self.settings.account, tag, val, cur])
        self.outbox.send(conn, [OUT.ACCOUNT_SUMMARY_END, 1, req_id])

    def push_updates(self) -> None:
        """After a fill: positions to reqPositions subscribers, portfolio/account values to
        reqAccountUpdates subscribers, account values to reqAccountUpdatesMulti subscribers."""
        for conn in self.sessions.ready():
            if conn.positions_sub:
                for pos in self.book.positions.values():
                    self.outbox.send(conn, self.position_fields(pos))
            if conn.account_sub:
                self._send_account_snapshot(conn)
            for req_id in conn.multi_subs:
                self._send_multi(conn, req_id)
