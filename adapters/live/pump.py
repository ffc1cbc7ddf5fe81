"""The one way the live side hands events to the engine: publish them and run the bus inside ONE store
transaction, together with everything the handlers changed (journal rows, fills, ledger, strategy states).

A crash therefore leaves either all of it or none of it. Re-entrant: events published while the bus runs (a
broker reacting to a strategy's order) join the running dispatch instead of opening a second transaction.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from engine.bus import EventBus
from engine.events import Event
from engine.ports import OrderJournal


class Pump:
    def __init__(self, bus: EventBus, journal: OrderJournal, *, persist: Callable[[], None] | None = None,
                 after: Callable[[], None] | None = None, on_error: Callable[[Exception], None] | None = None) -> None:
        self.bus = bus
        self.journal = journal
        self.persist = persist          # write the state the handlers changed, inside the transaction
        self.after = after              # after the commit (e.g. send the orders the strategies decided)
        self.on_error = on_error
        self.running = False

    def __call__(self, events: Sequence[Event], then: Callable[[], None] | None = None) -> None:
        """Dispatch `events`; `then` runs inside the same transaction once the bus is idle (e.g. a job's
        done-marker, committed with the decision it made)."""
        if self.running:
            for ev in events:
                self.bus.publish(ev)
            return
        self.running = True
        try:
            with self.journal.transaction():
                for ev in events:
                    self.bus.publish(ev)
                self.bus.run()
                if then is not None:
                    then()
                if self.persist is not None:
                    self.persist()
                    # persisting can itself publish (a halt the engine set cancels queued orders): dispatch
                    # those in this transaction too, and persist what they changed
                    for _ in range(3):
                        if not self.bus.pending():
                            break
                        self.bus.run()
                        self.persist()
        except Exception as e:
            if self.on_error is not None:
                self.on_error(e)
            raise
        finally:
            self.running = False
        if self.after is not None:
            self.after()
