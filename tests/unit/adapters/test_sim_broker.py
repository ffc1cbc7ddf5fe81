"""Which prices are of this instant (MarketModel.fresh), and the simulated broker deferring an order on a stale
price to the first snapshot where it is fresh."""
import datetime as dt

import pytest

from adapters.sim.broker import SimulatedBroker
from engine.bus import EventBus
from engine.clock import ET
from engine.events import FillEvent, MarketQuotes, MarketSnapshot, OrderStatusEvent, Phase
from engine.instruments import Equity, spx_option, vix_option, vx_future
from engine.marketmodel import MarketModel, PricingParams
from engine.orders import OrderLeg, OrderRequest

DAY = dt.date(2018, 2, 5)
FEB, MAR = dt.date(2018, 2, 14), dt.date(2018, 3, 21)


def snapshot(phase: Phase, stale=frozenset(), feb=16.15) -> MarketSnapshot:
    hour = 9 if phase is Phase.OPEN else 16
    q = MarketQuotes(spx=2741.0, vix=18.4, rate=0.015, vvix=100.0, skew=130.0, vx={FEB: feb, MAR: 15.3},
                     etps={"VXX": 45.0}, stale=frozenset(stale))
    return MarketSnapshot(dt.datetime(2018, 2, 5, hour, 30 if hour == 9 else 0, tzinfo=ET), DAY, phase, q)


def model(snap) -> MarketModel:
    return MarketModel(snap, PricingParams())


def test_fresh_follows_the_stale_names_of_the_snapshot():
    m = model(snapshot(Phase.OPEN, {"vvix", "skew", "VXX", "VX 2018-03-21"}))
    assert m.fresh(vx_future(FEB)) and not m.fresh(vx_future(MAR))
    assert not m.fresh(Equity("VXX"))
    assert m.fresh(spx_option(dt.date(2018, 3, 16), 2600, "P"))
    # a VIX option's vol level comes from VVIX: stale VVIX makes it stale even with a fresh forward
    assert not m.fresh(vix_option(FEB, 20, "C"))
    spx_stale = model(snapshot(Phase.OPEN, {"spx"}))
    assert not spx_stale.fresh(spx_option(dt.date(2018, 3, 16), 2600, "P"))
    assert spx_stale.fresh(vix_option(FEB, 20, "C"))   # VVIX fresh, forward fresh
    everything = model(snapshot(Phase.OPEN, {"vx", "etps"}))
    assert not everything.fresh(vx_future(FEB)) and not everything.fresh(Equity("SVXY"))
    assert model(snapshot(Phase.CLOSE)).fresh(vix_option(FEB, 20, "C"))


def _broker(fill_timing: str = "same_snapshot"):
    from engine.execution import ExecutionParams, ExecutionSimulator

    bus = EventBus()
    broker = SimulatedBroker(ExecutionSimulator(ExecutionParams(fill_timing=fill_timing)))
    broker.bind(bus)
    fills, states = [], []
    bus.subscribe(FillEvent, fills.append)
    bus.subscribe(OrderStatusEvent, lambda ev: states.append((ev.state.value, ev.reason)))
    return bus, broker, fills, states


def _at(bus, broker, snap):
    bus.publish(snap)   # nothing subscribes to snapshots here: this moves the bus clock to the snapshot
    bus.run()
    broker.on_market(model(snap))


@pytest.mark.parametrize("fill_timing", ["same_snapshot", "next_snapshot"])
def test_an_order_on_a_stale_price_waits_for_the_close_and_fills_there(fill_timing):
    bus, broker, fills, states = _broker(fill_timing)
    _at(bus, broker, snapshot(Phase.OPEN, {"VX 2018-03-21"}))
    order = OrderRequest("h-1", "hedge", (OrderLeg(vx_future(MAR), 1),), 3, purpose="hedge")
    broker.submit(order)
    bus.run()
    if fill_timing == "next_snapshot":   # decided now, first tried at the next snapshot
        _at(bus, broker, snapshot(Phase.OPEN, {"VX 2018-03-21"}))
    assert fills == [] and broker.working_orders() == [order]
    broker.end_of_session()   # a deferred order has not met the market: it does not expire
    bus.run()
    assert broker.working_orders() == [order] and all(s != "cancelled" for s, _ in states)
    close = snapshot(Phase.CLOSE)
    _at(bus, broker, close)
    bus.run()
    assert len(fills) == 1 and fills[0].ts == close.ts and broker.working_orders() == []
    # the close price (15.3) plus the VX half-spread and slippage, not the prior settlement at the open
    assert fills[0].legs[0].price == pytest.approx(15.3 + 0.025 + 0.025)


def test_a_fresh_vx_open_fills_at_the_open():
    bus, broker, fills, _ = _broker()
    _at(bus, broker, snapshot(Phase.OPEN, {"vvix", "skew", "VXX", "VX 2018-03-21"}))
    broker.submit(OrderRequest("h-2", "hedge", (OrderLeg(vx_future(FEB), 1),), 1, purpose="hedge"))
    bus.run()
    assert len(fills) == 1 and fills[0].legs[0].price == pytest.approx(16.15 + 0.05)
