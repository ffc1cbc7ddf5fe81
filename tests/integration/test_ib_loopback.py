"""FakeTWS loopback tests driven by the REAL ib_async client (127.0.0.1 only).

Every test starts its own FakeTWS on an ephemeral port with a pinned clock
(Wed 2024-01-10 10:00 ET), so contracts, expiries and prices are deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ib_async = pytest.importorskip("ib_async")

from ib_async import (
    IB,
    Contract,
    ExecutionFilter,
    Future,
    Index,
    LimitOrder,
    MarketOrder,
    Option,
    Stock,
)
from loopback_client import (  # noqa: F401 - no_decode_errors is an autouse fixture
    HOST,
    MONTHLY,
    NOW,
    WEEKLY,
    iron_condor,
    no_decode_errors,
    run,
    spxw,
    until,
)

from adapters.faketws import (
    FakeTWS,
    FillAll,
    FillPartial,
    NeverFill,
    Quote,
    Reject,
    bs_price,
    implied_vol,
    third_friday,
    vx_expiry,
    wire,
)
from adapters.faketws.fills import allocate_leg_prices
from adapters.faketws.orders import LegRecord

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ helpers
@contextlib.asynccontextmanager
async def session(client_id: int = 1, **srv_kwargs):
    srv_kwargs.setdefault("now", NOW)
    async with FakeTWS(**srv_kwargs) as srv:
        ib = IB()
        await ib.connectAsync(HOST, srv.port, clientId=client_id, timeout=3)
        try:
            yield srv, ib
        finally:
            ib.disconnect()


def collect_errors(ib: IB) -> list[tuple[int, int, str]]:
    errs: list[tuple[int, int, str]] = []
    ib.errorEvent += lambda req_id, code, msg, contract: errs.append((req_id, code, msg))
    return errs


def tick05(x: float, mode: str) -> float:
    n = x / 0.05
    n = math.ceil(n - 1e-9) if mode == "up" else math.floor(n + 1e-9)
    return round(n * 0.05, 2)


# ------------------------------------------------------------------ connect
def test_connect_fast_and_startup_fetches_answered():
    async def main():
        async with FakeTWS(now=NOW) as srv:
            ib = IB()
            await ib.connectAsync(HOST, srv.port, clientId=7, timeout=2, raiseSyncErrors=True)  # times out otherwise
            assert ib.isConnected()
            assert ib.managedAccounts() == ["DU1234567"]
            assert ib.positions() == []
            assert ib.openTrades() == []
            tags = {v.tag for v in ib.accountValues()}
            assert {"NetLiquidation", "TotalCashValue", "BuyingPower"} <= tags
            # every startup fetch ib_async made was answered
            got = {m.name for m in srv.received(client_id=7)}
            assert {"START_API", "REQ_POSITIONS", "REQ_OPEN_ORDERS", "REQ_COMPLETED_ORDERS", "REQ_ACCT_DATA",
                    "REQ_ACCOUNT_UPDATES_MULTI", "REQ_EXECUTIONS"} <= got
            sent = {m.msg_id for m in srv.sent()}
            assert {9, 15, 62, 53, 102, 54, 74, 55} <= sent
            codes = [int(m.fields[3]) for m in srv.sent("error")]
            assert codes == [2104, 2106, 2158]
            assert srv.client_ids() == [7]
            ct = await asyncio.wait_for(ib.reqCurrentTimeAsync(), 1)
            assert ct == NOW
            ib.disconnect()

    run(main())


def test_server_version_176_also_works():
    async def main():
        async with session(server_version=176) as (_srv, ib):
            assert ib.client.serverVersion() == 176
            [vixy] = await ib.qualifyContractsAsync(Stock("VIXY", "SMART", "USD"))
            trade = ib.placeOrder(vixy, LimitOrder("BUY", 10, 14.51, orderRef="v176"))
            await until(trade.isDone, what="fill")
            assert trade.orderStatus.status == "Filled"
            assert trade.order.orderRef == "v176"

    run(main())


# ------------------------------------------------------------------ contracts
def test_qualify_contracts_and_ambiguity():
    async def main():
        async with session() as (_srv, ib):
            spx = Index("SPX", "CBOE")
            vx = Future("VIX", "202401", "CFE")
            opt = spxw(4800, "P")
            vixc = Option("VIX", "20240117", 16, "C", "SMART")
            vixy = Stock("VIXY", "SMART", "USD")
            res = await ib.qualifyContractsAsync(spx, vx, opt, vixc, vixy)
            assert all(res)
            assert spx.conId == 416904
            assert vx.conId and vx.tradingClass == "VX" and vx.multiplier == "1000"
            assert vx.lastTradeDateOrContractMonth == "20240117" and vx.localSymbol == "VXF4"
            assert opt.multiplier == "100" and opt.tradingClass == "SPXW" and opt.exchange == "SMART"
            assert vixc.tradingClass == "VIX" and vixc.multiplier == "100"
            assert vixy.primaryExchange == "ARCA"
            assert await ib.qualifyContractsAsync(Index("VIX", "CBOE")) and True

            # deterministic conIds: a second server derives the same ids
            async with session() as (_srv2, ib2):
                opt2 = spxw(4800, "P")
                await ib2.qualifyContractsAsync(opt2)
                assert opt2.conId == opt.conId

            # 3rd Friday without tradingClass: SPX and SPXW both match -> not qualified
            amb = Option("SPX", MONTHLY, 4800, "P", "SMART")
            assert await ib.qualifyContractsAsync(amb) == [None]
            details = await ib.reqContractDetailsAsync(Option("SPX", MONTHLY, 4800, "P", "SMART"))
            assert sorted(d.contract.tradingClass for d in details) == ["SPX", "SPXW"]
            both = await ib.qualifyContractsAsync(Option("SPX", MONTHLY, 4800, "P", "SMART"), returnAll=True)
            assert len(both[0]) == 2
            # ...with the class given it resolves
            am = Option("SPX", MONTHLY, 4800, "P", "SMART", tradingClass="SPX")
            assert (await ib.qualifyContractsAsync(am))[0] is not None
            # SPX (AM) does not list a non-3rd-Friday date; off-grid strike unknown
            errs = collect_errors(ib)
            assert await ib.qualifyContractsAsync(Option("SPX", WEEKLY, 4800, "P", "SMART", tradingClass="SPX")) == [None]
            assert await ib.qualifyContractsAsync(spxw(4801, "P")) == [None]
            assert {c for _, c, _ in errs} == {200}

            chains = await ib.reqSecDefOptParamsAsync("SPX", "", "IND", 416904)
            assert {c.tradingClass for c in chains} == {"SPX", "SPXW"}
            by = {c.tradingClass: c for c in chains}
            assert MONTHLY in by["SPX"].expirations and WEEKLY not in by["SPX"].expirations
            assert WEEKLY in by["SPXW"].expirations and 5000.0 in by["SPXW"].strikes
            vchains = await ib.reqSecDefOptParamsAsync("VIX", "", "IND", 13455763)
            assert [c.tradingClass for c in vchains] == ["VIX"] and "20240117" in vchains[0].expirations

    run(main())


def test_bag_contract_details_gets_321_and_never_ends():
    """Like real TWS: error 321 and no contractDetailsEnd.  ib_async treats 321 as a warning,
    so the request hangs: callers must wrap it with a timeout (or never ask)."""

    async def main():
        async with session() as (_srv, ib):
            bag = await iron_condor(ib)
            errs = collect_errors(ib)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ib.reqContractDetailsAsync(bag), 0.3)
            assert [c for _, c, _ in errs] == [321]

    run(main())


# ------------------------------------------------------------------ market data
def test_snapshot_option_quote_and_greeks():
    async def main():
        async with session() as (srv, ib):
            opt = spxw(4950, "P")
            await ib.qualifyContractsAsync(opt)
            [t] = await asyncio.wait_for(ib.reqTickersAsync(opt), 2)
            assert 0 < t.bid < t.ask
            assert t.modelGreeks is not None and -1 < t.modelGreeks.delta < 0
            assert t.modelGreeks.undPrice == 5000.0 and t.modelGreeks.impliedVol == pytest.approx(0.15)
            assert t.bidGreeks is not None and t.askGreeks is not None
            assert t.bidGreeks.impliedVol < t.modelGreeks.impliedVol < t.askGreeks.impliedVol
            assert srv.sent("tickSnapshotEnd")
            # index and future
            spx, vx = Index("SPX", "CBOE"), Future("VIX", "202402", "CFE")
            await ib.qualifyContractsAsync(spx, vx)
            ts, tv = await asyncio.wait_for(ib.reqTickersAsync(spx, vx), 2)
            assert ts.last == 5000.0 and ts.close == 5000.0
            assert 15.0 < tv.bid < tv.ask < 19.0
            # unknown contract -> error 200 ends the snapshot
            errs = collect_errors(ib)
            await asyncio.wait_for(ib.reqTickersAsync(Contract(conId=12345)), 2)
            assert [c for _, c, _ in errs] == [200]

    run(main())


def test_streaming_quotes_follow_levels_and_cancel():
    async def main():
        async with session(tick_interval=0) as (srv, ib):
            opt = spxw(5000, "C")
            await ib.qualifyContractsAsync(opt)
            t = ib.reqMktData(opt)
            await until(lambda: t.bid == t.bid and t.bid > 0 and t.modelGreeks is not None, what="first ticks")
            first_bid, first_delta = t.bid, t.modelGreeks.delta
            srv.set_levels(spx=5050)
            await until(lambda: t.bid > first_bid, what="repriced bid")
            assert t.modelGreeks.delta > first_delta and t.modelGreeks.undPrice == 5050
            ib.cancelMktData(opt)
            await until(lambda: srv.received("cancelMktData"), what="cancel")

    run(main())


def test_custom_quote_provider_and_no_quote_error():
    def provider(f):
        if f["secType"] == "STK":
            return Quote(bid=10.0, ask=10.02, last=10.01)
        return None

    async def main():
        async with session(quote_provider=provider, no_quote_error=354) as (_srv, ib):
            vixy, opt = Stock("VIXY", "SMART", "USD"), spxw(4950, "P")
            await ib.qualifyContractsAsync(vixy, opt)
            errs = collect_errors(ib)
            tv, to = await asyncio.wait_for(ib.reqTickersAsync(vixy, opt), 2)
            assert (tv.bid, tv.ask, tv.last) == (10.0, 10.02, 10.01)
            assert [c for _, c, _ in errs] == [354] and not (to.bid > 0)

    run(main())


def test_delayed_data_when_not_entitled():
    async def main():
        async with session(market_data_entitled=False) as (_srv, ib):
            opt = spxw(4950, "P")
            await ib.qualifyContractsAsync(opt)
            errs = collect_errors(ib)
            [t] = await asyncio.wait_for(ib.reqTickersAsync(opt), 2)
            assert [c for _, c, _ in errs] == [354] and not (t.bid > 0)
            ib.reqMarketDataType(3)
            [t] = await asyncio.wait_for(ib.reqTickersAsync(opt), 2)
            assert t.bid > 0 and t.last > 0 and t.close > 0 and t.marketDataType == 3
            assert t.modelGreeks is not None and t.bidGreeks is not None

    run(main())


# ------------------------------------------------------------------ orders
@pytest.mark.parametrize("reverse", [False, True], ids=["buy-negative-limit", "sell-positive-limit"])
def test_iron_condor_bag_credit_fill(reverse):
    async def main():
        async with session() as (srv, ib):
            bag = await iron_condor(ib, reverse=reverse)
            [bt] = await asyncio.wait_for(ib.reqTickersAsync(bag), 2)
            mid = (bt.bid + bt.ask) / 2
            if reverse:  # combo priced positive: SELL it at a positive limit for a credit
                order = LimitOrder("SELL", 1, tick05(mid, "down"), orderRef="intent-123")
                assert order.lmtPrice > 0
            else:  # combo priced negative: BUY it at a negative limit for a credit
                order = LimitOrder("BUY", 1, tick05(mid, "up"), orderRef="intent-123")
                assert order.lmtPrice < 0
            reports = []
            ib.commissionReportEvent += lambda trade, fill, rep: reports.append(rep)
            trade = ib.placeOrder(bag, order)
            await until(lambda: trade.isDone() and len(reports) == 4 and len(ib.positions()) == 4, what="fill")
            assert trade.orderStatus.status == "Filled"
            assert trade.orderStatus.filled == 1 and trade.orderStatus.remaining == 0
            assert trade.orderStatus.avgFillPrice == pytest.approx(order.lmtPrice)
            assert trade.orderStatus.permId == trade.order.permId != 0
            assert trade.orderStatus.clientId == 1
            assert trade.order.orderRef == "intent-123"
            # 4 leg executions + 1 combo-level (BAG) execution, all on the same permId
            assert len(trade.fills) == 5
            leg_fills = [f for f in trade.fills if f.contract.secType == "OPT"]
            bag_fills = [f for f in trade.fills if f.contract.secType == "BAG"]
            assert len(leg_fills) == 4 and len(bag_fills) == 1
            assert all(f.execution.orderRef == "intent-123" for f in trade.fills)
            assert bag_fills[0].execution.price == pytest.approx(order.lmtPrice)
            signed = sum((1 if f.execution.side == "BOT" else -1) * f.execution.price for f in leg_fills)
            combo_sign = 1 if order.action == "BUY" else -1
            assert signed == pytest.approx(combo_sign * order.lmtPrice)
            assert all(f.commissionReport.commission > 0 for f in leg_fills)
            # positions come back per leg: -1 on the shorts, +1 on the wings
            pos = {p.contract.strike: p.position for p in ib.positions()}
            assert pos == {4850.0: 1, 4900.0: -1, 5100.0: -1, 5150.0: 1}
            # credit received: cash went up by ~ |limit| * 100 minus commissions
            cash = float(next(v.value for v in ib.accountValues() if v.tag == "TotalCashValue"))
            assert cash > 1_000_000
            # exactly one placeOrder carried that orderRef
            assert len([m for m in srv.received("placeOrder") if "intent-123" in m.fields]) == 1
            rec = srv.find_order(order_ref="intent-123")
            assert rec.status == "Filled" and len(rec.executions) == 5

    run(main())


def test_modify_working_order_then_market_move_fills():
    async def main():
        async with session() as (srv, ib):
            bag = await iron_condor(ib)
            [bt] = await asyncio.wait_for(ib.reqTickersAsync(bag), 2)
            order = LimitOrder("BUY", 1, tick05(bt.bid, "down") - 0.50, orderRef="mod-1")  # far from mid
            trade = ib.placeOrder(bag, order)
            await until(lambda: trade.orderStatus.status == "Submitted", what="resting")
            order.lmtPrice = tick05((bt.bid + bt.ask) / 2, "up")  # modify: same orderId, now marketable
            ib.placeOrder(bag, order)
            await until(trade.isDone, what="fill after modify")
            assert [e.message for e in trade.log if e.message == "Modify"] == ["Modify"]
            assert len(srv.received("placeOrder")) == 2 and len(srv.book.orders) == 1
            # a resting order fills when the market moves through it
            vixy = Stock("VIXY", "SMART", "USD")
            await ib.qualifyContractsAsync(vixy)
            t2 = ib.placeOrder(vixy, LimitOrder("BUY", 10, 14.00))
            await until(lambda: t2.orderStatus.status == "Submitted")
            srv.set_levels(VIXY=13.90)
            assert srv.match_resting() == 1
            await until(t2.isDone)
            assert t2.orderStatus.avgFillPrice == pytest.approx(13.91)
            assert srv.positions()[vixy.conId] == 10

    run(main())


def test_partial_fill_then_rest():
    async def main():
        async with session(fill_policy=FillPartial(1)) as (srv, ib):
            opt = spxw(4950, "P")
            await ib.qualifyContractsAsync(opt)
            trade = ib.placeOrder(opt, LimitOrder("SELL", 3, 20.0, orderRef="partial"))
            await until(lambda: trade.orderStatus.filled == 1, what="partial fill")
            assert trade.orderStatus.status == "Submitted" and trade.orderStatus.remaining == 2
            assert len(trade.fills) == 1
            srv.fill_rest(trade.order.orderId)
            await until(trade.isDone, what="rest filled")
            assert trade.orderStatus.status == "Filled" and trade.orderStatus.filled == 3
            assert [f.execution.shares for f in trade.fills] == [1, 2]
            await until(lambda: len(ib.positions()) == 1)
            assert ib.positions()[0].position == -3

    run(main())


def test_reject_201_marks_trade_cancelled():
    async def main():
        async with session(fill_policy=Reject()) as (srv, ib):
            errs = collect_errors(ib)
            opt = spxw(4950, "P")
            await ib.qualifyContractsAsync(opt)
            trade = ib.placeOrder(opt, LimitOrder("SELL", 1, 20.0, orderRef="rej"))
            await until(trade.isDone, what="reject")
            assert trade.orderStatus.status == "Cancelled"
            assert (trade.order.orderId, 201) in [(r, c) for r, c, _ in errs]
            assert any(e.errorCode == 201 for e in trade.log)
            assert trade.advancedError == ""  # advanced reject json left empty
            assert srv.find_order(order_ref="rej").status == "Cancelled"

    run(main())


def test_cancel_202_and_unknown_cancel():
    async def main():
        async with session(fill_policy=NeverFill()) as (_srv, ib):
            errs = collect_errors(ib)
            opt = spxw(4950, "P")
            await ib.qualifyContractsAsync(opt)
            trade = ib.placeOrder(opt, LimitOrder("SELL", 1, 20.0, orderRef="cxl"))
            await until(lambda: trade.orderStatus.status == "Submitted", what="working")
            ib.cancelOrder(trade.order)
            await until(trade.isDone, what="cancel")
            assert trade.orderStatus.status == "Cancelled"
            assert (trade.order.orderId, 202) in [(r, c) for r, c, _ in errs]
            ib.client.cancelOrder(999)
            await until(lambda: any(c == 10147 for _, c, _ in errs), what="10147")

    run(main())


def test_tick_violation_110_cancels_new_order():
    async def main():
        async with session() as (_srv, ib):
            opt = spxw(4950, "P")
            await ib.qualifyContractsAsync(opt)
            trade = ib.placeOrder(opt, LimitOrder("SELL", 1, 20.03))  # >= 3.00 trades in 0.10
            await until(trade.isDone, what="110")
            assert trade.orderStatus.status == "Cancelled"
            assert any(e.errorCode == 110 for e in trade.log)

    run(main())


def test_vx_future_and_vixy_orders_fill_and_positions():
    async def main():
        async with session() as (_srv, ib):
            vx = Future("VIX", "202402", "CFE")
            vixy = Stock("VIXY", "SMART", "USD")
            await ib.qualifyContractsAsync(vx, vixy)
            [tv] = await ib.reqTickersAsync(vx)
            t1 = ib.placeOrder(vx, LimitOrder("BUY", 2, tv.ask, orderRef="vx"))
            t2 = ib.placeOrder(vixy, MarketOrder("BUY", 100, orderRef="vixy"))
            await until(lambda: t1.isDone() and t2.isDone() and len(ib.positions()) == 2, what="fills")
            assert t1.orderStatus.status == t2.orderStatus.status == "Filled"
            assert t1.orderStatus.avgFillPrice == tv.ask
            pos = {p.contract.symbol: p for p in ib.positions()}
            assert pos["VIX"].position == 2 and pos["VIX"].contract.secType == "FUT"
            assert pos["VIX"].avgCost == pytest.approx(tv.ask * 1000 + 2.40)
            assert pos["VIXY"].position == 100
            assert t1.fills[0].execution.exchange == "CFE" and t1.fills[0].contract.multiplier == "1000"
            await until(lambda: len(ib.portfolio()) == 2, what="portfolio")

    run(main())


def test_whatif_order_returns_margin():
    async def main():
        async with session() as (srv, ib):
            bag = await iron_condor(ib)
            state = await asyncio.wait_for(ib.whatIfOrderAsync(bag, LimitOrder("BUY", 2, -1.0)), 2)
            assert float(state.initMarginChange) == pytest.approx(2 * 50 * 100)
            assert srv.book.orders == {}  # nothing booked

    run(main())


# ------------------------------------------------------------------ faults & reconnect
def test_drop_reconnect_recovers_working_order_and_outage_fills():
    async def main():
        async with FakeTWS(now=NOW, fill_policy=NeverFill()) as srv:
            ib = IB()
            await ib.connectAsync(HOST, srv.port, clientId=3, timeout=2)
            bag = await iron_condor(ib)
            trade = ib.placeOrder(bag, LimitOrder("BUY", 3, -2.0, orderRef="keep-1"))
            await until(lambda: trade.orderStatus.status == "Submitted", what="working")
            dropped = asyncio.Event()
            ib.disconnectedEvent += dropped.set
            assert srv.drop_connections() == 1
            await asyncio.wait_for(dropped.wait(), 2)
            assert not ib.isConnected()
            # the order fills partly while nobody is connected
            srv.fill(order_ref="keep-1", qty=1)
            # reconnect with the same clientId (the dead session is gone, no 326)
            await ib.connectAsync(HOST, srv.port, clientId=3, timeout=2)
            [open_trade] = ib.openTrades()
            assert open_trade.order.orderRef == "keep-1"
            assert open_trade.order.permId == srv.find_order(order_ref="keep-1").perm_id
            assert open_trade.orderStatus.filled == 1 and open_trade.orderStatus.remaining == 2
            fills = await asyncio.wait_for(ib.reqExecutionsAsync(), 2)
            assert {f.execution.orderRef for f in fills} == {"keep-1"}
            assert sorted(f.contract.secType for f in fills) == ["BAG", "OPT", "OPT", "OPT", "OPT"]
            # startup reqExecutions already attached them to the recovered trade
            assert len(open_trade.fills) == 5
            # note: explicit reqExecutions returns fresh Fill objects (commission empty for
            # execIds already known); ib.fills() holds the ones with commission reports
            assert all(f.commissionReport.commission > 0 for f in ib.fills() if f.contract.secType == "OPT")
            utc = "%Y%m%d-%H:%M:%S"  # dash form = UTC; "yyyymmdd hh:mm:ss" = TWS zone
            before = await asyncio.wait_for(ib.reqExecutionsAsync(ExecutionFilter(
                time=(NOW - dt.timedelta(minutes=1)).strftime(utc))), 2)
            after = await asyncio.wait_for(ib.reqExecutionsAsync(ExecutionFilter(
                time=(NOW + dt.timedelta(minutes=1)).strftime(utc))), 2)
            assert len(before) == 5 and after == []
            legs_only = await asyncio.wait_for(ib.reqExecutionsAsync(ExecutionFilter(secType="OPT", side="SELL")), 2)
            assert sorted(f.contract.strike for f in legs_only) == [4900.0, 5100.0]
            # other clients don't see it in reqOpenOrders, but do in reqAllOpenOrders
            other = IB()
            await other.connectAsync(HOST, srv.port, clientId=4, timeout=2)
            assert other.openTrades() == []
            assert [t.order.orderRef for t in await other.reqAllOpenOrdersAsync()] == ["keep-1"]
            other.disconnect()
            # the rest fills live on the recovered trade
            srv.fill_rest(order_ref="keep-1")
            await until(open_trade.isDone, what="rest")
            assert open_trade.orderStatus.filled == 3
            ib.disconnect()
            # completed orders are reported after the next connect
            await ib.connectAsync(HOST, srv.port, clientId=3, timeout=2)
            done = await ib.reqCompletedOrdersAsync(False)
            assert [(t.order.orderRef, t.orderStatus.status) for t in done] == [("keep-1", "Filled")]
            pos = {p.contract.strike: p.position for p in ib.positions()}
            assert pos == {4850.0: 3, 4900.0: -3, 5100.0: -3, 5150.0: 3}
            ib.disconnect()

    run(main())


def test_connectivity_errors_arrive_through_error_event():
    async def main():
        async with session() as (srv, ib):
            errs = collect_errors(ib)
            srv.send_error(1100)
            srv.send_error(1102)
            srv.send_error(2110, req_id=-1)
            await until(lambda: len(errs) == 3, what="errors")
            assert [c for _, c, _ in errs] == [1100, 1102, 2110]
            assert "lost" in errs[0][2]
            assert ib.isConnected()

    run(main())


def test_duplicate_client_id_326_makes_connect_fail():
    async def main():
        async with session(client_id=5) as (srv, ib):
            dup = IB()
            errs = collect_errors(dup)
            with pytest.raises((asyncio.TimeoutError, ConnectionError)):
                await dup.connectAsync(HOST, srv.port, clientId=5, timeout=0.5)
            assert 326 in [c for _, c, _ in errs]
            assert ib.isConnected() and srv.client_ids() == [5]
            # forced: TWS still holds a (ghost) session for clientId 6
            srv.reject_client_id(True, client_ids=[6])
            ghost = IB()
            with pytest.raises((asyncio.TimeoutError, ConnectionError)):
                await ghost.connectAsync(HOST, srv.port, clientId=6, timeout=0.5)
            srv.reject_client_id(False)
            await ghost.connectAsync(HOST, srv.port, clientId=6, timeout=1)
            ghost.disconnect()

    run(main())


def test_dropped_end_message_stalls_startup_fetch():
    async def main():
        async with FakeTWS(now=NOW) as srv:
            srv.drop_replies({"openOrderEnd"})
            ib = IB()
            with pytest.raises(ConnectionError):
                await ib.connectAsync(HOST, srv.port, clientId=1, timeout=0.4, raiseSyncErrors=True)
            assert not srv.sent("openOrderEnd") and any(m.direction == "dropped" for m in srv.transcript)
            srv.drop_replies(None)
            await ib.connectAsync(HOST, srv.port, clientId=1, timeout=1, raiseSyncErrors=True)
            ib.disconnect()

    run(main())


def test_delay_replies():
    async def main():
        async with session() as (srv, ib):
            srv.delay_replies("currentTime", 0.3)
            t0 = time.perf_counter()
            await asyncio.wait_for(ib.reqCurrentTimeAsync(), 2)
            assert time.perf_counter() - t0 >= 0.28
            srv.delay_replies("currentTime", 0)
            t0 = time.perf_counter()
            await asyncio.wait_for(ib.reqCurrentTimeAsync(), 2)
            assert time.perf_counter() - t0 < 0.28    # the 0.3 s delay is gone

    run(main())


def test_fills_before_open_order_quirk():
    """execDetails before openOrder: ib_async still attaches the fills (by clientId+orderId)
    but emits no commissionReportEvent (it looks trades up by permId, unknown until openOrder)."""

    async def main():
        async with session(fill_policy=FillAll(), fills_before_open_order=True) as (srv, ib):
            opt = spxw(4950, "P")
            await ib.qualifyContractsAsync(opt)
            reports = []
            ib.commissionReportEvent += lambda t, f, r: reports.append(r)
            trade = ib.placeOrder(opt, LimitOrder("SELL", 2, 20.0, orderRef="fast"))
            await until(lambda: trade.isDone() and trade.fills, what="fill")
            names = [m.name for m in srv.sent(client_id=1) if m.name in ("EXECUTION_DATA", "OPEN_ORDER")]
            assert names[0] == "EXECUTION_DATA"
            assert len(trade.fills) == 1 and trade.fills[0].commissionReport.commission > 0
            assert reports == []

    run(main())


def test_pacing_error_100_and_client_throttle_keeps_under():
    async def main():
        async with session() as (srv, ib):
            errs = collect_errors(ib)
            for _ in range(70):  # ib_async throttles to 45/s: no violation
                ib.client.reqCurrentTime()
            await asyncio.sleep(1.3)
            assert srv.pacing_violations == 0 and 100 not in [c for _, c, _ in errs]
            await asyncio.sleep(1.0)
            ib.client.MaxRequests = 0  # throttle off: burst
            for _ in range(60):
                ib.client.reqCurrentTime()
            await until(lambda: 100 in [c for _, c, _ in errs], what="error 100")
            assert srv.pacing_violations > 0

    run(main())


def test_daily_reset_refuses_then_accepts_and_book_survives():
    async def main():
        async with session() as (srv, ib):
            [vixy] = await ib.qualifyContractsAsync(Stock("VIXY", "SMART", "USD"))
            trade = ib.placeOrder(vixy, MarketOrder("BUY", 10))
            await until(trade.isDone)
            gone = asyncio.Event()
            ib.disconnectedEvent += gone.set
            srv.daily_reset(0.4)
            await asyncio.wait_for(gone.wait(), 2)
            with pytest.raises(OSError):
                await IB().connectAsync(HOST, srv.port, clientId=1, timeout=1)
            await asyncio.sleep(0.5)
            await ib.connectAsync(HOST, srv.port, clientId=1, timeout=2)
            assert [(p.contract.symbol, p.position) for p in ib.positions()] == [("VIXY", 10)]

    run(main())


def test_account_summary():
    async def main():
        async with session(cash=250_000) as (_srv, ib):
            summary = await asyncio.wait_for(ib.accountSummaryAsync(), 2)
            vals = {v.tag: v.value for v in summary}
            assert float(vals["NetLiquidation"]) == 250_000
            assert float(vals["BuyingPower"]) > 0 and vals["AccountType"] == "INDIVIDUAL"

    run(main())


def test_threaded_server_and_cross_thread_api():
    srv = FakeTWS.start_in_thread(now=NOW, account="DU7654321", fill_policy=FillPartial(1))
    try:
        async def main():
            ib = IB()
            await ib.connectAsync(HOST, srv.port, clientId=9, timeout=2)
            assert ib.managedAccounts() == ["DU7654321"]
            [vixy] = await ib.qualifyContractsAsync(Stock("VIXY", "SMART", "USD"))
            trade = ib.placeOrder(vixy, LimitOrder("BUY", 5, 14.51))
            await until(lambda: trade.orderStatus.filled == 1)
            await asyncio.get_running_loop().run_in_executor(None, srv.fill_rest, trade.order.orderId)
            await until(trade.isDone)
            ib.disconnect()

        run(main())
    finally:
        srv.stop()
    assert not srv.is_listening


def test_module_cli_runs_standalone():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "adapters.faketws.server", "--port", "0",
                             "--account", "DU7777777", "--log-level", "WARNING"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "listening" in line, line
        port = int(line.split()[3].rsplit(":", 1)[1])

        async def main():
            ib = IB()
            await ib.connectAsync(HOST, port, clientId=1, timeout=2)
            assert ib.managedAccounts() == ["DU7777777"]
            ib.disconnect()

        run(main())
    finally:
        proc.terminate()
        proc.wait(5)
        proc.stdout.close()


# ------------------------------------------------------------------ pieces
def test_black_scholes_and_calendar():
    c = bs_price(5000, 5000, 0.25, 0.04, 0.01, 0.2, "C")
    p = bs_price(5000, 5000, 0.25, 0.04, 0.01, 0.2, "P")
    parity = 5000 * math.exp(-0.01 * 0.25) - 5000 * math.exp(-0.04 * 0.25)
    assert c.price - p.price == pytest.approx(parity, abs=1e-9)
    assert c.delta - p.delta == pytest.approx(math.exp(-0.01 * 0.25))
    assert implied_vol(c.price, 5000, 5000, 0.25, 0.04, 0.01, "C") == pytest.approx(0.2, abs=1e-5)
    assert third_friday(2024, 1) == dt.date(2024, 1, 19)
    assert vx_expiry(2024, 1) == dt.date(2024, 1, 17)
    assert vx_expiry(2024, 2) == dt.date(2024, 2, 14)
    assert vx_expiry(2024, 6) == dt.date(2024, 6, 18)  # Wednesday 19 June was a holiday (Juneteenth)


def test_leg_price_allocation_sums_to_combo_price():
    from adapters.faketws.contracts import ContractSpec

    legs = [LegRecord(ContractSpec(i, "SPX", "OPT", multiplier="100"), 1, a)
            for i, a in enumerate(["BUY", "SELL", "SELL", "BUY"], start=1)]
    for combo in (-2.35, -0.05, 0.4, -7.9):
        prices = allocate_leg_prices(legs, [0.8, 2.0, 1.9, 0.6], combo)
        assert all(p >= 0.01 for p in prices)
        assert sum(leg.sign * p for leg, p in zip(legs, prices)) == pytest.approx(combo, abs=1e-6)


def test_wire_roundtrip():
    data = wire.encode_msg([3, "SPX", 1.5, None, True, -1])
    frames, rest = wire.split_frames(data + b"\x00\x00")
    assert rest == b"\x00\x00"
    assert wire.decode_payload(frames[0]) == ["3", "SPX", "1.5", "", "1", "-1"]
    assert wire.parse_version_range(b"v157..178") == (157, 178, "")
    assert wire.out_msg_id("openOrderEnd") == 53 and wire.in_msg_id("placeOrder") == 3
