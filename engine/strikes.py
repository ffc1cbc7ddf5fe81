"""Listed-strike grids for SPX and VIX options, and delta-targeted strike selection.

The grids are era-dependent simplifications of the real Cboe listings (documented in
docs/pricing.md): they decide which strikes a strategy may trade, not prices.
"""
from __future__ import annotations

import datetime as _dt
import math
from functools import lru_cache

import numpy as np
import pandas as pd

from engine.regime_surface import RegimeSurface
from engine.volsurface import SpxSurface

__all__ = ["strike_for_delta", "strike_grid", "vix_strike_grid"]

# (first year of era, 5-pt band low, 5-pt band high, intermediate 10-pt band low) as multiples of spot
# for expiries up to _NEAR_DAYS; outside the 5-point band strikes are 25 points apart (10 points in
# [mid_low, band_low) from 2015), out to +/- 50 % of spot.
_ERAS = (
    (0, 0.90, 1.10, None),      # before 2010: "five points; 25-point intervals for far months"
    (2010, 0.85, 1.12, None),
    (2015, 0.80, 1.15, 0.70),   # 2022-2024 chain snapshots: 5-pt ~0.77-1.16 x spot for standard series
)
_NEAR_DAYS = 180.0   # beyond this, only 25-point strikes (LEAPS-like granularity)
_RANGE = 0.50        # grid spans spot * (1 -/+ _RANGE)


def _year(as_of) -> int:
    if isinstance(as_of, (_dt.date, pd.Timestamp)):
        return as_of.year
    return pd.Timestamp(as_of).year


@lru_cache(maxsize=4096)
def _grid(spot_key: int, year: int, near: bool) -> np.ndarray:
    spot = spot_key / 100.0
    era = _ERAS[0]
    for e in _ERAS:
        if year >= e[0]:
            era = e
    _, b_lo, b_hi, mid_lo = era
    lo = max(25.0, math.floor(spot * (1.0 - _RANGE) / 25.0) * 25.0)
    hi = math.ceil(spot * (1.0 + _RANGE) / 25.0) * 25.0
    parts = [np.arange(lo, hi + 1e-9, 25.0)]
    if near:
        f_lo = math.floor(spot * b_lo / 5.0) * 5.0
        f_hi = math.ceil(spot * b_hi / 5.0) * 5.0
        parts.append(np.arange(max(f_lo, 5.0), f_hi + 1e-9, 5.0))
        if mid_lo is not None:
            t_lo = math.floor(spot * mid_lo / 10.0) * 10.0
            parts.append(np.arange(max(t_lo, 10.0), f_lo + 1e-9, 10.0))
    g = np.unique(np.concatenate(parts))
    g = g[(g >= lo) & (g <= hi)]
    g.setflags(write=False)
    return g


def strike_grid(spot: float, as_of, T_days: float, root: str = "SPX") -> np.ndarray:
    """Sorted SPX/SPXW strikes assumed listed on ``as_of`` for an expiry ``T_days`` away.

    5-point strikes in an era-dependent band around spot (before 2010: 0.90-1.10 x spot;
    2010-2014: 0.85-1.12; from 2015: 0.80-1.15 with 10-point strikes down to 0.70), 25-point strikes
    elsewhere out to +/- 50 % of spot; expiries beyond 180 days get 25-point strikes only.  ``root``
    is accepted for API symmetry (SPX and SPXW use the same simplified grid).  Read-only array."""
    if root not in ("SPX", "SPXW"):
        raise ValueError(f"unknown root {root!r}")
    return _grid(round(float(spot) * 100.0), _year(as_of), float(T_days) <= _NEAR_DAYS)


def strike_for_delta(surface: SpxSurface | RegimeSurface, T: float, target_delta: float, is_call: bool,
                     grid: np.ndarray) -> float:
    """Grid strike whose surface delta is closest to the target.  ``target_delta`` is read as an
    absolute value: 0.16 with is_call=False targets a put delta of -0.16."""
    target = abs(float(target_delta)) * (1.0 if is_call else -1.0)
    K = np.asarray(grid, dtype=float)
    T = float(T)
    call = bool(is_call)
    # Delta falls as the strike rises (calls 1 -> 0, puts 0 -> -1): bisect on the grid with the scalar
    # delta (a dozen evaluations) instead of pricing every listed strike, then take the nearer neighbour.
    lo, hi = 0, len(K) - 1
    if surface.delta1(K[lo], T, call) <= target:
        return float(K[lo])
    if surface.delta1(K[hi], T, call) >= target:
        return float(K[hi])
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if surface.delta1(K[mid], T, call) > target:
            lo = mid
        else:
            hi = mid
    d_lo, d_hi = surface.delta1(K[lo], T, call), surface.delta1(K[hi], T, call)
    return float(K[lo] if abs(d_lo - target) <= abs(d_hi - target) else K[hi])


def vix_strike_grid(F: float) -> np.ndarray:
    """VIX option strikes around a VX future level F: 0.5-point steps below 15, 1-point from 15 to
    30, 2.5-point from 30 to 50, 5-point above 50 (a composite of Cboe listings; see docs).  Spans
    from max(5, 0.4 F) to max(60, 3 F), rounded to the local step."""
    F = float(F)
    lo = max(5.0, math.floor(0.4 * F * 2.0) / 2.0)
    hi = max(60.0, math.ceil(3.0 * F / 5.0) * 5.0)
    parts = []
    for a, b, step in ((0.0, 15.0, 0.5), (15.0, 30.0, 1.0), (30.0, 50.0, 2.5), (50.0, 1e9, 5.0)):
        s = max(a, math.ceil(lo / step) * step)
        e = min(b, hi)
        if s < e:
            parts.append(np.arange(s, e - 1e-9, step))
    parts.append(np.array([hi]))
    g = np.unique(np.round(np.concatenate(parts), 4))
    return g[(g >= lo) & (g <= hi)]
