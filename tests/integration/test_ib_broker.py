"""IBBroker, contracts and market data against the loopback FakeTWS with the REAL ib_async client.

Acceptance 1: a 4-leg SPX condor BAG and hedge orders are placed, filled, partially filled, rejected
and cancelled; the engine ledger ends equal to the server's positions. Everything is on 127.0.0.1,
every wait is bounded.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import math
import time
from dataclasses import dataclass, field

import pytest

pytest.importorskip("ib_async")

from loopback_client import until as wait_until

from adapters.faketws import FakeTWS, FillPartial, NeverFill, Quote, Reject
from adapters.ib.broker import IBBroker
from adapters.ib.connection import Connection, Pacer, backoff_delays
from adapters.ib.contracts import ContractResolver, instrument_from_contract
from adapters.ib.errors import ErrorKind, classify
from adapters.ib.marketdata import LegQuote, MarketData, MarketDataParams
from adapters.ib.orders import price_path, round_net
from adapters.live.pump import Pump
from adapters.live.state import StateStore
from config.daemon import IBSettings, OrderParams
from engine.bus import EventBus
from engine.clock import ET
from engine.events import Event, FillEvent, MarketSnapshot, OrderState, OrderStatusEvent, Phase
from engine.instruments import Equity, spx_option, vix_option, vx_future
from engine.kernel import Kernel
from engine.ledger import Ledger
from engine.limits import RiskLimits
from engine.orders import OrderLeg, OrderRequest

NOW = dt.datetime(2024, 1, 10, 15, 0, tzinfo=dt.UTC)  # Wed 10:00 ET
TODAY = dt.date(2024, 1, 10)
WEEKLY = dt.date(2024, 1, 17)
VX_FEB = dt.date(2024, 2, 14)


class FixedClock:
    def now(self) -> dt.datetime:
        return NOW.astimezone(ET)


def run(coro, timeout: float = 30.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(pred, timeout: float = 5.0, what: str = "condition"):
    await wait_until(pred, timeout, what)


@dataclass
class H:
    srv: FakeTWS
    store: StateStore
    conn: Connection
    resolver: ContractResolver
    md: MarketData
    broker: IBBroker
    kernel: Kernel
    ledger: Ledger
    events: list = field(default_factory=list)

    async def submit(self, order: OrderRequest) -> None:
        """Straight to the broker (the kernel's checks are not what these tests are about)."""
        with self.store.transaction():
            self.broker.submit(order)
        await self.broker.flush()

    async def decide(self, order: OrderRequest) -> None:
        """Through the kernel, as a strategy's order goes: limits, kill switch, buying power, then the broker."""
        with self.store.transaction():
            self.kernel.submit(order)
            self.kernel.bus.run()
        await self.broker.flush()

    def statuses(self, intent: str) -> list[OrderStatusEvent]:
        return [e for e in self.events if isinstance(e, OrderStatusEvent) and e.intent_id == intent]

    def fills(self, intent: str) -> list[FillEvent]:
        return [e for e in self.events if isinstance(e, FillEvent) and e.intent_id == intent]

    def final(self, intent: str) -> OrderStatusEvent | None:
        done = [e for e in self.statuses(intent) if e.state.done]
        return done[-1] if done else None

    async def wait_final(self, intent: str, timeout: float = 5.0) -> OrderStatusEvent:
        await until(lambda: self.final(intent) is not None, timeout, f"final status of {intent}")
        return self.final(intent)

    def server_positions(self) -> dict[str, int]:
        out = {}
        for con_id, qty in self.srv.positions().items():
            spec = self.srv.universe.get(con_id)
            from ib_async import Contract

            c = Contract(conId=con_id, symbol=spec.symbol, secType=spec.sec_type, lastTradeDateOrContractMonth=spec.last_trade,
                         strike=spec.strike, right=spec.right, multiplier=spec.multiplier, tradingClass=spec.trading_class)
            out[self.resolver.instrument_for(c).key] = int(qty)
        return out


@contextlib.asynccontextmanager
async def harness(tmp_path, *, orders: OrderParams | None = None, risk: RiskLimits | None = None, **srv_kwargs):
    srv_kwargs.setdefault("now", NOW)
    srv = FakeTWS(**srv_kwargs)
    await srv.start()
    store = StateStore(tmp_path / "state.sqlite")
    conn = Connection(IBSettings(port=srv.port, client_id=7, connect_timeout=3, request_timeout=3, reconnect_attempts=2))
    broker = None
    try:
        await conn.start()
        clock = FixedClock()
        resolver = ContractResolver(conn.ib, conn.pacer, 3, store, today=lambda: TODAY)
        md = MarketData(conn.ib, resolver, conn.pacer, MarketDataParams(mode="snapshot", indices=[], vx_months=4))
        await md.subscribe()
        broker = IBBroker(conn, resolver, md, store, clock=clock,
                          orders=orders or OrderParams(step_seconds=0.1, timeout_seconds=1.0, commission_wait_seconds=0.05))
        bus = EventBus()
        ledger = Ledger(1_000_000)
        kernel = Kernel(bus=bus, clock=clock, broker=broker, ledger=ledger, strategies=[],
                        limits=risk.with_live_defaults() if risk else None)
        broker.gate = lambda: f"trading halted: {kernel.halted}" if kernel.halted else None
        broker.emit = Pump(bus, store)
        h = H(srv, store, conn, resolver, md, broker, kernel, ledger)
        bus.subscribe(Event, h.events.append)
        quotes, rep = await md.snapshot(Phase.OPEN, TODAY)
        assert quotes is not None, rep
        broker.emit([MarketSnapshot(clock.now(), TODAY, Phase.OPEN, quotes)])
        await broker.reconcile(today=TODAY)
        yield h
    finally:
        if broker is not None:
            await broker.close()
        await conn.close()
        store.close()
        await srv.aclose()


def condor(intent: str, qty: int = 2, limit: float | None = -5.0, expiry: dt.date = WEEKLY) -> OrderRequest:
    legs = tuple(OrderLeg(spx_option(expiry, k, r, "SPXW"), s)
                 for k, r, s in ((4850, "P", 1), (4900, "P", -1), (5100, "C", -1), (5150, "C", 1)))
    return OrderRequest(intent, "condor", legs, qty, limit, "open")


def single(intent: str, inst, ratio: int, qty: int, limit: float | None = None, book: str = "hedge") -> OrderRequest:
    return OrderRequest(intent, book, (OrderLeg(inst, ratio),), qty, limit, "hedge-on")


# ---- pure pieces ------------------------------------------------------------------------------
def test_price_path_walks_from_mid_toward_natural_within_the_strategy_limit():
    o = condor("c1", limit=-1.50)
    q = {o.legs[0].key: LegQuote(1.0, 1.2, 1.1, True), o.legs[1].key: LegQuote(2.0, 2.2, 2.1, True),
         o.legs[2].key: LegQuote(2.0, 2.2, 2.1, True), o.legs[3].key: LegQuote(1.0, 1.2, 1.1, True)}
    path, source = price_path(o, q, OrderParams(improve_steps=4))
    assert source == "quotes"
    # mid credit 2.00, natural credit 1.60, bound = min(natural, strategy limit -1.50) = -1.60
    assert path[0] == pytest.approx(-2.00)
    assert path[-1] == pytest.approx(-1.60)
    assert all(b >= a for a, b in itertools.pairwise(path))          # each step concedes a little
    assert all(abs(p / 0.05 - round(p / 0.05)) < 1e-9 for p in path)  # combo tick
    # a stricter strategy limit caps the walk
    path, _ = price_path(o.__class__(o.intent_id, o.book, o.legs, o.quantity, -1.90, o.purpose), q, OrderParams())
    assert max(path) <= -1.90 + 1e-9
    # no usable quotes: the strategy's limit, rounded in our favour
    path, source = price_path(o, {o.legs[0].key: LegQuote(math.nan, math.nan, math.nan, False, "no ask")}, OrderParams())
    assert source == "strategy_limit" and path == [-1.5]


def test_single_leg_rounding_is_in_our_favour():
    buy = single("b", vix_option(VX_FEB, 20, "C"), 1, 1)
    sell = single("s", vix_option(VX_FEB, 20, "C"), -1, 1)
    assert round_net(buy, 2.07) == pytest.approx(2.05)      # buy: pay less
    assert round_net(sell, -2.07) == pytest.approx(-2.10)   # sell: receive more
    assert round_net(buy, 3.47) == pytest.approx(3.40)      # 0.10 tick above 3.00
    fut = single("f", vx_future(VX_FEB), 1, 1)
    assert round_net(fut, 16.07) == pytest.approx(16.05)


def test_error_codes_are_data():
    assert classify(1100) is ErrorKind.CONNECTIVITY_LOST
    assert classify(1101) is ErrorKind.RESTORED_DATA_LOST
    assert classify(1102) is ErrorKind.RESTORED_DATA_KEPT
    assert classify(326) is ErrorKind.CLIENT_ID_IN_USE
    assert classify(201) is ErrorKind.ORDER_REJECTED
    assert classify(202) is ErrorKind.ORDER_CANCELLED
    assert classify(2104) is ErrorKind.INFO and classify(2158) is ErrorKind.INFO
    assert classify(354) is ErrorKind.MARKET_DATA and classify(10197) is ErrorKind.COMPETING_SESSION
    assert classify(123456) is ErrorKind.OTHER


def test_pacer_stays_under_the_rate_and_backoff_is_capped():
    async def go():
        p = Pacer(rate=200.0, burst=5)
        t0 = time.monotonic()
        for _ in range(105):
            await p.acquire()
        return time.monotonic() - t0

    elapsed = run(go())
    assert elapsed >= (105 - 5) / 200.0 * 0.9
    d = backoff_delays(1.0, 2.0, 30.0, jitter=0.0)
    assert [next(d) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]


# ---- contracts and market data ----------------------------------------------------------------
def test_contracts_resolve_with_trading_class_and_are_cached(tmp_path):
    async def go():
        async with harness(tmp_path) as h:
            monthly = dt.date(2024, 1, 19)
            am = spx_option(monthly, 4800, "P", "SPX")
            pm = spx_option(monthly, 4800, "P", "SPXW")
            vx = vx_future(VX_FEB)
            got = await h.resolver.resolve([am, pm, vx, Equity("VIXY"), vix_option(VX_FEB, 20, "C")])
            assert got[am.key].tradingClass == "SPX" and got[pm.key].tradingClass == "SPXW"
            assert got[am.key].conId != got[pm.key].conId
            assert got[vx.key].exchange == "CFE" and got[vx.key].multiplier == "1000"
            for inst in (am, pm, vx):
                assert instrument_from_contract(got[inst.key]) == inst
            n = h.resolver.requests
            await h.resolver.resolve([am, pm, vx])
            await h.resolver.chains("SPX")
            assert h.resolver.requests == n  # cached: no new request
            # the cache survives a restart through the store
            r2 = ContractResolver(h.conn.ib, h.conn.pacer, 3, h.store, today=lambda: TODAY)
            assert r2.con_id(am) == got[am.key].conId
            legs = condor("x").legs
            await h.resolver.resolve([leg.instrument for leg in legs])
            bag = h.resolver.bag(legs)
            assert bag.secType == "BAG" and len(bag.comboLegs) == 4
    run(go())


def test_market_snapshot_and_missing_or_stale_quotes(tmp_path):
    async def go():
        async with harness(tmp_path) as h:
            q, rep = await h.md.snapshot(Phase.OPEN, TODAY)
            assert q.spx == pytest.approx(5000.0) and q.vix == pytest.approx(15.0)
            assert len(q.vx) == 4 and set(q.etps) >= {"VIXY", "VXX"}
            assert q.spx_soq == q.spx and not rep.missing
            # VIX missing -> no snapshot at all (never silently used)
            h.srv.set_quote(13455763, None)
            q, rep = await h.md.snapshot(Phase.CLOSE, TODAY)
            assert q is None and "VIX" in rep.missing
            h.srv.set_quote(13455763, Quote(last=15.0, close=15.0))
            # stale: quotes older than max_age are refreshed; if still old they are refused
            md = MarketData(h.conn.ib, h.resolver, h.conn.pacer, MarketDataParams(mode="snapshot", indices=[],
                            vx_months=1, etps=[], max_age_seconds=5), wall=lambda: time.time() + 3600)
            await md.subscribe()
            q, rep = await md.snapshot(Phase.OPEN, TODAY)
            assert q is None and "SPX" in rep.stale
            # a VX contract without a quote is named and left out of the curve
            fut = (await h.resolver.resolve([vx_future(VX_FEB)]))[vx_future(VX_FEB).key]
            h.srv.set_quote(fut.conId, None)
            q, rep = await h.md.snapshot(Phase.OPEN, TODAY)
            assert q is not None and VX_FEB not in q.vx and "vx" in q.stale
            assert any(name.startswith("VX 2024-02-14") for name in rep.missing)
            lq = await h.md.leg_quotes([spx_option(WEEKLY, 4900, "P", "SPXW")])
            assert all(v.ok and v.bid <= v.mid <= v.ask for v in lq.values())
            assert all(math.isfinite(v.delta) for v in lq.values())  # greeks arrive with the quote
    run(go())


# ---- the condor BAG ---------------------------------------------------------------------------
def test_condor_bag_fills_and_ledger_matches_server(tmp_path):
    async def go():
        async with harness(tmp_path) as h:
            o = condor("condor-20240110-open-aaa", qty=2)
            await h.submit(o)
            final = await h.wait_final(o.intent_id)
            assert final.state is OrderState.FILLED and final.filled == 2
            rec = h.srv.find_order(order_ref=o.intent_id)
            assert rec.is_bag and len(rec.legs) == 4 and rec.action == "BUY"
            assert [leg.action for leg in rec.legs] == ["BUY", "SELL", "SELL", "BUY"]
            assert rec.lmt_price < 0  # a credit is a BUY at a negative limit
            # never a contract-details request for the BAG
            assert not [m for m in h.srv.received("reqContractDetails") if "BAG" in m.fields]
            fills = h.fills(o.intent_id)
            assert len(fills) == 1 and fills[0].combo_quantity == 2 and len(fills[0].legs) == 4
            assert fills[0].net_price == pytest.approx(rec.avg_fill_price)
            assert fills[0].commission > 0
            assert [s.state for s in h.statuses(o.intent_id)] == [OrderState.WORKING, OrderState.FILLED]
            assert h.ledger.net_positions() == h.server_positions()
            assert h.ledger.cash > 1_000_000  # credit received
            row = h.store.intent(o.intent_id)
            assert row.state == "filled" and row.filled == 2 and row.order_id == rec.order_id
            assert len(h.store.executions(o.intent_id)) == 5  # 4 legs + the combo-level execution
            # the same intent again is ignored (idempotent per intent id)
            await h.submit(o)
            assert len([r for r in h.srv.book.orders.values() if r.order_ref == o.intent_id]) == 1
    run(go())


def test_condor_partial_fill_then_rest(tmp_path):
    async def go():
        async with harness(tmp_path, fill_policy=FillPartial(1)) as h:
            o = condor("condor-20240110-open-partial", qty=3)
            await h.submit(o)
            await until(lambda: any(s.state is OrderState.PARTIALLY_FILLED for s in h.statuses(o.intent_id)),
                        what="partial fill")
            assert h.ledger.net_positions() == h.server_positions()
            assert h.store.intent(o.intent_id).state == "partially_filled"
            h.srv.fill_rest(order_ref=o.intent_id)
            final = await h.wait_final(o.intent_id)
            assert final.state is OrderState.FILLED and final.filled == 3
            assert [f.combo_quantity for f in h.fills(o.intent_id)] == [1, 2]
            assert h.ledger.net_positions() == h.server_positions()
            assert {k: abs(v) for k, v in h.ledger.net_positions().items()} == {leg.key: 3 for leg in o.legs}
    run(go())


def test_partial_fill_then_timeout_cancels_the_rest(tmp_path):
    async def go():
        params = OrderParams(improve_steps=1, step_seconds=0.05, timeout_seconds=0.2, commission_wait_seconds=0.05)
        async with harness(tmp_path, fill_policy=FillPartial(1), orders=params) as h:
            o = condor("condor-20240110-open-pt", qty=2)
            await h.submit(o)
            final = await h.wait_final(o.intent_id)
            assert final.state is OrderState.CANCELLED and final.filled == 1
            assert h.ledger.net_positions() == h.server_positions()
            assert h.store.intent(o.intent_id).state == "cancelled"
    run(go())


def test_condor_rejected(tmp_path):
    async def go():
        async with harness(tmp_path, fill_policy=Reject()) as h:
            o = condor("condor-20240110-open-rej")
            await h.submit(o)
            final = await h.wait_final(o.intent_id)
            assert final.state is OrderState.REJECTED and "201" in final.reason
            assert h.store.intent(o.intent_id).state == "rejected"
            assert not h.ledger.net_positions() and not h.server_positions()
    run(go())


def test_cancel_by_strategy_and_price_steps_then_timeout(tmp_path):
    async def go():
        params = OrderParams(improve_steps=3, step_seconds=0.05, timeout_seconds=0.3, commission_wait_seconds=0.05)
        async with harness(tmp_path, fill_policy=NeverFill(), orders=params) as h:
            a = condor("condor-20240110-open-cxl", limit=None)
            await h.submit(a)
            await until(lambda: any(s.state is OrderState.WORKING for s in h.statuses(a.intent_id)), what="working")
            h.broker.cancel(a.intent_id)
            final = await h.wait_final(a.intent_id)
            assert final.state is OrderState.CANCELLED and final.filled == 0
            assert h.store.intent(a.intent_id).state == "cancelled"
            # a resting order walks its limit toward the natural price, then times out
            b = condor("condor-20240110-open-walk", limit=None)
            await h.submit(b)
            final = await h.wait_final(b.intent_id)
            assert final.state is OrderState.CANCELLED
            rec = h.srv.find_order(order_ref=b.intent_id)
            placed = [m for m in h.srv.received("placeOrder") if m.fields[1] == str(rec.order_id)]
            assert len(placed) >= 3  # the order plus its price steps, all under one order id
            assert len({r.order_id for r in h.srv.book.orders.values() if r.order_ref == b.intent_id}) == 1
            assert h.srv.received("cancelOrder")
            path = h.store.intent(b.intent_id)
            assert path.steps_done >= 2 and path.working_price > -12.5
    run(go())


# ---- hedge orders -----------------------------------------------------------------------------
def test_hedge_single_leg_orders_fill_and_ledger_matches_server(tmp_path):
    async def go():
        params = OrderParams(improve_steps=2, step_seconds=0.05, timeout_seconds=2.0, commission_wait_seconds=0.05)
        async with harness(tmp_path, orders=params) as h:
            orders = [single("hedge-20240110-hedge-on-vx", vx_future(VX_FEB), 1, 2),
                      single("hedge-20240110-hedge-on-vixc", vix_option(VX_FEB, 20, "C"), 1, 3),
                      single("hedge-20240110-hedge-on-etp", Equity("VIXY"), 1, 100),
                      single("hedge-20240110-hedge-off-vx", vx_future(VX_FEB), -1, 1)]
            for o in orders:
                await h.submit(o)
            for o in orders:
                final = await h.wait_final(o.intent_id)
                assert final.state is OrderState.FILLED, (o.intent_id, final)
            sell = h.srv.find_order(order_ref="hedge-20240110-hedge-off-vx")
            assert sell.action == "SELL" and sell.lmt_price > 0 and sell.spec.sec_type == "FUT"
            assert h.ledger.net_positions() == h.server_positions()
            assert h.ledger.net_positions()[vx_future(VX_FEB).key] == 1
    run(go())


def test_engine_risk_limits_and_kill_switch_stop_orders_before_ib(tmp_path):
    async def go():
        risk = RiskLimits(max_contracts_per_order=5, max_orders_per_day=3, max_hedge_notional=20_000)
        async with harness(tmp_path, risk=risk, fill_policy=NeverFill()) as h:
            await h.decide(condor("condor-20240110-open-big", qty=10))
            assert "max_contracts_per_order" in h.final("condor-20240110-open-big").reason
            await h.decide(single("hedge-20240110-hedge-on-big", vx_future(VX_FEB), 1, 2))   # 2 x 16 x 1000
            assert "max_hedge_notional" in h.final("hedge-20240110-hedge-on-big").reason
            w = condor("condor-20240110-open-w1", qty=1)
            await h.decide(w)
            await until(lambda: any(s.state is OrderState.WORKING for s in h.statuses(w.intent_id)), what="working")
            h.kernel.halt("test")
            final = await h.wait_final(w.intent_id)
            assert final.state is OrderState.CANCELLED and "halted" in final.reason
            await h.decide(condor("condor-20240110-open-w2", qty=1))
            assert "halted" in h.final("condor-20240110-open-w2").reason
            h.kernel.resume()
            for i in range(3):
                await h.decide(single(f"hedge-20240110-hedge-on-{i}", Equity("VIXY"), 1, 10))
            assert "max_orders_per_day" in h.final("hedge-20240110-hedge-on-2").reason
            assert not h.srv.book.orders or all(r.order_ref not in ("condor-20240110-open-big", "condor-20240110-open-w2")
                                                for r in h.srv.book.orders.values())
    run(go())


def test_order_without_leg_quotes_uses_strategy_limit(tmp_path):
    async def go():
        async with harness(tmp_path, fill_policy=NeverFill()) as h:
            o = condor("condor-20240110-open-noq", limit=-3.0)
            await h.resolver.resolve([leg.instrument for leg in o.legs])
            h.srv.set_quote(h.resolver.con_id(o.legs[1].instrument), None)
            await h.submit(o)
            await until(lambda: any(r.order_ref == o.intent_id for r in h.srv.book.orders.values()), what="order")
            rec = h.srv.find_order(order_ref=o.intent_id)
            assert rec.lmt_price == pytest.approx(-3.0)
    run(go())
