"""Minimum price variations the fake server quotes on and enforces (error 110).

The client adapter has its own tick rule (adapters/ib/broker.py) and the engine has none. The server
keeps this one on purpose: it is the referee for the adapter's tick rounding, and a rule shared with
the code under test could not catch that code's mistakes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

COMBO_TICK = 0.05  # SPX complex orders price in 0.05 steps
FUTURE_TICK = 0.05  # VX
STOCK_TICK = 0.01


def round_to_tick(x: float, tick: float, mode: str = "nearest") -> float:
    n = x / tick
    if mode == "down":
        n = math.floor(n + 1e-9)
    elif mode == "up":
        n = math.ceil(n - 1e-9)
    else:
        n = round(n)
    return round(n * tick, 10)


def option_tick(price: float) -> float:
    """CBOE index option minimum tick: 0.05 below 3.00, 0.10 from 3.00."""
    return 0.05 if abs(price) < 3.0 - 1e-9 else 0.10


def on_tick(price: float, tick: float) -> bool:
    n = price / tick
    return abs(n - round(n)) < 1e-6


def price_on_tick(price: float, sec_type: str = "", leg_sec_types: Sequence[str] = ()) -> bool:
    """Whether a limit price is on the order's tick: a combo's (legs given; a combo of stocks may also
    use cents) or a single contract's (no sec_type: not checked)."""
    if leg_sec_types:
        return on_tick(price, COMBO_TICK) or on_tick(price, STOCK_TICK) and all(t == "STK" for t in leg_sec_types)
    if not sec_type:
        return True
    if sec_type == "OPT":
        return on_tick(price, option_tick(price))
    if sec_type == "FUT":
        return on_tick(price, FUTURE_TICK)
    return on_tick(price, STOCK_TICK)
