"""Incoming messages: the table from message id to handler (like ib_async's Decoder, the other way
round), and the dispatch that records each message, enforces the pacing limit (error 100) and refuses
requests made before startApi."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from . import wire
from .account_reports import AccountReports
from .contract_details import ContractDetails
from .handshake import Handshake
from .market_data import MarketData
from .order_entry import OrderEntry
from .order_reports import OrderReports
from .outbox import Outbox
from .sessions import Session
from .settings import Settings
from .wire import IN, FieldReader

log = logging.getLogger("alvh.faketws")

Handler = Callable[[Session, FieldReader], None]


def handler_table(hs: Handshake, contracts: ContractDetails, market: MarketData, orders: OrderEntry,
                  order_reports: OrderReports, account: AccountReports) -> dict[int, Handler]:
    """Every request the server answers; any other id is logged and ignored."""
    return {
        IN.REQ_MKT_DATA: market.req_mkt_data,
        IN.CANCEL_MKT_DATA: market.cancel_mkt_data,
        IN.PLACE_ORDER: orders.place_order,
        IN.CANCEL_ORDER: orders.cancel_order,
        IN.REQ_OPEN_ORDERS: order_reports.req_open_orders,
        IN.REQ_ACCT_DATA: account.req_account_updates,
        IN.REQ_EXECUTIONS: order_reports.req_executions,
        IN.REQ_IDS: hs.req_ids,
        IN.REQ_CONTRACT_DATA: contracts.req_contract_details,
        IN.REQ_AUTO_OPEN_ORDERS: hs.ignore,
        IN.REQ_ALL_OPEN_ORDERS: order_reports.req_all_open_orders,
        IN.REQ_MANAGED_ACCTS: hs.managed_accounts,
        IN.REQ_HISTORICAL_DATA: hs.req_historical,
        IN.REQ_HEAD_TIMESTAMP: hs.req_historical,
        IN.REQ_HISTORICAL_TICKS: hs.req_historical,
        IN.REQ_CURRENT_TIME: hs.req_current_time,
        IN.REQ_GLOBAL_CANCEL: orders.global_cancel,
        IN.REQ_MARKET_DATA_TYPE: hs.req_market_data_type,
        IN.REQ_POSITIONS: account.req_positions,
        IN.CANCEL_POSITIONS: account.cancel_positions,
        IN.REQ_ACCOUNT_SUMMARY: account.req_account_summary,
        IN.CANCEL_ACCOUNT_SUMMARY: hs.ignore,
        IN.REQ_POSITIONS_MULTI: account.req_positions_multi,
        IN.CANCEL_POSITIONS_MULTI: hs.ignore,
        IN.REQ_ACCOUNT_UPDATES_MULTI: account.req_account_updates_multi,
        IN.CANCEL_ACCOUNT_UPDATES_MULTI: account.cancel_account_updates_multi,
        IN.REQ_SEC_DEF_OPT_PARAMS: contracts.req_sec_def_opt_params,
        IN.REQ_MATCHING_SYMBOLS: hs.req_matching_symbols,
        IN.REQ_COMPLETED_ORDERS: order_reports.req_completed_orders,
        IN.REQ_USER_INFO: hs.req_user_info,
        IN.START_API: hs.start_api,
    }


class Decoder:
    def __init__(self, handlers: dict[int, Handler], settings: Settings, outbox: Outbox):
        self.handlers = handlers
        self.settings = settings
        self.outbox = outbox
        self.pacing_violations = 0

    def dispatch(self, conn: Session, fields: list[str]) -> None:
        if not fields:
            return
        try:
            msg_id = int(fields[0])
        except ValueError:
            log.warning("FakeTWS: bad message %r", fields[:4])
            return
        if msg_id == IN.START_API and conn.client_id is None and len(fields) > 2:
            try:
                conn.client_id = int(fields[2])  # so the transcript shows whose startApi it was
            except ValueError:
                pass
        self.outbox.record("in", conn, msg_id, fields)
        self._check_pacing(conn)
        handler = self.handlers.get(msg_id)
        if handler is None:
            log.info("FakeTWS: unsupported message %s (%s) ignored", msg_id, wire.msg_name(msg_id, "in"))
            return
        if msg_id != IN.START_API and not conn.ready:
            log.warning("FakeTWS: message %s before startApi ignored", msg_id)
            return
        try:
            handler(conn, FieldReader(fields[1:]))
        except Exception:
            log.exception("FakeTWS: handler for %s failed on %r", msg_id, fields[:20])

    def _check_pacing(self, conn: Session) -> None:
        now = time.monotonic()
        window = self.settings.pacing_window
        q = conn.rx_times
        q.append(now)
        while q and q[0] <= now - window:
            q.popleft()
        limit = self.settings.max_msg_rate
        if limit and len(q) > limit:
            self.pacing_violations += 1
            if now - conn.last_pacing_error >= window:
                conn.last_pacing_error = now
                self.outbox.error(conn, -1, 100, "Max rate of messages per second has been exceeded:"
                                  f"max={limit} rec={len(q)} (1)")
