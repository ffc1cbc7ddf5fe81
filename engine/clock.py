"""Clocks. Strategies read time only from a Clock, never from the system."""
from __future__ import annotations

import datetime as dt
from typing import Protocol
from zoneinfo import ZoneInfo

ET = ZoneInfo("America/New_York")


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


class SimulatedClock:
    """Driven by replay: it reads the bus's current dispatch time."""

    def __init__(self, bus) -> None:
        self._bus = bus

    def now(self) -> dt.datetime:
        if self._bus.now is None:
            raise RuntimeError("simulated clock read before the first event")
        return self._bus.now


class WallClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(tz=ET)


def et(date: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(date.year, date.month, date.day, hour, minute, tzinfo=ET)
