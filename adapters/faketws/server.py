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

This module only puts the parts together and offers the public API; each concern lives in its own
module (decoder, handshake, contract_details, market_data, order_entry, order_reports, account_reports,
faults, transport).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Self

from . import seeding
from .account_reports import AccountReports
from .book import Book, default_commission
from .clock import ServerClock
from .contract_details import ContractDetails
from .contracts import ContractUniverse
from .decoder import Decoder, handler_table
from .faults import Faults
from .fills import FillAll, FillPolicy, MarketableFill, NeverFill, Reject
from .handshake import Handshake
from .market_data import MarketData
from .order_entry import OrderEntry
from .order_reports import OrderReports
from .orders import ExecutionRecord, OrderRecord
from .outbox import Outbox
from .quotes import DefaultQuoteProvider, Quote, SpecQuotes
from .seeding import OrderSeed, PositionSeed
from .sessions import Sessions
from .settings import SUPPORTED_VERSIONS, Settings
from .transcript import Msg, Transcript
from .transport import Transport, on_server_loop, run_loop_in_thread

__all__ = ["FakeTWS", "Msg", "main"]

log = logging.getLogger("alvh.faketws")


def _setting(name: str) -> property:
    """A FakeTWS attribute that lives in its shared Settings."""
    return property(lambda self: getattr(self.settings, name), lambda self, v: setattr(self.settings, name, v))


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
        etps: ``{symbol: (primaryExchange, longName, price)}`` (default VIXY, VIXM, VXX).
        positions: the account's positions at start (see ``seed_positions``).
        open_orders: working orders at start (see ``seed_orders``).
        transcript_limit: the transcript keeps the last this many messages (None: all of them).
    """

    account = _setting("account")
    server_version = _setting("server_version")
    no_quote_error = _setting("no_quote_error")
    market_data_entitled = _setting("market_data_entitled")
    tick_interval = _setting("tick_interval")
    max_msg_rate = _setting("max_msg_rate")
    pacing_window = _setting("pacing_window")
    enforce_unique_client_id = _setting("enforce_unique_client_id")
    master_client_id = _setting("master_client_id")
    farm_notices = _setting("farm_notices")
    enforce_ticks = _setting("enforce_ticks")
    bag_commission_report = _setting("bag_commission_report")
    fills_before_open_order = _setting("fills_before_open_order")
    chain_exchanges = _setting("chain_exchanges")

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
        positions: Iterable[PositionSeed] | Mapping[Any, float] | None = None,
        open_orders: Iterable[OrderSeed] | None = None,
        transcript_limit: int | None = 50_000,
    ):
        self.settings = Settings(
            account=account, server_version=server_version, no_quote_error=no_quote_error,
            market_data_entitled=market_data_entitled, tick_interval=tick_interval, max_msg_rate=max_msg_rate,
            enforce_unique_client_id=enforce_unique_client_id, master_client_id=master_client_id,
            farm_notices=farm_notices, enforce_ticks=enforce_ticks, bag_commission_report=bag_commission_report,
            fills_before_open_order=fills_before_open_order, chain_exchanges=tuple(chain_exchanges),
        )
        self.clock = ServerClock(now, timezone)
        self.universe = ContractUniverse(self.clock.now, etps=etps, spx_level=spx)
        self.quotes = SpecQuotes(quote_provider or DefaultQuoteProvider(spx=spx, vix=vix, vol=vol, clock=self.clock.now))
        self.book = Book(self.universe, self.quotes, account=account, cash=cash, commission_fn=commission_fn,
                         clock=self.clock.now, tz=self.clock.tz)
        self.transcript = Transcript(transcript_limit)
        self.sessions = Sessions()
        self.outbox = Outbox(self.transcript, lambda: self.transport.loop)
        s, clock, book, sessions, outbox = self.settings, self.clock, self.book, self.sessions, self.outbox
        self.handshake = Handshake(s, clock, sessions, outbox, book)
        self.contract_details = ContractDetails(s, clock, self.universe, outbox,
                                                lambda: getattr(self.quote_provider, "spx", None))
        self.market = MarketData(s, self.universe, sessions, outbox, self.quotes)
        self.account_reports = AccountReports(s, clock, book, sessions, outbox)
        self.order_reports = OrderReports(s, clock, book, outbox)
        self.orders = OrderEntry(s, clock, self.universe, book, sessions, outbox, self.order_reports.send_execution,
                                 self.account_reports.push_updates, fill_policy)
        self.decoder = Decoder(handler_table(self.handshake, self.contract_details, self.market, self.orders,
                                             self.order_reports, self.account_reports), s, outbox)
        self.transport = Transport(host, port, s, clock, sessions, outbox, self.decoder.dispatch)
        self.faults = Faults(sessions, outbox, self.handshake, self.transport, self.orders, book)
        self._thread: threading.Thread | None = None
        if positions:
            self.seed_positions(positions)
        if open_orders:
            self.seed_orders(open_orders)

    # ================================================================ parts read as attributes
    @property
    def host(self) -> str:
        return self.transport.host

    @property
    def port(self) -> int:
        return self.transport.port

    @property
    def quote_provider(self) -> Callable[[dict], Quote | None]:
        return self.quotes.provider

    @quote_provider.setter
    def quote_provider(self, provider: Callable[[dict], Quote | None]) -> None:
        self.quotes.provider = provider

    @property
    def fill_policy(self) -> FillPolicy:
        return self.orders.fill_policy

    @fill_policy.setter
    def fill_policy(self, policy: FillPolicy) -> None:
        self.orders.fill_policy = policy

    @property
    def pacing_violations(self) -> int:
        return self.decoder.pacing_violations

    @property
    def is_listening(self) -> bool:
        return self.transport.is_listening

    # ================================================================ clock
    def now(self) -> dt.datetime:
        return self.clock.now()

    @on_server_loop
    def set_time(self, when: dt.datetime) -> None:
        """Pin the server clock (affects option time value, expiries, execution times)."""
        self.clock.set(when)

    @on_server_loop
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    # ================================================================ lifecycle
    async def start(self) -> FakeTWS:
        await self.transport.start()
        self.market.start_ticking(self.transport.loop)  # type: ignore[arg-type]
        log.info("FakeTWS listening on %s:%s (server version %s, account %s)",
                 self.host, self.port, self.server_version, self.account)
        return self

    async def aclose(self) -> None:
        self.transport.stop_accepting()
        await self.market.stop_ticking()
        await self.transport.aclose()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    @classmethod
    def start_in_thread(cls, **kwargs) -> FakeTWS:
        """Create a server running on its own event loop in a daemon thread."""
        srv = cls(**kwargs)
        srv._thread = run_loop_in_thread(srv.start, name=f"FakeTWS-{id(srv):x}")
        return srv

    def stop(self) -> None:
        """Stop a server started with start_in_thread (from any other thread).  Called on
        the server's own loop it schedules ``aclose()``."""
        loop = self.transport.loop
        if loop is None:
            return
        if threading.get_ident() == self.transport.thread_id:
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

    # ================================================================ observation
    def client_ids(self) -> list[int]:
        """clientIds of the connected API sessions."""
        return self.sessions.client_ids()

    def received(self, msg_type: int | str | None = None, client_id: int | None = None) -> list[Msg]:
        """Transcript entries the client sent (optionally of one type / client)."""
        return self.transcript.received(msg_type, client_id)

    def sent(self, msg_type: int | str | None = None, client_id: int | None = None) -> list[Msg]:
        """Transcript entries the server sent (optionally of one type / client)."""
        return self.transcript.sent(msg_type, client_id)

    def retained_sizes(self) -> dict[str, int]:
        """How much the server holds, by structure: for soak checks that memory stays flat."""
        return {"orders": len(self.book.orders), "executions": len(self.book.executions),
                "positions": len(self.book.positions), "contracts": len(self.universe),
                "transcript": len(self.transcript), "sessions": len(self.sessions),
                "connection_tasks": self.transport.open_tasks}

    # ================================================================ market
    @on_server_loop
    def publish_quotes(self) -> None:
        """Re-query the provider for every streaming subscription and send what changed."""
        self.market.publish()

    @on_server_loop
    def set_levels(self, spx: float | None = None, vix: float | None = None, vol: float | None = None, **etps) -> None:
        """Move the default provider's levels and push the new quotes to subscribers."""
        self.market.set_levels(spx=spx, vix=vix, vol=vol, **etps)

    @on_server_loop
    def set_quote(self, con_id: int, quote: Quote | None) -> None:
        """Override one contract's quote in the default provider (None -> 'no quote')."""
        self.market.set_quote(con_id, quote)

    # ================================================================ orders
    @on_server_loop
    def find_order(self, order_id: int | None = None, client_id: int | None = None,
                   order_ref: str | None = None) -> OrderRecord:
        return self.book.find(order_id=order_id, client_id=client_id, order_ref=order_ref)

    @on_server_loop
    def fill(self, order_id: int | None = None, qty: float | None = None, price: float | None = None,
             client_id: int | None = None, order_ref: str | None = None) -> list[ExecutionRecord]:
        """Fill a working order now (qty defaults to the remainder, price to the limit or
        the natural quote).  Works with or without the owning client connected."""
        rec = self.book.find(order_id=order_id, client_id=client_id, order_ref=order_ref)
        return self.orders.fill_now(rec, qty, price)

    @on_server_loop
    def fill_rest(self, order_id: int | None = None, price: float | None = None, client_id: int | None = None,
                  order_ref: str | None = None) -> list[ExecutionRecord]:
        """Fill whatever remains of a (partially filled) working order."""
        return self.fill(order_id, None, price, client_id, order_ref)

    @on_server_loop
    def cancel_order(self, order_id: int | None = None, client_id: int | None = None, order_ref: str | None = None,
                     code: int = 202, reason: str = "") -> None:
        """Server-side cancel (e.g. DAY expiry, risk): error ``code`` + orderStatus Cancelled."""
        self.orders.cancel(self.book.find(order_id=order_id, client_id=client_id, order_ref=order_ref), code, reason)

    @on_server_loop
    def positions(self) -> dict[int, float]:
        """Non-zero positions as {conId: qty}."""
        return {cid: p.qty for cid, p in self.book.positions.items() if p.qty != 0}

    @on_server_loop
    def match_resting(self) -> int:
        """Re-run the fill policy on every working order (after moving quotes).  Returns the
        number of orders that (partly) filled."""
        return self.orders.match_resting()

    @on_server_loop
    def set_fill_policy(self, policy: FillPolicy, order_ref: str | None = None) -> None:
        """Default policy for new orders, or the policy for one orderRef."""
        self.orders.set_fill_policy(policy, order_ref)

    @on_server_loop
    def seed_positions(self, positions: Iterable[PositionSeed] | Mapping[Any, float]) -> None:
        """Set positions, as a real account holds them when a client (re)connects. Each item is a
        ``PositionRecord`` (e.g. from another instance's ``book.positions.values()``), ``(contract,
        qty)`` or ``(contract, qty, avg_cost)``; a mapping is ``{contract: qty}``. A contract is a
        ``ContractSpec``, a dict of contract fields (ib_async names, must match one contract) or a
        known conId. ``avg_cost`` defaults to the current mid x multiplier. Clients already
        connected are not told (seed before they connect)."""
        seeding.seed_positions(self.book, positions)

    @on_server_loop
    def seed_orders(self, orders: Iterable[OrderSeed]) -> list[OrderRecord]:
        """Book working orders left by an earlier run, without running the fill policy: an
        ``OrderRecord`` from another instance (keeps its clientId, orderId and permId), or a dict
        ``{contract= | legs=[(contract, ratio, action)], action, quantity, limit=None, client_id=0,
        order_id=None, order_ref="", tif="DAY", perm_id=None}``. reqOpenOrders / reqAllOpenOrders
        report them and nextValidId steps past their ids."""
        return seeding.seed_orders(self.book, orders)

    # ================================================================ fault injection
    @on_server_loop
    def drop_connections(self, client_id: int | None = None) -> int:
        """Abort client sockets (all, or one clientId) without any goodbye.  Returns count."""
        return self.faults.drop_connections(client_id)

    @on_server_loop
    def send_error(self, code: int, msg: str = "", req_id: int = -1, client_id: int | None = None,
                   advanced: str = "") -> None:
        """Send an error/notice (1100, 1101, 1102, 2110, 10197 ...) to connected clients."""
        self.faults.send_error(code, msg, req_id, client_id, advanced)

    @on_server_loop
    def reject_client_id(self, flag: bool = True, client_ids: Iterable[int] | None = None) -> None:
        """While on, new connections (for ``client_ids``, or any) get error 326 and are
        closed, as if TWS still held a session with that clientId."""
        self.faults.reject_client_id(flag, client_ids)

    @on_server_loop
    def delay_replies(self, msg_type: int | str | None, seconds: float) -> None:
        """Delay outgoing messages of one type (id or name), or all (None / "all" / "*")
        by ``seconds``; 0 removes the delay."""
        self.faults.delay_replies(msg_type, seconds)

    @on_server_loop
    def drop_replies(self, msg_types: Iterable[int | str] | int | str | None) -> None:
        """Never send these message types (e.g. {"openOrderEnd"} or {53}); None/empty clears."""
        self.faults.drop_replies(msg_types)

    @on_server_loop
    def daily_reset(self, seconds: float = 5.0, cancel_day_orders: bool = False) -> None:
        """Simulate the nightly restart: close every socket and the listener, refuse
        connections for ``seconds`` (connection refused), then listen again on the same port.
        The book survives; ``cancel_day_orders`` also expires working DAY orders."""
        self.faults.daily_reset(seconds, cancel_day_orders)


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
