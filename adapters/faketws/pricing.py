"""Option values for the fake server's quotes, in the units TWS sends them: vega per vol point, theta
per calendar day. The maths is the engine's (engine/pricing.py); this module only converts units."""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine import pricing as engine_pricing


@dataclass
class Greeks:
    price: float
    delta: float
    gamma: float
    vega: float  # per 1 vol point (0.01)
    theta: float  # per calendar day


def _is_call(right: str) -> bool:
    return right.upper().startswith("C")


def bs_price(S: float, K: float, T: float, r: float, q: float, sigma: float, right: str) -> Greeks:
    """Black-Scholes-Merton on a spot with continuous yield q."""
    call = _is_call(right)
    g = engine_pricing.bsm_greeks(S, K, T, r, q, sigma, call)
    price = engine_pricing.bsm_price(S, K, T, r, q, sigma, call)
    return Greeks(max(price, 0.0), g.delta, g.gamma, g.vega / 100.0, g.theta / 365.0)


def black76(F: float, K: float, T: float, r: float, sigma: float, right: str) -> Greeks:
    """Black-76 on a futures price (VIX options on the VX future)."""
    call = _is_call(right)
    g = engine_pricing.black76_greeks(F, K, T, r, sigma, call)
    price = engine_pricing.black76_price(F, K, T, r, sigma, call)
    return Greeks(max(price, 0.0), g.delta, g.gamma, g.vega / 100.0, g.theta / 365.0)


def implied_vol(price: float, S: float, K: float, T: float, r: float, q: float, right: str) -> float | None:
    """BSM implied vol; None when the price is outside the no-arbitrage band."""
    if price is None or T <= 0 or price <= 0:
        return None
    iv = engine_pricing.implied_vol(price, S, K, T, r, q, _is_call(right))
    return iv if math.isfinite(iv) else None
