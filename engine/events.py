"""Immutable events that flow through the bus.

Every event carries a timezone-aware timestamp `ts`; the bus orders by (ts, publish sequence), so a
replay of the same input dispatches the same events in the same order.
"""
from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.instruments import Instrument


class Phase(str, enum.Enum):
    OPEN = "open"
    INTRADAY = "intraday"
    CLOSE = "close"


@dataclass(frozen=True, slots=True)
class Event:
    ts: dt.datetime


@dataclass(frozen=True, slots=True)
class MarketQuotes:
    """What is known about the market at one instant. NaN means "not available at this time".

    `vx` maps each live VX contract's expiry to its price in VIX points: at the open that is the prior
    settlement (the day's settle is not known before 4:15 pm ET); at the close, the day's settlement.
    `final_settlements` carries settlement values that become known at this instant (the VX/VIX-option
    SOQ at the open of a VIX expiry day, the SPX SOQ proxy at the open of an SPX AM-expiry day).
    `stale` names what is not a price from this instant (a prior close or settle carried forward, a value IB
    stopped updating): series names ("spx", "vix", "vvix", "skew", "extra", and "vx"/"etps" for all of them)
    or instrument keys ("VX 2018-02-14", "VXX"). Such values may inform a decision; no fill is made at them
    (engine.marketmodel.MarketModel.fresh).
    """

    spx: float
    vix: float
    rate: float  # continuously compounded annual risk-free rate (decimal)
    vix9d: float = math.nan
    vix3m: float = math.nan
    vix6m: float = math.nan
    vvix: float = math.nan
    skew: float = math.nan
    vx: Mapping[dt.date, float] = field(default_factory=dict)
    etps: Mapping[str, float] = field(default_factory=dict)
    extra: Mapping[str, float] = field(default_factory=dict)
    spx_soq: float = math.nan
    vx_final: Mapping[dt.date, float] = field(default_factory=dict)
    stale: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class MarketSnapshot(Event):
    date: dt.date
    phase: Phase
    quotes: MarketQuotes


@dataclass(frozen=True, slots=True)
class SessionEvent(Event):
    """Start/end of a trading session (used by the daemon and by end-of-day bookkeeping)."""

    date: dt.date
    kind: str  # "session_open" | "session_close"


@dataclass(frozen=True, slots=True)
class TimerEvent(Event):
    name: str


class OrderState(str, enum.Enum):
    PENDING = "pending"        # journaled, not yet acknowledged by the broker
    WORKING = "working"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def done(self) -> bool:
        return self in (OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED)


@dataclass(frozen=True, slots=True)
class OrderStatusEvent(Event):
    intent_id: str
    book: str
    state: OrderState
    filled: int
    remaining: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class LegFill:
    instrument: Instrument
    quantity: int      # signed: + bought, - sold
    price: float       # per unit of the instrument, in its quoted points


@dataclass(frozen=True, slots=True)
class FillEvent(Event):
    """One execution of (part of) an order. Multi-leg orders fill all legs together."""

    intent_id: str
    book: str
    exec_id: str
    legs: tuple[LegFill, ...]
    combo_quantity: int
    net_price: float   # per combo unit: sum(ratio * leg price); positive = debit paid
    commission: float  # total commissions and exchange fees in account currency
    purpose: str = ""


@dataclass(frozen=True, slots=True)
class SettlementEvent(Event):
    """An expiring position leaving the book at its settlement value."""

    book: str
    instrument: Instrument
    quantity: int
    settlement_price: float
    cash: float


@dataclass(frozen=True, slots=True)
class EndOfDayEvent(Event):
    """Published after the close snapshot is fully processed: marks, interest and records happen here."""

    date: dt.date
