import datetime as dt

import pytest

from engine.bus import EventBus
from engine.clock import ET
from engine.events import Event, TimerEvent


def ts(h, m=0):
    return dt.datetime(2024, 1, 2, h, m, tzinfo=ET)


def test_orders_by_timestamp_then_publication_sequence():
    bus = EventBus()
    seen = []
    bus.subscribe(TimerEvent, lambda e: seen.append(e.name))
    bus.publish(TimerEvent(ts(10), "b"))
    bus.publish(TimerEvent(ts(9), "a"))
    bus.publish(TimerEvent(ts(10), "c"))
    bus.run()
    assert seen == ["a", "b", "c"]


def test_handler_publications_run_after_queued_events_of_same_instant():
    bus = EventBus()
    seen = []

    def handler(e):
        seen.append(e.name)
        if e.name == "first":
            bus.publish(TimerEvent(e.ts, "child"))

    bus.subscribe(TimerEvent, handler)
    bus.publish(TimerEvent(ts(9), "first"))
    bus.publish(TimerEvent(ts(9), "second"))
    bus.run()
    assert seen == ["first", "second", "child"]


def test_base_class_subscription_sees_subclasses_and_past_events_are_refused():
    bus = EventBus()
    seen = []
    bus.subscribe(Event, lambda e: seen.append(type(e).__name__))
    bus.publish(TimerEvent(ts(9), "x"))
    bus.run()
    assert seen == ["TimerEvent"]
    with pytest.raises(ValueError):
        bus.publish(TimerEvent(ts(8), "late"))


def test_run_until_stops_before_later_events():
    bus = EventBus()
    seen = []
    bus.subscribe(TimerEvent, lambda e: seen.append(e.name))
    bus.publish(TimerEvent(ts(9), "a"))
    bus.publish(TimerEvent(ts(11), "b"))
    assert bus.run(until=ts(10)) == 1
    assert seen == ["a"] and bus.pending() == 1


def test_publish_and_run_dispatches_like_publish_then_run():
    def record(bus, seen):
        def handler(e):
            seen.append(e.name)
            if e.name in ("first", "queued"):
                bus.publish(TimerEvent(e.ts, f"child of {e.name}"))
        bus.subscribe(TimerEvent, handler)

    direct, queued = EventBus(), EventBus()
    a, b = [], []
    record(direct, a)
    record(queued, b)
    assert direct.publish_and_run(TimerEvent(ts(9), "first")) == 2            # empty queue: no heap for it
    queued.publish(TimerEvent(ts(9), "first"))
    queued.run()
    assert a == b == ["first", "child of first"] and direct.dispatched == queued.dispatched == 2
    direct.publish(TimerEvent(ts(10), "queued"))                               # something waiting: through the queue
    assert direct.publish_and_run(TimerEvent(ts(10), "second")) == 3
    assert a[2:] == ["queued", "second", "child of queued"]
    with pytest.raises(ValueError):
        direct.publish_and_run(TimerEvent(ts(8), "late"))
