"""Synchronous, deterministic event bus.

Events are dispatched in (timestamp, publish sequence) order. Handlers may publish; an event published
with the timestamp being dispatched runs after everything already queued for that instant, so the
order of effects is fully determined by the order of publication.
"""
from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from collections.abc import Callable

from engine.events import Event

Handler = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._queue: list[tuple] = []
        self._seq = itertools.count()
        self._handlers: dict[type, list[Handler]] = defaultdict(list)
        self._resolved: dict[type, tuple[Handler, ...]] = {}
        self.dispatched = 0
        self.now = None  # timestamp of the event being dispatched

    def subscribe(self, event_type: type, handler: Handler) -> None:
        """Handlers of a type run in subscription order; subscribing to a base class sees subclasses."""
        self._handlers[event_type].append(handler)
        self._resolved.clear()

    def publish(self, event: Event) -> None:
        if self.now is not None and event.ts < self.now:
            raise ValueError(f"event {type(event).__name__} at {event.ts} is earlier than bus time {self.now}")
        heapq.heappush(self._queue, (event.ts, next(self._seq), event))

    def publish_and_run(self, event: Event) -> int:
        """publish(event), then run(); with nothing queued the event goes to its handlers without the queue (what
        run() would do with it alone: the replay's snapshots). Returns the count dispatched."""
        if self._queue:
            self.publish(event)
            return self.run()
        if self.now is not None and event.ts < self.now:
            raise ValueError(f"event {type(event).__name__} at {event.ts} is earlier than bus time {self.now}")
        self.now = event.ts
        handlers = self._resolved.get(type(event))
        for handler in handlers if handlers is not None else self._handlers_for(type(event)):
            handler(event)
        self.dispatched += 1
        return 1 + self.run()

    def _handlers_for(self, event_type: type) -> tuple[Handler, ...]:
        handlers = self._resolved.get(event_type)
        if handlers is None:
            handlers = tuple(h for cls in event_type.__mro__ for h in self._handlers.get(cls, ()))
            self._resolved[event_type] = handlers
        return handlers

    def run(self, until=None) -> int:
        """Dispatch queued events (up to and including `until`, if given). Returns the count dispatched."""
        queue = self._queue
        resolved = self._resolved
        n = 0
        while queue:
            if until is not None and queue[0][0] > until:
                break
            ts, _, event = heapq.heappop(queue)
            self.now = ts
            handlers = resolved.get(type(event))
            for handler in handlers if handlers is not None else self._handlers_for(type(event)):
                handler(event)
            n += 1
        self.dispatched += n
        return n

    def pending(self) -> int:
        return len(self._queue)
