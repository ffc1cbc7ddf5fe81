"""Minimum price increments: the one place the exchange tick rules live.

CBOE index options (SPX, SPXW, VIX) trade in 0.05 below 3.00 and 0.10 from 3.00; VX futures in 0.05;
shares in 0.01. SPX complex (multi-leg) orders price in 0.05 whatever the legs' prices (a config value of
the daemon, since brokers may differ). The IB adapter rounds its limits with these, the paper-replay quote
grid and the loopback server use the same rule.
"""
from __future__ import annotations

import math

from engine.instruments import FutureContract, Instrument, OptionContract

OPTION_TICK_BREAK = 3.0
FUTURE_TICK = 0.05
SHARE_TICK = 0.01


def option_tick(price: float) -> float:
    """CBOE index option minimum tick at this price: 0.05 below 3.00, 0.10 from 3.00."""
    return 0.05 if abs(price) < OPTION_TICK_BREAK - 1e-9 else 0.10


def instrument_tick(inst: Instrument, price: float) -> float:
    """The minimum tick of one instrument at this (per-unit) price."""
    if isinstance(inst, OptionContract):
        return option_tick(price)
    if isinstance(inst, FutureContract):
        return FUTURE_TICK
    return SHARE_TICK


def floor_tick(x: float, tick: float) -> float:
    """The largest multiple of `tick` not above x (a buyer's limit rounded in the buyer's favour)."""
    return round(math.floor(x / tick + 1e-9) * tick, 10)


def ceil_tick(x: float, tick: float) -> float:
    """The smallest multiple of `tick` not below x (a seller's limit rounded in the seller's favour)."""
    return round(math.ceil(x / tick - 1e-9) * tick, 10)


def on_tick(price: float, tick: float) -> bool:
    n = price / tick
    return abs(n - round(n)) < 1e-6
