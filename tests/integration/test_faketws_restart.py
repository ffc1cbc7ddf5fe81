"""FakeTWS across restarts and sessions, driven by the REAL ib_async client (127.0.0.1 only):
ids a restarted server issues, an account seeded with positions and working orders, what a
reconnect reports, and memory over many sessions."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

pytest.importorskip("ib_async")

from ib_async import IB, LimitOrder, MarketOrder, Stock
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
    from adapters.live.daemon import seed_fake_positions
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
