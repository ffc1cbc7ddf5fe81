"""FakeTWS: a loopback TWS-protocol server (server version 178) for tests and rehearsals.

The real ``ib_async`` client connects to it unmodified::

    async with FakeTWS() as srv:
        ib = IB()
        await ib.connectAsync("127.0.0.1", srv.port, clientId=1)

    srv = FakeTWS.start_in_thread(account="DU7654321")   # own thread + loop
    ...
    srv.stop()

    python -m adapters.faketws.server --port 7497 --account DU1234567

The account (orders, positions, executions, cash) lives in ``srv.book`` and survives
client disconnects, like a real TWS session.  See docs/ib-test-server.md.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Self
from zoneinfo import ZoneInfo

from . import wire
from .book import (
    BAG_CONID,
    UTC,
    BagContractError,
    Book,
    ContractSpec,
    ContractUniverse,
    DefaultQuoteProvider,
    ExecutionRecord,
    FillAll,
    FillDecision,
    FillPolicy,
    LegRecord,
    MarketableFill,
    NeverFill,
    OrderRecord,
    Quote,
    Reject,
    default_commission,
    on_tick,
    option_tick,
)
from .wire import IN, OUT, FieldReader, fmt_float

log = logging.getLogger("alvh.faketws")

SUPPORTED_VERSIONS = (176, 177, 178)

MSG_NO_SECDEF = "No security definition has been found for the request"
FARM_NOTICES = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)


@dataclass
class Msg:
    """One transcript entry.  direction: 'in' (client->server), 'out', 'dropped'."""

    ts: float
    direction: str
    conn_id: int
    client_id: int | None
    msg_id: int
    name: str
    fields: list[str]

    def __repr__(self) -> str:  # compact, for assertion messages
        return f"<{self.direction} c{self.client_id} {self.name} {self.fields[:8]}>"


@dataclass
class _MktSub:
    req_id: int
    specs: list[ContractSpec]
    legs: list[LegRecord]
    is_bag: bool
    last_sent: dict = field(default_factory=dict)


class _Conn:
    def __init__(self, server: FakeTWS, conn_id: int, reader, writer):
        self.server = server
        self.id = conn_id
        self.reader: asyncio.StreamReader = reader
        self.writer: asyncio.StreamWriter = writer
        self.client_id: int | None = None
        self.version = server.server_version
        self.ready = False
        self.closed = False
        self.md_type = 1
        self.mkt: dict[int, _MktSub] = {}
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
        self.closed = True
        with contextlib.suppress(Exception):
            self.writer.transport.abort()


def _threadsafe(fn):
    """Run a public method on the server loop when called from another thread."""

    @functools.wraps(fn)
    def wrapper(self: FakeTWS, *args, **kwargs):
        loop = self._loop
        if loop is None or not loop.is_running() or threading.get_ident() == self._loop_thread_id:
            return fn(self, *args, **kwargs)
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def run():
            try:
                fut.set_result(fn(self, *args, **kwargs))
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                fut.set_exception(e)

        loop.call_soon_threadsafe(run)
        return fut.result(timeout=10)

    return wrapper


class FakeTWS:
    """Loopback TWS (server version 178) backed by a persistent simulated account.

    Args:
        host, port: listen address; port 0 picks an ephemeral port (read ``.port``).
        account: the managed account id (paper ids start with DU).
        server_version: 176..178 (178 default; ib_async negotiates up to 178).
        quote_provider: ``(contract_fields: dict) -> Quote | None``; default
            ``DefaultQuoteProvider(spx, vix, vol)`` (Black-Scholes at a flat vol).
        spx, vix, vol: levels for the default provider (ignored with a custom provider).
        now: fixed ``datetime`` (aware or UTC-naive) or ``() -> datetime``; default wall clock.
        cash: starting cash.
        fill_policy: default policy for new orders (``MarketableFill()``).
        no_quote_error: error code when the provider returns None (200 or 354).
        market_data_entitled: False -> live requests (type 1/2) get error 354, delayed
            types (3/4) get delayed tick ids (66...).
        tick_interval: seconds between streaming quote refreshes (0 = only on publish_quotes()).
        max_msg_rate: client messages per second before error 100.
        enforce_unique_client_id: a second connection with a clientId in use gets 326.
        master_client_id: this clientId sees every client's orders/executions.
        farm_notices: send 2104/2106/2158 after startApi.
        enforce_ticks: reject limit prices off the minimum tick with error 110.
        bag_commission_report: also send a (zero) commissionReport for the combo-level
            execution of a BAG fill (default False: per-leg reports only).
        fills_before_open_order: send execDetails before openOrder for immediate fills.
        commission_fn: ``(spec, qty, price) -> commission``.
        timezone: TWS time zone used in execution times and the handshake.
        chain_exchanges: exchanges listed by reqSecDefOptParams (one row per class each).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        account: str = "DU1234567",
        server_version: int = 178,
        quote_provider: Callable[[dict], Quote | None] | None = None,
        spx: float = 5000.0,
        vix: float = 15.0,
        vol: float = 0.15,
        now: dt.datetime | Callable[[], dt.datetime] | None = None,
        cash: float = 1_000_000.0,
        fill_policy: FillPolicy | None = None,
        no_quote_error: int = 200,
        market_data_entitled: bool = True,
        tick_interval: float = 0.5,
        max_msg_rate: int = 50,
        enforce_unique_client_id: bool = True,
        master_client_id: int | None = None,
        farm_notices: bool = True,
        enforce_ticks: bool = True,
        bag_commission_report: bool = False,
        fills_before_open_order: bool = False,
        commission_fn=default_commission,
        timezone: str = "US/Eastern",
        chain_exchanges: Iterable[str] = ("SMART",),
        etps: dict | None = None,
    ):
        if server_version not in SUPPORTED_VERSIONS:
            raise ValueError(f"server_version must be one of {SUPPORTED_VERSIONS}")
        self.host = host
        self._requested_port = port
        self.port: int = port
        self.account = account
        self.server_version = server_version
        self._fixed_now: dt.datetime | None = None
        self._now_fn: Callable[[], dt.datetime] | None = None
        if callable(now):
            self._now_fn = now
        elif now is not None:
            self._fixed_now = now if now.tzinfo else now.replace(tzinfo=UTC)
        try:
            self.tz = ZoneInfo(timezone)
            self.tz_name = timezone
        except (KeyError, ValueError):  # pragma: no cover - unknown zone / no tzdata
            self.tz, self.tz_name = UTC, "UTC"
        self.universe = ContractUniverse(self.now, etps=etps, spx_level=spx)
        if quote_provider is None:
            quote_provider = DefaultQuoteProvider(spx=spx, vix=vix, vol=vol, clock=self.now)
        self.quote_provider = quote_provider
        self.book = Book(self.universe, self._quote_for_spec, account=account, cash=cash,
                         commission_fn=commission_fn, clock=self.now)
        self.fill_policy: FillPolicy = fill_policy or MarketableFill()
        self.fill_policies_by_ref: dict[str, FillPolicy] = {}
        self.no_quote_error = no_quote_error
        self.market_data_entitled = market_data_entitled
        self.tick_interval = tick_interval
        self.max_msg_rate = max_msg_rate
        self.pacing_window = 0.9  # seconds; a little under 1 s so TCP jitter can't fake a burst
        self.enforce_unique_client_id = enforce_unique_client_id
        self.master_client_id = master_client_id
        self.farm_notices = farm_notices
        self.enforce_ticks = enforce_ticks
        self.bag_commission_report = bag_commission_report
        self.fills_before_open_order = fills_before_open_order
        self.chain_exchanges = tuple(chain_exchanges)

        self.transcript: list[Msg] = []
        self.pacing_violations = 0
        self._conns: dict[int, _Conn] = {}
        self._handler_tasks: set[asyncio.Task] = set()
        self._conn_seq = 0
        self._server: asyncio.base_events.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread_id: int | None = None
        self._thread: threading.Thread | None = None
        self._tick_task: asyncio.Task | None = None
        self._reopen_handle: asyncio.TimerHandle | None = None
        self._reject_client_ids: set[int] | None = None  # None = off; empty set = every id
        self._delays: dict[int | str, float] = {}
        self._drops: set[int] = set()
        self._closing = False
        self.resetting_until: float = 0.0
        self._handlers: dict[int, Callable[[_Conn, FieldReader], None]] = {
            IN.REQ_MKT_DATA: self._h_req_mkt_data,
            IN.CANCEL_MKT_DATA: self._h_cancel_mkt_data,
            IN.PLACE_ORDER: self._h_place_order,
            IN.CANCEL_ORDER: self._h_cancel_order,
            IN.REQ_OPEN_ORDERS: self._h_req_open_orders,
            IN.REQ_ACCT_DATA: self._h_req_account_updates,
            IN.REQ_EXECUTIONS: self._h_req_executions,
            IN.REQ_IDS: self._h_req_ids,
            IN.REQ_CONTRACT_DATA: self._h_req_contract_details,
            IN.REQ_AUTO_OPEN_ORDERS: lambda c, r: None,
            IN.REQ_ALL_OPEN_ORDERS: self._h_req_all_open_orders,
            IN.REQ_MANAGED_ACCTS: lambda c, r: self._send(c, [OUT.MANAGED_ACCTS, 1, self.account]),
            IN.REQ_HISTORICAL_DATA: self._h_req_historical,
            IN.REQ_HEAD_TIMESTAMP: self._h_req_historical,
            IN.REQ_HISTORICAL_TICKS: self._h_req_historical,
            IN.REQ_CURRENT_TIME: self._h_req_current_time,
            IN.REQ_GLOBAL_CANCEL: self._h_req_global_cancel,
            IN.REQ_MARKET_DATA_TYPE: self._h_req_market_data_type,
            IN.REQ_POSITIONS: self._h_req_positions,
            IN.CANCEL_POSITIONS: self._h_cancel_positions,
            IN.REQ_ACCOUNT_SUMMARY: self._h_req_account_summary,
            IN.CANCEL_ACCOUNT_SUMMARY: lambda c, r: None,
            IN.REQ_POSITIONS_MULTI: self._h_req_positions_multi,
            IN.CANCEL_POSITIONS_MULTI: lambda c, r: None,
            IN.REQ_ACCOUNT_UPDATES_MULTI: self._h_req_account_updates_multi,
            IN.CANCEL_ACCOUNT_UPDATES_MULTI: self._h_cancel_account_updates_multi,
            IN.REQ_SEC_DEF_OPT_PARAMS: self._h_req_sec_def_opt_params,
            IN.REQ_MATCHING_SYMBOLS: self._h_req_matching_symbols,
            IN.REQ_COMPLETED_ORDERS: self._h_req_completed_orders,
            IN.REQ_USER_INFO: lambda c, r: self._send(c, [OUT.USER_INFO, r.int(), ""]),
            IN.START_API: self._h_start_api,
        }

    # ================================================================ clock
    def now(self) -> dt.datetime:
        if self._now_fn is not None:
            t = self._now_fn()
            return t if t.tzinfo else t.replace(tzinfo=UTC)
        if self._fixed_now is not None:
            return self._fixed_now
        return dt.datetime.now(UTC)

    @_threadsafe
    def set_time(self, when: dt.datetime) -> None:
        """Pin the server clock (affects option time value, expiries, execution times)."""
        self._now_fn = None
        self._fixed_now = when if when.tzinfo else when.replace(tzinfo=UTC)

    @_threadsafe
    def advance(self, seconds: float) -> None:
        if self._fixed_now is None:
            self._fixed_now = self.now()
            self._now_fn = None
        self._fixed_now += dt.timedelta(seconds=seconds)

    def _tws_time(self, t: dt.datetime | None = None) -> str:
        t = (t or self.now()).astimezone(self.tz)
        return t.strftime("%Y%m%d %H:%M:%S ") + self.tz_name

    # ================================================================ lifecycle
    async def start(self) -> FakeTWS:
        self._loop = asyncio.get_running_loop()
        self._loop_thread_id = threading.get_ident()
        self._closing = False
        await self._listen(self._requested_port)
        if self.tick_interval and self.tick_interval > 0:
            self._tick_task = self._loop.create_task(self._tick_loop())
        log.info("FakeTWS listening on %s:%s (server version %s, account %s)",
                 self.host, self.port, self.server_version, self.account)
        return self

    async def _listen(self, port: int) -> None:
        self._server = await asyncio.start_server(self._on_client, self.host, port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        self._closing = True
        if self._reopen_handle:
            self._reopen_handle.cancel()
            self._reopen_handle = None
        if self._tick_task:
            self._tick_task.cancel()
            with contextlib.suppress(BaseException):
                await self._tick_task
            self._tick_task = None
        for conn in list(self._conns.values()):
            conn.abort()
        pending = [t for t in self._handler_tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=2)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None
        await asyncio.sleep(0)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    @classmethod
    def start_in_thread(cls, **kwargs) -> FakeTWS:
        """Create a server running on its own event loop in a daemon thread."""
        srv = cls(**kwargs)
        ready = threading.Event()
        errors: list[BaseException] = []

        def run():
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(srv.start())
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        t = threading.Thread(target=run, name=f"FakeTWS-{id(srv):x}", daemon=True)
        srv._thread = t
        t.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return srv

    def stop(self) -> None:
        """Stop a server started with start_in_thread (from any other thread).  Called on
        the server's own loop it schedules ``aclose()``."""
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread_id:
            loop.create_task(self.aclose())
            return
        if loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self.aclose(), loop).result(10)
            finally:
                if self._thread is not None:
                    loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ================================================================ connections
    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing or time.monotonic() < self.resetting_until:
            writer.transport.abort()
            return
        self._conn_seq += 1
        conn = _Conn(self, self._conn_seq, reader, writer)
        self._conns[conn.id] = conn
        task = asyncio.current_task()
        if task is not None:
            self._handler_tasks.add(task)
            task.add_done_callback(self._handler_tasks.discard)
        try:
            prefix = await reader.readexactly(4)
            if prefix != b"API\0":
                log.warning("FakeTWS: bad handshake prefix %r", prefix)
                return
            (n,) = wire.HEADER.unpack(await reader.readexactly(4))
            payload = await reader.readexactly(n)
            lo, hi, _opts = wire.parse_version_range(payload)
            self._record("in", conn, 0, ["API", payload.decode(errors="replace")], name="handshake")
            version = min(self.server_version, hi)
            if version < lo or version not in SUPPORTED_VERSIONS:
                log.warning("FakeTWS: client range %s..%s incompatible with %s", lo, hi, self.server_version)
                return
            conn.version = version
            conn.write_raw(wire.encode_msg([str(version), self._tws_time()]))
            self._record("out", conn, 0, [str(version), self._tws_time()], name="handshake")
            while not conn.closed:
                (n,) = wire.HEADER.unpack(await reader.readexactly(4))
                if n > wire.MAX_FRAME:
                    raise ValueError("frame too large")
                payload = await reader.readexactly(n)
                self._dispatch(conn, wire.decode_payload(payload))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except asyncio.CancelledError:  # server shutting down
            pass
        except Exception:  # pragma: no cover - a bug in a handler: log and drop the client
            log.exception("FakeTWS: error serving connection %s", conn.id)
        finally:
            conn.closed = True
            self._conns.pop(conn.id, None)
            with contextlib.suppress(Exception):
                writer.close()
            log.debug("FakeTWS: connection %s (client %s) closed", conn.id, conn.client_id)

    def _ready_conns(self, client_id: int | None = None) -> list[_Conn]:
        return [c for c in self._conns.values()
                if c.ready and not c.closed and (client_id is None or c.client_id == client_id)]

    def client_ids(self) -> list[int]:
        """clientIds of the connected API sessions."""
        return sorted(c.client_id for c in self._ready_conns() if c.client_id is not None)

    # ================================================================ transcript & sending
    def _record(self, direction: str, conn: _Conn, msg_id: int, fields: list, name: str | None = None) -> None:
        fields = [wire.fmt_field(f) for f in fields]
        nm = name or wire.msg_name(msg_id, "in" if direction == "in" else "out")
        self.transcript.append(Msg(time.time(), direction, conn.id, conn.client_id, msg_id, nm, fields))
        if log.isEnabledFor(logging.DEBUG):
            arrow = {"in": "<<<", "out": ">>>", "dropped": "xxx"}[direction]
            log.debug("%s c%s %s %s", arrow, conn.client_id, nm, ",".join(fields))

    def _send(self, conn: _Conn, fields: list) -> None:
        if conn.closed:
            return
        msg_id = int(fields[0])
        if msg_id in self._drops:
            self._record("dropped", conn, msg_id, fields)
            return
        data = wire.encode_msg(fields)
        delay = self._delays.get(msg_id, self._delays.get("*", 0.0))
        self._record("out", conn, msg_id, fields)
        if delay and self._loop is not None:
            self._loop.call_later(delay, conn.write_raw, data)
        else:
            conn.write_raw(data)

    def _error(self, conn: _Conn, req_id: int, code: int, msg: str, advanced: str = "") -> None:
        self._send(conn, [OUT.ERR_MSG, 2, req_id, code, msg, advanced])

    def received(self, msg_type: int | str | None = None, client_id: int | None = None) -> list[Msg]:
        """Transcript entries the client sent (optionally of one type / client)."""
        mid = wire.in_msg_id(msg_type) if msg_type is not None else None
        return [m for m in list(self.transcript) if m.direction == "in"
                and (mid is None or m.msg_id == mid) and (client_id is None or m.client_id == client_id)]

    def sent(self, msg_type: int | str | None = None, client_id: int | None = None) -> list[Msg]:
        """Transcript entries the server sent (optionally of one type / client)."""
        mid = wire.out_msg_id(msg_type) if msg_type is not None else None
        return [m for m in list(self.transcript) if m.direction == "out"
                and (mid is None or m.msg_id == mid) and (client_id is None or m.client_id == client_id)]

    # ================================================================ dispatch
    def _dispatch(self, conn: _Conn, fields: list[str]) -> None:
        if not fields:
            return
        try:
            msg_id = int(fields[0])
        except ValueError:
            log.warning("FakeTWS: bad message %r", fields[:4])
            return
        if msg_id == IN.START_API and conn.client_id is None and len(fields) > 2:
            try:
                conn.client_id = int(fields[2])
            except ValueError:
                pass
        self._record("in", conn, msg_id, fields)
        self._check_pacing(conn)
        handler = self._handlers.get(msg_id)
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

    def _check_pacing(self, conn: _Conn) -> None:
        now = time.monotonic()
        q = conn.rx_times
        q.append(now)
        while q and q[0] <= now - self.pacing_window:
            q.popleft()
        if self.max_msg_rate and len(q) > self.max_msg_rate:
            self.pacing_violations += 1
            if now - conn.last_pacing_error >= self.pacing_window:
                conn.last_pacing_error = now
                self._error(conn, -1, 100, "Max rate of messages per second has been exceeded:"
                            f"max={self.max_msg_rate} rec={len(q)} (1)")

    # ================================================================ handshake / startApi
    def _h_start_api(self, conn: _Conn, r: FieldReader) -> None:
        r.int()  # version
        client_id = r.int()
        r.str() if r.remaining() else ""  # optional capabilities
        conn.client_id = client_id
        in_use = self.enforce_unique_client_id and any(
            c is not conn and c.client_id == client_id for c in self._ready_conns())
        forced = self._reject_client_ids is not None and (
            not self._reject_client_ids or client_id in self._reject_client_ids)
        if in_use or forced:
            self._error(conn, -1, 326, "Unable to connect as the client id is already in use. "
                        "Retry with a unique client id.")
            conn.closed = True
            # flush the error, then close (like TWS)
            with contextlib.suppress(Exception):
                conn.writer.close()
            return
        conn.ready = True
        self._send(conn, [OUT.NEXT_VALID_ID, 1, self._next_valid_id(client_id)])
        self._send(conn, [OUT.MANAGED_ACCTS, 1, self.account])
        if self.farm_notices:
            for code, text in FARM_NOTICES:
                self._error(conn, -1, code, text)

    def _next_valid_id(self, client_id: int | None) -> int:
        ids = [oid for (cid, oid) in self.book.orders if cid == client_id]
        return max(ids + [0]) + 1

    def _h_req_ids(self, conn: _Conn, r: FieldReader) -> None:
        self._send(conn, [OUT.NEXT_VALID_ID, 1, max(self._next_valid_id(conn.client_id), conn.max_order_id + 1)])

    def _h_req_current_time(self, conn: _Conn, r: FieldReader) -> None:
        self._send(conn, [OUT.CURRENT_TIME, 1, int(self.now().timestamp())])

    def _h_req_market_data_type(self, conn: _Conn, r: FieldReader) -> None:
        r.int()
        conn.md_type = r.int(1)

    def _h_req_historical(self, conn: _Conn, r: FieldReader) -> None:
        # reqHistoricalData has no version field, head timestamp / ticks neither
        req_id = r.int()
        self._error(conn, req_id, 162, "Historical Market Data Service error message:FakeTWS has no historical data")

    def _h_req_matching_symbols(self, conn: _Conn, r: FieldReader) -> None:
        req_id = r.int()
        self._send(conn, [79, req_id, 0])

    # ================================================================ contract helpers
    @staticmethod
    def _read_contract(r: FieldReader) -> dict:
        return {
            "conId": r.int(),
            "symbol": r.str(),
            "secType": r.str(),
            "lastTradeDateOrContractMonth": r.str(),
            "strike": r.float(0.0) or 0.0,
            "right": r.str(),
            "multiplier": r.str(),
            "exchange": r.str(),
            "primaryExchange": r.str(),
            "currency": r.str(),
            "localSymbol": r.str(),
            "tradingClass": r.str(),
        }

    def _quote_for_spec(self, spec: ContractSpec) -> Quote | None:
        try:
            return self.quote_provider(spec.fields())
        except Exception:
            log.exception("FakeTWS: quote provider failed for %s", spec.local_symbol)
            return None

    @staticmethod
    def _details_exchange(spec: ContractSpec, requested: str) -> str:
        requested = (requested or "").upper()
        if requested and (requested == "SMART" or requested in spec.valid_exchanges.split(",")):
            return requested
        return spec.exchange

    def _contract_details_fields(self, req_id: int, spec: ContractSpec, exchange: str) -> list:
        if spec.sec_type in ("OPT", "FUT"):
            last_times = f"{spec.last_trade} {spec.last_trade_time} {spec.time_zone}".strip()
        else:
            last_times = ""
        today = self.now().astimezone(self.tz).date()
        if spec.sec_type == "FUT":
            hours = ";".join(f"{(today + dt.timedelta(days=i - 1)):%Y%m%d}:1700-{(today + dt.timedelta(days=i)):%Y%m%d}:1600"
                             for i in range(3))
        else:
            hours = ";".join(f"{(today + dt.timedelta(days=i)):%Y%m%d}:0930-{(today + dt.timedelta(days=i)):%Y%m%d}:1615"
                             for i in range(3))
        return [
            OUT.CONTRACT_DATA, req_id, spec.symbol, spec.sec_type, last_times,
            fmt_float(spec.strike) if spec.sec_type == "OPT" else "0", spec.right, exchange, spec.currency,
            spec.local_symbol, spec.market_name, spec.trading_class, spec.con_id, fmt_float(spec.min_tick),
            spec.multiplier, spec.order_types, spec.valid_exchanges, 1, spec.under_con_id, spec.long_name,
            spec.primary_exchange, spec.contract_month, "", "", "", spec.time_zone, hours, hours, "", "", 0,
            1, spec.under_symbol, spec.under_sec_type, spec.market_rule_ids, spec.last_trade,
            "ETF" if spec.sec_type == "STK" else "",
            "1", "1", "1",
        ]

    def _h_req_contract_details(self, conn: _Conn, r: FieldReader) -> None:
        r.int()  # version
        req_id = r.int()
        q = self._read_contract(r)
        q["includeExpired"] = r.bool()
        r.str()  # secIdType
        r.str()  # secId
        if conn.version >= 176 and r.remaining():
            r.str()  # issuerId
        try:
            specs = self.universe.resolve(q)
        except BagContractError:
            # TWS answers a BAG details request with 321 and never sends contractDetailsEnd
            self._error(conn, req_id, 321, "Error validating request.-'bN' : cause - "
                        "Invalid security type for contract details request: BAG")
            return
        if not specs:
            self._error(conn, req_id, 200, MSG_NO_SECDEF)
            return
        for spec in specs:
            self._send(conn, self._contract_details_fields(req_id, spec, self._details_exchange(spec, q["exchange"])))
        self._send(conn, [OUT.CONTRACT_DATA_END, 1, req_id])

    def _h_req_sec_def_opt_params(self, conn: _Conn, r: FieldReader) -> None:
        req_id = r.int()
        symbol = r.str()
        r.str()  # futFopExchange
        r.str()  # underlyingSecType
        und_con_id = r.int()
        spx_level = getattr(self.quote_provider, "spx", None)
        rows = self.universe.option_chains(symbol, spx_level=spx_level, exchanges=self.chain_exchanges)
        for row in rows:
            if und_con_id and row["underlyingConId"] != und_con_id:
                continue
            exps, strikes = row["expirations"], row["strikes"]
            self._send(conn, [OUT.SECURITY_DEFINITION_OPTION_PARAMETER, req_id, row["exchange"],
                              row["underlyingConId"], row["tradingClass"], row["multiplier"],
                              len(exps), *exps, len(strikes), *[fmt_float(k) for k in strikes]])
        self._send(conn, [OUT.SECURITY_DEFINITION_OPTION_PARAMETER_END, req_id])

    # ================================================================ market data
    def _h_req_mkt_data(self, conn: _Conn, r: FieldReader) -> None:
        r.int()  # version
        req_id = r.int()
        q = self._read_contract(r)
        legs_raw = []
        if q["secType"].upper() == "BAG":
            for _ in range(r.int()):
                legs_raw.append((r.int(), r.int(), r.str(), r.str()))
        if r.bool():
            r.skip(3)  # delta-neutral contract
        generic = r.str()
        snapshot = r.bool()
        r.bool()  # regulatory snapshot
        if r.remaining():
            r.str()  # mktDataOptions
        legs: list[LegRecord] = []
        specs: list[ContractSpec] = []
        if legs_raw:
            for con_id, ratio, action, exch in legs_raw:
                spec = self.universe.get(con_id)
                if spec is None:
                    self._error(conn, req_id, 200, MSG_NO_SECDEF)
                    return
                legs.append(LegRecord(spec, ratio or 1, action or "BUY", exch))
        else:
            try:
                specs = self.universe.resolve(q)
            except BagContractError:
                specs = []
            if not specs:
                self._error(conn, req_id, 200, MSG_NO_SECDEF)
                return
            if len(specs) > 1:
                self._error(conn, req_id, 200, f"The contract description specified for {q['symbol']} is ambiguous.")
                return
        delayed = False
        if not self.market_data_entitled:
            if conn.md_type in (3, 4):
                delayed = True
            else:
                self._error(conn, req_id, 354, "Requested market data is not subscribed.")
                return
        sub = _MktSub(req_id, specs, legs, bool(legs))
        quote = self._sub_quote(sub)
        if quote is None:
            code = self.no_quote_error
            text = MSG_NO_SECDEF if code == 200 else "Requested market data is not subscribed."
            self._error(conn, req_id, code, text)
            return
        self._send(conn, [OUT.MARKET_DATA_TYPE, 1, req_id, 3 if delayed else 1])
        min_tick = specs[0].min_tick if specs else 0.05
        self._send(conn, [OUT.TICK_REQ_PARAMS, req_id, fmt_float(min_tick), "9c0001", 3])
        sub.last_sent["delayed"] = delayed
        self._send_quote_ticks(conn, sub, quote, generic=generic)
        if snapshot:
            self._send(conn, [OUT.TICK_SNAPSHOT_END, 1, req_id])
        else:
            conn.mkt[req_id] = sub

    def _h_cancel_mkt_data(self, conn: _Conn, r: FieldReader) -> None:
        r.int()
        conn.mkt.pop(r.int(), None)

    def _sub_quote(self, sub: _MktSub) -> Quote | None:
        if sub.is_bag:
            from .book import combo_quote

            return combo_quote(sub.legs, [self._quote_for_spec(leg.spec) for leg in sub.legs])
        return self._quote_for_spec(sub.specs[0])

    def _send_quote_ticks(self, conn: _Conn, sub: _MktSub, q: Quote, generic: str = "", only_changed=False) -> None:
        delayed = bool(sub.last_sent.get("delayed"))
        # live tick id -> delayed tick id (TWS tick types 66..75)
        tt = {1: 66, 2: 67, 4: 68, 9: 75, 0: 69, 3: 70, 5: 71, 8: 74} if delayed else {}
        d = 1 if delayed else 0
        rid = sub.req_id
        prev = sub.last_sent

        def changed(key, value):
            if only_changed and prev.get(key) == value:
                return False
            prev[key] = value
            return True

        def k(tick: int) -> int:
            return tt.get(tick, tick)

        if q.bid is not None and changed("bid", (q.bid, q.bid_size)):
            self._send(conn, [OUT.TICK_PRICE, 6, rid, k(1), fmt_float(q.bid), fmt_float(q.bid_size), 0])
            self._send(conn, [OUT.TICK_SIZE, 6, rid, k(0), fmt_float(q.bid_size)])
        if q.ask is not None and changed("ask", (q.ask, q.ask_size)):
            self._send(conn, [OUT.TICK_PRICE, 6, rid, k(2), fmt_float(q.ask), fmt_float(q.ask_size), 0])
            self._send(conn, [OUT.TICK_SIZE, 6, rid, k(3), fmt_float(q.ask_size)])
        if q.last is not None and changed("last", (q.last, q.last_size)):
            self._send(conn, [OUT.TICK_PRICE, 6, rid, k(4), fmt_float(q.last), fmt_float(q.last_size), 0])
            self._send(conn, [OUT.TICK_SIZE, 6, rid, k(5), fmt_float(q.last_size)])
        if q.close is not None and changed("close", q.close):
            self._send(conn, [OUT.TICK_PRICE, 6, rid, k(9), fmt_float(q.close), 0, 0])
        if q.volume is not None and changed("volume", q.volume):
            self._send(conn, [OUT.TICK_SIZE, 6, rid, k(8), fmt_float(q.volume)])
        is_opt = not sub.is_bag and sub.specs and sub.specs[0].sec_type == "OPT"
        if is_opt and (q.iv is not None or q.delta is not None):
            key = (q.iv, q.delta, q.gamma, q.vega, q.theta, q.und_price, q.bid, q.ask)
            if changed("greeks", key):
                self._send_greeks(conn, rid, q, d)
        if "106" in (generic or "").split(",") and q.iv is not None and changed("iv106", q.iv):
            self._send(conn, [OUT.TICK_GENERIC, 6, rid, 24, fmt_float(q.iv)])

    def _send_greeks(self, conn: _Conn, rid: int, q: Quote, d: int) -> None:
        def g(v, sentinel):
            return fmt_float(v) if v is not None else str(sentinel)

        model_px = q.opt_price if q.opt_price is not None else q.mid
        base = [OUT.TICK_OPTION_COMPUTATION, rid]

        def comp(tick, iv, px):
            return base + [tick, 0, g(iv, -1), g(q.delta, -2), g(px, -1), "0", g(q.gamma, -2), g(q.vega, -2),
                           g(q.theta, -2), g(q.und_price, -1)]

        def iv_at(px):
            if q.iv is None or px is None or model_px is None or not q.vega:
                return q.iv
            return max(q.iv + (px - model_px) / (q.vega * 100.0), 0.0001)

        ofs = 70 if d else 0  # 10->80 bid, 11->81 ask, 12->82 last, 13->83 model
        if q.bid is not None and q.bid > 0:
            self._send(conn, comp(10 + ofs, iv_at(q.bid), q.bid))
        if q.ask is not None:
            self._send(conn, comp(11 + ofs, iv_at(q.ask), q.ask))
        if q.last is not None:
            self._send(conn, comp(12 + ofs, iv_at(q.last), q.last))
        self._send(conn, comp(13 + ofs, q.iv, model_px))

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            try:
                self.publish_quotes()
            except Exception:  # pragma: no cover
                log.exception("FakeTWS: tick loop failed")

    @_threadsafe
    def publish_quotes(self) -> None:
        """Re-query the provider for every streaming subscription and send what changed."""
        for conn in self._ready_conns():
            for sub in list(conn.mkt.values()):
                q = self._sub_quote(sub)
                if q is not None:
                    self._send_quote_ticks(conn, sub, q, only_changed=True)

    @_threadsafe
    def set_levels(self, spx: float | None = None, vix: float | None = None, vol: float | None = None, **etps) -> None:
        """Move the default provider's levels and push the new quotes to subscribers."""
        setter = getattr(self.quote_provider, "set_levels", None)
        if setter is None:
            raise TypeError("custom quote provider has no set_levels()")
        setter(spx=spx, vix=vix, vol=vol, **etps)
        self.publish_quotes()

    @_threadsafe
    def set_quote(self, con_id: int, quote: Quote | None) -> None:
        """Override one contract's quote in the default provider (None -> 'no quote')."""
        overrides = getattr(self.quote_provider, "overrides", None)
        if overrides is None:
            raise TypeError("custom quote provider has no overrides")
        overrides[int(con_id)] = quote
        self.publish_quotes()

    # ================================================================ orders: parsing
    def _parse_place_order(self, conn: _Conn, r: FieldReader) -> dict:
        o: dict = {"order_id": r.int()}
        o["contract"] = self._read_contract(r)
        r.str()  # secIdType
        r.str()  # secId
        o["action"] = r.str()
        o["total_qty"] = r.float(0.0) or 0.0
        o["order_type"] = r.str()
        o["lmt_price"] = r.float()
        o["aux_price"] = r.float()
        o["tif"] = r.str()
        o["oca_group"] = r.str()
        o["account"] = r.str()
        o["open_close"] = r.str()
        o["origin"] = r.int()
        o["order_ref"] = r.str()
        o["transmit"] = r.bool()
        o["parent_id"] = r.int()
        r.bool()  # blockOrder
        r.bool()  # sweepToFill
        r.int()  # displaySize
        r.int()  # triggerMethod
        o["outside_rth"] = r.bool()
        r.bool()  # hidden
        legs, prices, params = [], [], []
        if o["contract"]["secType"].upper() == "BAG":
            for _ in range(r.int()):
                legs.append({"conId": r.int(), "ratio": r.int(), "action": r.str(), "exchange": r.str(),
                             "openClose": r.int(), "shortSaleSlot": r.int(), "designatedLocation": r.str(),
                             "exemptCode": r.int(-1)})
            for _ in range(r.int()):
                prices.append(r.float())
            for _ in range(r.int()):
                params.append((r.str(), r.str()))
        o["legs"], o["order_combo_prices"], o["smart_combo_params"] = legs, prices, params
        o["what_if"] = False
        o["good_till_date"] = ""
        o["good_after_time"] = ""
        try:
            r.str()  # sharesAllocation
            r.float()  # discretionaryAmt
            o["good_after_time"] = r.str()
            o["good_till_date"] = r.str()
            r.skip(3)  # faGroup, faMethod, faPercentage
            if conn.version < 177:
                r.skip(1)  # faProfile
            r.skip(1)  # modelCode
            r.skip(4)  # shortSaleSlot, designatedLocation, exemptCode, ocaType
            r.skip(3)  # rule80A, settlingFirm, allOrNone
            r.skip(2)  # minQty, percentOffset
            r.skip(3)  # eTradeOnly, firmQuoteOnly, nbboPriceCap
            r.skip(1)  # auctionStrategy
            r.skip(5)  # startingPrice, stockRefPrice, delta, stockRangeLower, stockRangeUpper
            r.skip(3)  # overridePercentageConstraints, volatility, volatilityType
            dn_type = r.str()
            r.skip(1)  # deltaNeutralAuxPrice
            if dn_type:
                r.skip(8)
            r.skip(4)  # continuousUpdate, referencePriceType, trailStopPrice, trailingPercent
            r.skip(2)  # scaleInitLevelSize, scaleSubsLevelSize
            incr = r.float()
            if incr is not None and 0 < incr:
                r.skip(7)
            r.skip(3)  # scaleTable, activeStartTime, activeStopTime
            if r.str():  # hedgeType
                r.skip(1)
            r.skip(4)  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
            if r.bool():
                r.skip(3)
            if r.str():  # algoStrategy
                r.skip(2 * r.int())
            r.skip(1)  # algoId
            o["what_if"] = r.bool()
        except (IndexError, ValueError):
            log.debug("FakeTWS: placeOrder tail not parsed (%s fields)", len(r.fields))
        return o

    # ================================================================ orders: handling
    def _h_place_order(self, conn: _Conn, r: FieldReader) -> None:
        p = self._parse_place_order(conn, r)
        oid = p["order_id"]
        conn.max_order_id = max(conn.max_order_id, oid)
        key = (conn.client_id, oid)
        existing = self.book.orders.get(key)
        if existing is not None:
            if existing.is_done:
                self._error(conn, oid, 103, "Duplicate order id")
                return
            self._modify_order(conn, existing, p)
            return
        c = p["contract"]
        sec_type = c["secType"].upper()
        spec: ContractSpec | None = None
        legs: list[LegRecord] = []
        if sec_type == "BAG":
            if not p["legs"]:
                self._error(conn, oid, 321, "Error validating request.-'bN' : cause - "
                            "Security type 'BAG' requires combo leg details.")
                return
            for lg in p["legs"]:
                ls = self.universe.get(lg["conId"])
                if ls is None:
                    self._error(conn, oid, 200, MSG_NO_SECDEF)
                    return
                legs.append(LegRecord(ls, lg["ratio"] or 1, lg["action"].upper() or "BUY", lg["exchange"],
                                      lg["openClose"], lg["shortSaleSlot"], lg["designatedLocation"],
                                      lg["exemptCode"]))
            nonguaranteed = any(t == "NonGuaranteed" and v.strip().lower() in ("1", "true") for t, v in
                                p["smart_combo_params"])
            leg_prices = any(x is not None for x in p["order_combo_prices"])
            if len(legs) > 2 and (nonguaranteed or leg_prices):
                self._error(conn, oid, 10058, "FakeTWS: combos with more than two legs accept only a "
                            "whole-order limit price (no per-leg prices, no NonGuaranteed).")
                return
        else:
            if not c["exchange"]:
                self._error(conn, oid, 321, "Error validating request.-'bN' : cause - Missing order exchange")
                return
            try:
                specs = self.universe.resolve(c)
            except BagContractError:
                specs = []
            if len(specs) != 1:
                msg = MSG_NO_SECDEF if not specs else f"The contract description specified for {c['symbol']} is ambiguous."
                self._error(conn, oid, 200, msg)
                return
            spec = specs[0]
        otype = p["order_type"].upper()
        if otype not in ("LMT", "MKT"):
            self._error(conn, oid, 387, f"Unsupported order type for this exchange and security type ({otype}).")
            return
        if otype == "LMT" and p["lmt_price"] is None:
            self._error(conn, oid, 321, "Error validating request.-'bN' : cause - Missing limit price")
            return
        if p["total_qty"] <= 0:
            self._error(conn, oid, 434, "The order size cannot be zero.")
            return
        if otype == "LMT" and self.enforce_ticks and not self._price_on_tick(spec, legs, p["lmt_price"]):
            self._error(conn, oid, 110, "The price does not conform to the minimum price variation for this contract.")
            return
        rec = OrderRecord(
            client_id=conn.client_id or 0, order_id=oid, perm_id=self.book.next_perm_id(), contract=c,
            spec=spec, legs=legs, action=p["action"].upper(), total_qty=p["total_qty"], order_type=otype,
            lmt_price=p["lmt_price"], aux_price=p["aux_price"], tif=p["tif"] or "DAY",
            account=p["account"] or self.account, order_ref=p["order_ref"], oca_group=p["oca_group"],
            open_close=p["open_close"], origin=p["origin"], transmit=p["transmit"], parent_id=p["parent_id"],
            outside_rth=p["outside_rth"], what_if=p["what_if"], good_till_date=p["good_till_date"],
            good_after_time=p["good_after_time"], order_combo_prices=p["order_combo_prices"],
            smart_combo_params=p["smart_combo_params"], created=self.now(),
        )
        if rec.what_if:
            self._send(conn, self._open_order_fields(rec, conn.version, what_if_state=self._what_if_state(rec)))
            return
        if not rec.transmit:
            rec.status = "PreSubmitted"
            rec.why_held = ""
            self.book.add(rec)
            self._notify_open_order(rec)
            return
        self._process_new_order(rec)

    @staticmethod
    def _price_on_tick(spec: ContractSpec | None, legs: list[LegRecord], price: float) -> bool:
        if legs:
            return on_tick(price, 0.05) or on_tick(price, 0.01) and all(
                leg.spec.sec_type == "STK" for leg in legs)
        if spec is None:
            return True
        if spec.sec_type == "OPT":
            return on_tick(price, option_tick(price))
        if spec.sec_type == "FUT":
            return on_tick(price, 0.05)
        return on_tick(price, 0.01)

    def _what_if_state(self, rec: OrderRecord) -> dict:
        if rec.legs:
            widths = []
            for right in ("C", "P"):
                ks = [leg.spec.strike for leg in rec.legs if leg.spec.right == right]
                if len(ks) >= 2:
                    widths.append(max(ks) - min(ks))
            margin = (max(widths) if widths else 10.0) * 100.0 * rec.total_qty
            comm = sum(self.book.commission_fn(leg.spec, rec.total_qty * leg.ratio, 1.0) for leg in rec.legs)
        else:
            q = self.book.order_quote(rec)
            px = (q.mid if q and q.mid is not None else rec.lmt_price) or 0.0
            assert rec.spec is not None
            margin = 0.25 * abs(px) * rec.spec.mult * rec.total_qty
            comm = self.book.commission_fn(rec.spec, rec.total_qty, px)
        eq = self.book.account_values()["EquityWithLoanValue"]
        init = self.book.account_values()["InitMarginReq"]
        return {"initMarginBefore": init, "maintMarginBefore": init, "equityWithLoanBefore": eq,
                "initMarginChange": margin, "maintMarginChange": margin, "equityWithLoanChange": 0.0,
                "initMarginAfter": init + margin, "maintMarginAfter": init + margin, "equityWithLoanAfter": eq,
                "commission": comm, "minCommission": comm, "maxCommission": comm}

    def _policy_for(self, rec: OrderRecord) -> FillPolicy:
        return self.fill_policies_by_ref.get(rec.order_ref) or self.fill_policy

    def _process_new_order(self, rec: OrderRecord) -> None:
        decision = self._decide(rec)
        if decision.action == "reject":
            rec.status = "Cancelled"
            rec.completed_status = f"Rejected: {decision.message}"
            rec.completed_time = self._tws_time()
            self.book.add(rec)
            for conn in self._order_conns(rec):
                self._error(conn, rec.order_id, decision.code, decision.message, decision.advanced_json)
            return
        self.book.add(rec)
        if decision.action == "fill" and self.fills_before_open_order:
            rec.status = "Submitted"
            self._fill(rec, decision.qty, decision.price, announce=False)
            self._notify_open_order(rec)
            self._push_account_updates()
            return
        rec.status = "PreSubmitted"
        self._notify_open_order(rec)
        rec.status = "Submitted"
        self._notify_status(rec)
        if decision.action == "fill":
            self._fill(rec, decision.qty, decision.price)

    def _decide(self, rec: OrderRecord) -> FillDecision:
        policy = self._policy_for(rec)
        try:
            quote = self.book.order_quote(rec)
        except Exception:
            log.exception("FakeTWS: quoting order %s failed", rec.order_id)
            quote = None
        d = policy(rec, quote)
        if d.action == "fill" and (d.price is None or d.qty <= 0):
            return FillDecision("rest")
        return d

    def _modify_order(self, conn: _Conn, rec: OrderRecord, p: dict) -> None:
        rec.lmt_price = p["lmt_price"]
        rec.aux_price = p["aux_price"]
        if p["total_qty"] > 0:
            rec.total_qty = p["total_qty"]
        rec.order_ref = p["order_ref"]
        rec.tif = p["tif"] or rec.tif
        rec.order_type = p["order_type"].upper() or rec.order_type
        if rec.order_type == "LMT" and self.enforce_ticks and rec.lmt_price is not None and not self._price_on_tick(
                rec.spec, rec.legs, rec.lmt_price):
            self._error(conn, rec.order_id, 110, "The price does not conform to the minimum price variation "
                        "for this contract.")
            return
        if not rec.transmit and p["transmit"]:
            rec.transmit = True
        rec.status = "Submitted"
        self._notify_open_order(rec)
        d = self._decide(rec)
        if d.action == "fill":
            self._fill(rec, d.qty, d.price)

    def _fill(self, rec: OrderRecord, qty: float, price: float, announce: bool = True) -> list[ExecutionRecord]:
        execs = self.book.apply_fill(rec, qty, price)
        if not execs:
            return execs
        for conn in self._order_conns(rec):
            for ex in execs:
                self._send(conn, self._exec_fields(-1, ex, conn.version))
                if not ex.combo_level or self.bag_commission_report:
                    self._send(conn, self._commission_fields(ex))
        if announce:
            self._notify_status(rec)
            if rec.status == "Filled":
                for conn in self._order_conns(rec):
                    self._send(conn, self._open_order_fields(rec, conn.version))
            self._push_account_updates()
        return execs

    def _order_conns(self, rec: OrderRecord) -> list[_Conn]:
        out = self._ready_conns(rec.client_id)
        if self.master_client_id is not None and self.master_client_id != rec.client_id:
            out += self._ready_conns(self.master_client_id)
        return out

    def _notify_open_order(self, rec: OrderRecord) -> None:
        for conn in self._order_conns(rec):
            self._send(conn, self._open_order_fields(rec, conn.version))
            self._send(conn, self._order_status_fields(rec))

    def _notify_status(self, rec: OrderRecord) -> None:
        for conn in self._order_conns(rec):
            self._send(conn, self._order_status_fields(rec))

    def _h_cancel_order(self, conn: _Conn, r: FieldReader) -> None:
        r.int()  # version
        oid = r.int()
        rec = self.book.orders.get((conn.client_id, oid))
        if rec is None or not rec.is_working:
            self._error(conn, oid, 10147, f"OrderId {oid} that needs to be cancelled is not found.")
            return
        self._cancel(rec)

    def _cancel(self, rec: OrderRecord, code: int = 202, reason: str = "") -> None:
        rec.status = "Cancelled"
        rec.completed_time = self._tws_time()
        rec.completed_status = "Cancelled by Trader" if code == 202 else reason
        for conn in self._order_conns(rec):
            self._error(conn, rec.order_id, code, f"Order Canceled - reason:{reason}")
            self._send(conn, self._order_status_fields(rec))

    def _h_req_global_cancel(self, conn: _Conn, r: FieldReader) -> None:
        for rec in self.book.working_orders():
            self._cancel(rec)

    # ================================================================ orders: wire layouts
    @staticmethod
    def _order_contract_fields(rec: OrderRecord) -> list:
        if rec.is_bag:
            c = rec.contract
            return [BAG_CONID, c.get("symbol", ""), "BAG", "", "0", "", "", c.get("exchange") or "SMART",
                    c.get("currency") or "USD", "28812380", "COMB"]
        spec = rec.spec
        assert spec is not None
        exch = rec.contract.get("exchange") or spec.exchange
        return [spec.con_id, spec.symbol, spec.sec_type, spec.last_trade,
                fmt_float(spec.strike) if spec.sec_type == "OPT" else "0", spec.right, spec.multiplier, exch,
                spec.currency, spec.local_symbol, spec.trading_class]

    @staticmethod
    def _legs_fields(rec: OrderRecord) -> list:
        out: list = [len(rec.legs)]
        for leg in rec.legs:
            out += [leg.spec.con_id, leg.ratio, leg.action, leg.exchange or "SMART", leg.open_close,
                    leg.short_sale_slot, leg.designated_location, leg.exempt_code]
        out.append(len(rec.order_combo_prices))
        out += [fmt_float(x) for x in rec.order_combo_prices]
        out.append(len(rec.smart_combo_params))
        for tag, value in rec.smart_combo_params:
            out += [tag, value]
        return out

    def _open_order_fields(self, rec: OrderRecord, version: int, what_if_state: dict | None = None) -> list:
        combo_descr = ",".join(f"{leg.spec.con_id}|{leg.ratio if leg.action == 'BUY' else -leg.ratio}"
                               for leg in rec.legs)
        f: list = [OUT.OPEN_ORDER, rec.order_id]
        f += self._order_contract_fields(rec)
        f += [rec.action, fmt_float(rec.total_qty), rec.order_type, fmt_float(rec.lmt_price),
              fmt_float(rec.aux_price), rec.tif, rec.oca_group, rec.account, rec.open_close or "O", rec.origin,
              rec.order_ref, rec.client_id, rec.perm_id, rec.outside_rth, False, "0", rec.good_after_time, "",
              "", "", ""]
        if version < 177:
            f += [""]  # faProfile
        f += ["", rec.good_till_date, "", "", "", 0, "", -1, 0, "", "", "", "", "", 0, False, False, False, "",
              3, False, False, "", rec.parent_id, 0, "", "", "", ""]
        f += [False, "", "", "", "", "", combo_descr]
        f += self._legs_fields(rec)
        f += ["", "", ""]  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement
        f += [""]  # hedgeType
        f += [False, "", "", False, False]  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld, dnc
        f += [""]  # algoStrategy
        st = what_if_state or {}

        def sv(k):
            return fmt_float(st[k]) if k in st else ""

        status = "PreSubmitted" if what_if_state else rec.status
        f += [False, bool(what_if_state), status,
              sv("initMarginBefore"), sv("maintMarginBefore"), sv("equityWithLoanBefore"),
              sv("initMarginChange"), sv("maintMarginChange"), sv("equityWithLoanChange"),
              sv("initMarginAfter"), sv("maintMarginAfter"), sv("equityWithLoanAfter"),
              sv("commission"), sv("minCommission"), sv("maxCommission"), "USD" if st else "", "",
              False, False]
        f += [0]  # conditions
        f += ["", "", "", "", "", "", "", 0, "", "", "", "", False, False, False, False]
        f += ["", "", False]  # duration, postToAts, autoCancelParent
        f += ["", "", "", "", ""]  # minTradeQty, minCompeteSize, competeAgainstBestOffset, midOffsets
        return f

    def _completed_order_fields(self, rec: OrderRecord, version: int) -> list:
        combo_descr = ",".join(f"{leg.spec.con_id}|{leg.ratio if leg.action == 'BUY' else -leg.ratio}"
                               for leg in rec.legs)
        f: list = [OUT.COMPLETED_ORDER]
        f += self._order_contract_fields(rec)
        f += [rec.action, fmt_float(rec.total_qty), rec.order_type, fmt_float(rec.lmt_price),
              fmt_float(rec.aux_price), rec.tif, rec.oca_group, rec.account, rec.open_close or "O", rec.origin,
              rec.order_ref, rec.perm_id, rec.outside_rth, False, "0", rec.good_after_time, "", "", ""]
        if version < 177:
            f += [""]
        f += ["", rec.good_till_date, "", "", "", 0, "", -1, "", "", "", "", "", 0, False, False, "", 3, 0,
              "", "", "", ""]
        f += [False, "", "", "", combo_descr]
        f += self._legs_fields(rec)
        f += ["", "", ""]
        f += [""]  # hedgeType
        f += ["", "", False, False]  # clearingAccount, clearingIntent, notHeld, dnc
        f += [""]  # algoStrategy
        f += [False, rec.status, False, False]
        f += [0]  # conditions
        f += ["", "", "", False, False, "", fmt_float(rec.filled), 0, False, "", False, False, 0,
              rec.completed_time, rec.completed_status]
        f += ["", "", "", "", ""]
        return f

    @staticmethod
    def _order_status_fields(rec: OrderRecord) -> list:
        return [OUT.ORDER_STATUS, rec.order_id, rec.status, fmt_float(rec.filled), fmt_float(rec.remaining),
                fmt_float(rec.avg_fill_price), rec.perm_id, rec.parent_id, fmt_float(rec.last_fill_price),
                rec.client_id, rec.why_held, "0"]

    def _exec_fields(self, req_id: int, ex: ExecutionRecord, version: int) -> list:
        c = ex.contract
        rec = ex.order
        f = [OUT.EXECUTION_DATA, req_id, rec.order_id, c["conId"], c["symbol"], c["secType"],
             c.get("lastTradeDateOrContractMonth", ""),
             fmt_float(c.get("strike") or 0.0) if c["secType"] == "OPT" else "0", c.get("right", ""),
             c.get("multiplier", ""), c.get("exchange", ""), c.get("currency") or "USD", c.get("localSymbol", ""),
             c.get("tradingClass", ""), ex.exec_id, self._tws_time(ex.time), ex.account, ex.exchange, ex.side,
             fmt_float(ex.shares), fmt_float(ex.price), rec.perm_id, rec.client_id, 0, fmt_float(ex.cum_qty),
             fmt_float(ex.avg_price), rec.order_ref, "", "", "", ex.liquidity]
        if version >= 178:
            f.append(False)  # pendingPriceRevision
        return f

    @staticmethod
    def _commission_fields(ex: ExecutionRecord) -> list:
        realized = fmt_float(ex.realized_pnl) if ex.realized_pnl is not None else wire.UNSET_DOUBLE_STR
        comm = 0.0 if ex.combo_level else ex.commission
        return [OUT.COMMISSION_REPORT, 1, ex.exec_id, fmt_float(comm), "USD", realized, wire.UNSET_DOUBLE_STR, ""]

    # ================================================================ order queries
    def _h_req_open_orders(self, conn: _Conn, r: FieldReader) -> None:
        cid = None if conn.client_id == self.master_client_id else conn.client_id
        self._send_open_orders(conn, self.book.working_orders(cid))

    def _h_req_all_open_orders(self, conn: _Conn, r: FieldReader) -> None:
        self._send_open_orders(conn, self.book.working_orders())

    def _send_open_orders(self, conn: _Conn, orders: list[OrderRecord]) -> None:
        for rec in orders:
            self._send(conn, self._open_order_fields(rec, conn.version))
            self._send(conn, self._order_status_fields(rec))
        self._send(conn, [OUT.OPEN_ORDER_END, 1])

    def _h_req_completed_orders(self, conn: _Conn, r: FieldReader) -> None:
        for rec in self.book.completed_orders():
            self._send(conn, self._completed_order_fields(rec, conn.version))
        self._send(conn, [OUT.COMPLETED_ORDERS_END])

    def _h_req_executions(self, conn: _Conn, r: FieldReader) -> None:
        r.int()  # version
        req_id = r.int()
        f_client = r.int()
        f_acct = r.str()
        f_time = r.str()
        f_symbol = r.str()
        f_sec = r.str()
        f_exch = r.str()
        f_side = r.str()
        since = self._parse_filter_time(f_time) if f_time else None
        side = {"BUY": "BOT", "SELL": "SLD", "BOT": "BOT", "SLD": "SLD"}.get(f_side.upper(), "") if f_side else ""
        for ex in self.book.executions:
            rec = ex.order
            if conn.client_id != self.master_client_id and rec.client_id != conn.client_id:
                continue
            if f_client and rec.client_id != f_client:
                continue
            if f_acct and ex.account != f_acct:
                continue
            if since is not None and ex.time < since:
                continue
            if f_symbol and ex.contract.get("symbol", "").upper() != f_symbol.upper():
                continue
            if f_sec and ex.sec_type.upper() != f_sec.upper():
                continue
            if f_exch and ex.exchange.upper() != f_exch.upper():
                continue
            if side and ex.side != side:
                continue
            self._send(conn, self._exec_fields(req_id, ex, conn.version))
            if not ex.combo_level or self.bag_commission_report:
                self._send(conn, self._commission_fields(ex))
        self._send(conn, [OUT.EXECUTION_DATA_END, 1, req_id])

    def _parse_filter_time(self, s: str) -> dt.datetime | None:
        """ExecutionFilter.time: 'yyyymmdd-hh:mm:ss' is UTC, 'yyyymmdd hh:mm:ss' is TWS
        local time, 'yyyymmdd hh:mm:ss Zone/Name' is in that zone."""
        s = s.strip()
        tz: dt.tzinfo = self.tz
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

    # ================================================================ positions & account
    def _position_fields(self, pos) -> list:
        s = pos.spec
        return [OUT.POSITION_DATA, 3, self.account, s.con_id, s.symbol, s.sec_type, s.last_trade,
                fmt_float(s.strike) if s.sec_type == "OPT" else "0", s.right, s.multiplier, "", s.currency,
                s.local_symbol, s.trading_class, fmt_float(pos.qty), fmt_float(pos.avg_cost)]

    def _h_req_positions(self, conn: _Conn, r: FieldReader) -> None:
        conn.positions_sub = True
        for pos in self.book.positions.values():
            if pos.qty != 0:
                self._send(conn, self._position_fields(pos))
        self._send(conn, [OUT.POSITION_END, 1])

    def _h_cancel_positions(self, conn: _Conn, r: FieldReader) -> None:
        conn.positions_sub = False

    def _h_req_positions_multi(self, conn: _Conn, r: FieldReader) -> None:
        r.int()
        req_id = r.int()
        r.str()
        model = r.str()
        for pos in self.book.positions.values():
            if pos.qty != 0:
                f = self._position_fields(pos)
                self._send(conn, [OUT.POSITION_MULTI, 1, req_id, self.account] + f[3:] + [model])
        self._send(conn, [OUT.POSITION_MULTI_END, 1, req_id])

    def _account_rows(self) -> list[tuple[str, str, str]]:
        rows = [("AccountCode", self.account, ""), ("AccountReady", "true", ""), ("AccountType", "INDIVIDUAL", ""),
                ("Currency", "USD", "USD")]
        rows += [(k, fmt_float(round(v, 2)) if k not in ("Cushion", "Leverage") else fmt_float(round(v, 6)), "USD")
                 for k, v in self.book.account_values().items()]
        return rows

    def _portfolio_fields(self, item: dict) -> list:
        pos = item["pos"]
        s = pos.spec
        return [OUT.PORTFOLIO_VALUE, 8, s.con_id, s.symbol, s.sec_type, s.last_trade,
                fmt_float(s.strike) if s.sec_type == "OPT" else "0", s.right, s.multiplier, s.primary_exchange,
                s.currency, s.local_symbol, s.trading_class, fmt_float(pos.qty), fmt_float(round(item["mark"], 6)),
                fmt_float(round(item["value"], 2)), fmt_float(round(pos.avg_cost, 6)),
                fmt_float(round(item["unrealized"], 2)), fmt_float(round(pos.realized, 2)), self.account]

    def _send_account_snapshot(self, conn: _Conn) -> None:
        for key, val, cur in self._account_rows():
            self._send(conn, [OUT.ACCT_VALUE, 2, key, val, cur, self.account])
        for item in self.book.portfolio():
            if item["pos"].qty != 0:
                self._send(conn, self._portfolio_fields(item))
        self._send(conn, [OUT.ACCT_UPDATE_TIME, 1, self.now().astimezone(self.tz).strftime("%H:%M")])

    def _h_req_account_updates(self, conn: _Conn, r: FieldReader) -> None:
        r.int()
        subscribe = r.bool()
        r.str()  # account code
        conn.account_sub = subscribe
        if subscribe:
            self._send_account_snapshot(conn)
            self._send(conn, [OUT.ACCT_DOWNLOAD_END, 1, self.account])

    def _h_req_account_updates_multi(self, conn: _Conn, r: FieldReader) -> None:
        r.int()
        req_id = r.int()
        r.str()  # account
        model = r.str()
        conn.multi_subs.add(req_id)
        self._send_multi(conn, req_id, model)
        self._send(conn, [OUT.ACCOUNT_UPDATE_MULTI_END, 1, req_id])

    def _send_multi(self, conn: _Conn, req_id: int, model: str = "") -> None:
        for key, val, cur in self._account_rows():
            self._send(conn, [OUT.ACCOUNT_UPDATE_MULTI, 1, req_id, self.account, model, key, val, cur])

    def _h_cancel_account_updates_multi(self, conn: _Conn, r: FieldReader) -> None:
        r.int()
        conn.multi_subs.discard(r.int())

    def _h_req_account_summary(self, conn: _Conn, r: FieldReader) -> None:
        r.int()
        req_id = r.int()
        r.str()  # group
        tags = [t.strip() for t in r.str().split(",") if t.strip()]
        rows = {k: (v, c) for k, v, c in self._account_rows()}
        for tag in tags:
            if tag in rows:
                val, cur = rows[tag]
                self._send(conn, [OUT.ACCOUNT_SUMMARY, 1, req_id, self.account, tag, val, cur])
        self._send(conn, [OUT.ACCOUNT_SUMMARY_END, 1, req_id])

    def _push_account_updates(self) -> None:
        """After a fill: positions to reqPositions subscribers, portfolio/account values to
        reqAccountUpdates subscribers, account values to reqAccountUpdatesMulti subscribers."""
        conns = self._ready_conns()
        if not conns:
            return
        for conn in conns:
            if conn.positions_sub:
                for pos in self.book.positions.values():
                    self._send(conn, self._position_fields(pos))
            if conn.account_sub:
                self._send_account_snapshot(conn)
            for req_id in conn.multi_subs:
                self._send_multi(conn, req_id)

    # ================================================================ public test API
    @_threadsafe
    def find_order(self, order_id: int | None = None, client_id: int | None = None,
                   order_ref: str | None = None) -> OrderRecord:
        return self.book.find(order_id=order_id, client_id=client_id, order_ref=order_ref)

    @_threadsafe
    def fill(self, order_id: int | None = None, qty: float | None = None, price: float | None = None,
             client_id: int | None = None, order_ref: str | None = None) -> list[ExecutionRecord]:
        """Fill a working order now (qty defaults to the remainder, price to the limit or
        the natural quote).  Works with or without the owning client connected."""
        rec = self.book.find(order_id=order_id, client_id=client_id, order_ref=order_ref)
        if not rec.is_working:
            raise ValueError(f"order {rec.order_id} is {rec.status}")
        if price is None:
            q = self.book.order_quote(rec)
            price = FillAll()(rec, q).price
        if price is None:
            raise ValueError("no price: pass price=")
        return self._fill(rec, rec.remaining if qty is None else qty, price)

    @_threadsafe
    def fill_rest(self, order_id: int | None = None, price: float | None = None, client_id: int | None = None,
                  order_ref: str | None = None) -> list[ExecutionRecord]:
        """Fill whatever remains of a (partially filled) working order."""
        return self.fill(order_id, None, price, client_id, order_ref)

    @_threadsafe
    def cancel_order(self, order_id: int | None = None, client_id: int | None = None, order_ref: str | None = None,
                     code: int = 202, reason: str = "") -> None:
        """Server-side cancel (e.g. DAY expiry, risk): error ``code`` + orderStatus Cancelled."""
        rec = self.book.find(order_id=order_id, client_id=client_id, order_ref=order_ref)
        self._cancel(rec, code, reason)

    @_threadsafe
    def positions(self) -> dict[int, float]:
        """Non-zero positions as {conId: qty}."""
        return {cid: p.qty for cid, p in self.book.positions.items() if p.qty != 0}

    @_threadsafe
    def match_resting(self) -> int:
        """Re-run the fill policy on every working order (after moving quotes).  Returns the
        number of orders that (partly) filled."""
        n = 0
        for rec in list(self.book.working_orders()):
            if not rec.transmit:
                continue
            d = self._decide(rec)
            if d.action == "fill":
                self._fill(rec, d.qty, d.price)
                n += 1
        return n

    @_threadsafe
    def set_fill_policy(self, policy: FillPolicy, order_ref: str | None = None) -> None:
        """Default policy for new orders, or the policy for one orderRef."""
        if order_ref is None:
            self.fill_policy = policy
        else:
            self.fill_policies_by_ref[order_ref] = policy

    # ---------------------------------------------------------------- fault injection
    @_threadsafe
    def drop_connections(self, client_id: int | None = None) -> int:
        """Abort client sockets (all, or one clientId) without any goodbye.  Returns count."""
        conns = [c for c in self._conns.values() if client_id is None or c.client_id == client_id]
        for conn in conns:
            conn.abort()
        return len(conns)

    @_threadsafe
    def send_error(self, code: int, msg: str = "", req_id: int = -1, client_id: int | None = None,
                   advanced: str = "") -> None:
        """Send an error/notice (1100, 1101, 1102, 2110, 10197 ...) to connected clients."""
        defaults = {
            1100: "Connectivity between IB and Trader Workstation has been lost.",
            1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
            1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
            2110: "Connectivity between Trader Workstation and server is broken. It will be restored automatically.",
            10197: "No market data during competing live session",
        }
        for conn in self._ready_conns(client_id):
            self._error(conn, req_id, code, msg or defaults.get(code, f"FakeTWS error {code}"), advanced)

    @_threadsafe
    def reject_client_id(self, flag: bool = True, client_ids: Iterable[int] | None = None) -> None:
        """While on, new connections (for ``client_ids``, or any) get error 326 and are
        closed, as if TWS still held a session with that clientId."""
        self._reject_client_ids = (set(client_ids) if client_ids else set()) if flag else None

    @_threadsafe
    def delay_replies(self, msg_type: int | str | None, seconds: float) -> None:
        """Delay outgoing messages of one type (id or name), or all (None / "all" / "*")
        by ``seconds``; 0 removes the delay."""
        key: int | str = "*" if msg_type in (None, "all", "*") else wire.out_msg_id(msg_type)  # type: ignore[arg-type]
        if seconds and seconds > 0:
            self._delays[key] = float(seconds)
        else:
            self._delays.pop(key, None)

    @_threadsafe
    def drop_replies(self, msg_types: Iterable[int | str] | int | str | None) -> None:
        """Never send these message types (e.g. {"openOrderEnd"} or {53}); None/empty clears."""
        if msg_types is None:
            self._drops = set()
            return
        if isinstance(msg_types, (int, str)):
            msg_types = [msg_types]
        self._drops = {wire.out_msg_id(m) for m in msg_types}

    @_threadsafe
    def daily_reset(self, seconds: float = 5.0, cancel_day_orders: bool = False) -> None:
        """Simulate the nightly restart: close every socket and the listener, refuse
        connections for ``seconds`` (connection refused), then listen again on the same port.
        The book survives; ``cancel_day_orders`` also expires working DAY orders."""
        assert self._loop is not None
        self.resetting_until = time.monotonic() + seconds
        if cancel_day_orders:
            for rec in self.book.working_orders():
                if rec.tif.upper() == "DAY":
                    self._cancel(rec, 202, "Order expired")
        for conn in list(self._conns.values()):
            conn.abort()
        if self._server is not None:
            self._server.close()
            self._server = None
        port = self.port

        def reopen():
            self._reopen_handle = None
            if self._closing:
                return

            async def go():
                try:
                    await self._listen(port)
                except OSError:
                    log.exception("FakeTWS: could not re-listen on %s after reset", port)

            self._loop.create_task(go())  # type: ignore[union-attr]

        self._reopen_handle = self._loop.call_later(seconds, reopen)

    @property
    def is_listening(self) -> bool:
        return self._server is not None and time.monotonic() >= self.resetting_until


# ==================================================================== CLI
def _build_policy(name: str) -> FillPolicy:
    return {"marketable": MarketableFill(), "all": FillAll(), "never": NeverFill(), "reject": Reject()}[name]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m adapters.faketws.server",
                                 description="Loopback TWS-protocol server (FakeTWS) for rehearsals.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7497)
    ap.add_argument("--account", default="DU1234567")
    ap.add_argument("--server-version", type=int, default=178, choices=SUPPORTED_VERSIONS)
    ap.add_argument("--spx", type=float, default=5000.0)
    ap.add_argument("--vix", type=float, default=15.0)
    ap.add_argument("--vol", type=float, default=0.15)
    ap.add_argument("--cash", type=float, default=1_000_000.0)
    ap.add_argument("--fill", choices=("marketable", "all", "never", "reject"), default="marketable")
    ap.add_argument("--tick-interval", type=float, default=1.0)
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def run():
        srv = FakeTWS(host=args.host, port=args.port, account=args.account, server_version=args.server_version,
                      spx=args.spx, vix=args.vix, vol=args.vol, cash=args.cash,
                      fill_policy=_build_policy(args.fill), tick_interval=args.tick_interval)
        await srv.start()
        print(f"FakeTWS listening on {srv.host}:{srv.port} account={srv.account} "
              f"serverVersion={srv.server_version}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await srv.aclose()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
