"""FakeTWS across restarts and sessions, driven by the REAL ib_async client (127.0.0.1 only):
ids a restarted server issues, an account seeded with positions and working orders, what a
reconnect reports, and memory over many sessions."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os

import pytest

pytest.importorskip("ib_async")

from ib_async import IB, LimitOrder, MarketOrder, Option, Stock
from loopback_client import (  # noqa: F401 - no_decode_errors is an autouse fixture
    HOST,
    NOW,
    WEEKLY,
    iron_condor,
    no_decode_errors,
    run,
    until,
)

from adapters.faketws import FakeTWS, NeverFill
from adapters.faketws.clock import ET


async def connect(srv: FakeTWS, client_id: int = 1) -> IB:
    ib = IB()
    await ib.connectAsync(HOST, srv.port, clientId=client_id, timeout=3)
    return ib


async def trade_a_little(srv: FakeTWS) -> tuple[set[int], set[str]]:
    """A client fills a condor and a VIXY order; returns the permIds and execIds it saw."""
    ib = await connect(srv)
    try:
        bag = await iron_condor(ib)
        [vixy] = await ib.qualifyContractsAsync(Stock("VIXY", "SMART", "USD"))
        trades = [ib.placeOrder(bag, LimitOrder("BUY", 1, -1.0)), ib.placeOrder(vixy, MarketOrder("BUY", 10))]
        await until(lambda: all(t.isDone() for t in trades), what="fills")
        fills = [f for t in trades for f in t.fills]
        assert len(fills) == 6  # 4 legs + the combo-level execution + VIXY
        return {t.order.permId for t in trades}, {f.execution.execId for f in fills}
    finally:
        ib.disconnect()


# ------------------------------------------------------------------ ids
def test_a_restarted_server_never_reuses_perm_or_exec_ids():
    """Same pinned clock, same orders: the ids must still differ (they come from the wall clock)."""

    async def main():
        async with FakeTWS(now=NOW) as first:
            perms_1, execs_1 = await trade_a_little(first)
        async with FakeTWS(now=NOW) as second:
            perms_2, execs_2 = await trade_a_little(second)
        assert len(execs_1) == len(execs_2) == 6 and len(perms_1) == len(perms_2) == 2
        assert not perms_1 & perms_2 and not execs_1 & execs_2
        assert min(perms_2) > max(perms_1)  # later instances issue larger ids
        # two instances alive at once do not collide either
        async with FakeTWS(now=NOW) as a, FakeTWS(now=NOW) as b:
            (pa, ea), (pb, eb) = await asyncio.gather(trade_a_little(a), trade_a_little(b))
        assert not (pa & pb) and not (ea & eb)
        assert not (pa | pb) & (perms_1 | perms_2) and not (ea | eb) & (execs_1 | execs_2)

    run(main())


# ------------------------------------------------------------------ seeding
def test_seeded_positions_come_back_through_req_positions():
    put = {"symbol": "SPX", "secType": "OPT", "lastTradeDateOrContractMonth": WEEKLY, "strike": 4900.0,
           "right": "P", "tradingClass": "SPXW", "exchange": "SMART"}
    vixy = {"symbol": "VIXY", "secType": "STK", "exchange": "SMART"}

    async def main():
        async with FakeTWS(now=NOW, positions=[(put, -2), (vixy, 100, 14.25)]) as srv:
            ib = await connect(srv)
            held = {p.contract.localSymbol: (p.position, p.avgCost) for p in ib.positions()}
            ib.disconnect()
        assert held["VIXY"] == (100, 14.25)
        qty, avg_cost = held["SPXW  240117P04900000"]
        mid = srv.quote_provider(srv.universe.resolve(put)[0].fields()).mid
        assert qty == -2 and avg_cost == pytest.approx(mid * 100)  # default: the mark, so no P&L at start
        with pytest.raises(ValueError, match="matches 2 contracts"):  # a 3rd Friday without tradingClass
            srv.seed_positions([({**put, "lastTradeDateOrContractMonth": "20240119", "tradingClass": ""}, 1)])
        with pytest.raises(ValueError, match="unknown to this server"):
            srv.seed_positions({123456: 1})

    run(main())


def test_a_restarted_rehearsal_reconciles_like_the_account_it_left():
    """Server A trades and keeps an order working; server B starts from A's positions and working
    order. A client reconnecting to B sees the same positions and order (same permId), and B's next
    ids are new."""

    async def main():
        async with FakeTWS(now=NOW) as a:
            perms_a, execs_a = await trade_a_little(a)
            ib = await connect(a)
            [vixy] = await ib.qualifyContractsAsync(Stock("VIXY", "SMART", "USD"))
            a.set_fill_policy(NeverFill())
            resting = ib.placeOrder(vixy, LimitOrder("BUY", 5, 13.0, orderRef="left-open"))
            await until(lambda: resting.orderStatus.status == "Submitted", what="working order")
            ib.disconnect()
            positions_a = {cid: q for cid, q in a.positions().items()}
            carried = list(a.book.positions.values()), a.book.working_orders()
        async with FakeTWS(now=NOW, positions=carried[0], open_orders=carried[1]) as b:
            ib = await connect(b)
            assert {p.contract.conId: p.position for p in ib.positions()} == positions_a
            [open_trade] = ib.openTrades()
            assert (open_trade.order.orderRef, open_trade.order.permId) == ("left-open", resting.order.permId)
            assert open_trade.orderStatus.status == "Submitted"
            assert ib.client.getReqId() > resting.order.orderId  # nextValidId steps past the carried order
            ib.disconnect()
            perms_b, execs_b = await trade_a_little(b)
            assert not perms_b & (perms_a | {resting.order.permId}) and not execs_b & execs_a
            # a seeded order fills like any other
            b.fill(order_ref="left-open", price=13.0)
            assert b.positions()[vixy.conId] == positions_a[vixy.conId] + 10 + 5

    run(main())


def test_seeded_order_from_fields_and_the_daemons_old_seeding_call():
    from adapters.live.paper_replay import seed_fake_positions
    from engine.instruments import Equity, FutureContract, OptionContract

    async def main():
        async with FakeTWS(now=NOW) as srv:
            [rec] = srv.seed_orders([{"legs": [({"symbol": "SPX", "secType": "OPT", "exchange": "SMART",
                                                  "lastTradeDateOrContractMonth": WEEKLY, "strike": k,
                                                  "right": r, "tradingClass": "SPXW"}, 1, a)
                                                for k, r, a in ((4900, "P", "SELL"), (4850, "P", "BUY"))],
                                       "action": "BUY", "quantity": 2, "limit": -0.5, "client_id": 4,
                                       "order_ref": "spread"}])
            seed_fake_positions(srv, {OptionContract("SPXW", dt.date(2024, 1, 17), 5100.0, "C", "PM"): -1,
                                      FutureContract("VX", dt.date(2024, 2, 14)): 2, Equity("VIXY"): 50})
            ib = await connect(srv, client_id=4)
            assert [(t.order.orderRef, t.order.orderId, t.order.totalQuantity) for t in ib.openTrades()] == [
                ("spread", 1, 2)]
            assert rec.is_bag and rec.perm_id == ib.openTrades()[0].order.permId
            held = sorted((p.contract.secType, p.position) for p in ib.positions())
            ib.disconnect()
        assert held == [("FUT", 2), ("OPT", -1), ("STK", 50)]

    run(main())


# ------------------------------------------------------------------ what a reconnect reports
def at_10am(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(10), tzinfo=ET)


def test_next_day_reconnect_reports_open_orders_and_only_todays_executions():
    """Like TWS: on reconnect the working orders come back, but executions (startup and explicit
    reqExecutions) and completed orders only from today (since midnight, TWS zone)."""

    async def main():
        day1, day2 = dt.date(2024, 1, 10), dt.date(2024, 1, 11)
        async with FakeTWS(now=at_10am(day1)) as srv:
            ib = await connect(srv)
            [vixy] = await ib.qualifyContractsAsync(Stock("VIXY", "SMART", "USD"))
            done = ib.placeOrder(vixy, MarketOrder("BUY", 10, orderRef="day1-done"))
            await until(done.isDone, what="day-1 fill")
            srv.set_fill_policy(NeverFill())
            gtc = ib.placeOrder(vixy, LimitOrder("BUY", 5, 13.0, orderRef="overnight", tif="GTC"))
            await until(lambda: gtc.orderStatus.status == "Submitted", what="working order")
            srv.fill(order_ref="overnight", qty=1)  # partly filled on day 1
            await until(lambda: gtc.orderStatus.filled == 1, what="day-1 partial")
            day1_execs = {f.execution.execId for f in ib.fills()}
            assert len(day1_execs) == 2
            ib.disconnect()

            srv.set_time(at_10am(day2))
            [today] = srv.fill(order_ref="overnight", qty=1)  # while nobody is connected
            ib = await connect(srv)
            # startup reqExecutions brought only today's execution
            assert [f.execution.execId for f in ib.fills()] == [today.exec_id]
            explicit = await asyncio.wait_for(ib.reqExecutionsAsync(), 2)
            assert [f.execution.execId for f in explicit] == [today.exec_id]
            [open_trade] = ib.openTrades()
            assert open_trade.order.orderRef == "overnight" and open_trade.orderStatus.filled == 2
            assert await asyncio.wait_for(ib.reqCompletedOrdersAsync(False), 2) == []  # day 1's fill is history
            assert {p.contract.symbol: p.position for p in ib.positions()} == {"VIXY": 12}
            assert ib.client.getReqId() > gtc.order.orderId  # order ids keep counting across days
            # a same-day reconnect still reports today's execution
            ib.disconnect()
            ib = await connect(srv)
            assert [f.execution.execId for f in ib.fills()] == [today.exec_id]
            ib.disconnect()
        assert day1_execs.isdisjoint({today.exec_id})

    run(main())


# ------------------------------------------------------------------ memory
def trading_days(start: dt.date, n: int) -> list[dt.date]:
    out, d = [], start
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
        d += dt.timedelta(days=1)
    return out


SOAK_SESSIONS = int(os.environ.get("FAKETWS_SOAK_SESSIONS", "40"))  # 250 for the long soak (about 10 s)


def test_many_sessions_over_many_days_keep_the_server_flat():
    """One session a day: connect, round-trip an option expiring tomorrow and some VIXY, read the
    executions, disconnect. Whatever a day adds is gone the next day, so after the first days every
    retained structure stays the same size (and the transcript at its limit)."""
    days = trading_days(dt.date(2024, 1, 10), SOAK_SESSIONS + 1)
    limit = 2_000

    async def one_day(srv: FakeTWS, day: dt.date, expiry: dt.date) -> None:
        srv.set_time(at_10am(day))
        ib = await connect(srv)
        try:
            assert ib.fills() == [] and ib.positions() == []  # yesterday is not replayed
            opt = Option("SPX", f"{expiry:%Y%m%d}", 5000, "C", "SMART", tradingClass="SPXW")
            [opt, vixy] = await ib.qualifyContractsAsync(opt, Stock("VIXY", "SMART", "USD"))
            for action in ("BUY", "SELL"):
                pair = [ib.placeOrder(opt, MarketOrder(action, 1)), ib.placeOrder(vixy, MarketOrder(action, 10))]
                await until(lambda pair=pair: all(t.isDone() for t in pair), what=f"{action} fills on {day}")
            fills = await asyncio.wait_for(ib.reqExecutionsAsync(), 2)
            assert len(fills) == 4 and {f.time.astimezone(ET).date() for f in fills} == {day}
        finally:
            ib.disconnect()
        await until(lambda: not srv.retained_sizes()["sessions"], what="server sees the disconnect")

    async def main():
        sizes = []
        async with FakeTWS(now=at_10am(days[0]), tick_interval=0, transcript_limit=limit) as srv:
            for day, expiry in itertools.pairwise(days):
                await one_day(srv, day, expiry)
                sizes.append(srv.retained_sizes())
        return sizes

    sizes = run(main(), timeout=30 + SOAK_SESSIONS)
    assert all(s["transcript"] <= limit for s in sizes)
    flat = [{k: v for k, v in s.items() if k != "transcript"} for s in sizes]
    assert flat[2] == {"orders": 4, "executions": 4, "positions": 2, "contracts": 7, "sessions": 0,
                       "connection_tasks": 0}, flat[2]
    assert all(s == flat[2] for s in flat[2:]), [s for s in flat if s != flat[2]]
