"""Execution simulation: quotes around the model mid, fills, commissions and fees.

The model produces mid prices; real markets charge a spread that widens with price and with stress.
Every number here is a config value with a documented default (docs/assumptions.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from engine.instruments import Equity, FutureContract, Instrument, OptionContract
from engine.params import Params


class SpreadParams(Params):
    """Half-spread = clip(base + pct * mid, min_half, max_half) * stress, stress = 1 + vix_k * max(0, VIX - 20) / 20."""

    base: float = Field(ge=0)
    pct: float = Field(ge=0)
    min_half: float = Field(ge=0)
    max_half: float = Field(gt=0)
    tick: float = Field(gt=0)


def _default_spreads() -> dict[str, SpreadParams]:
    return {
        # SPX: a 2.00 option ~1.90/2.10, a 10.00 option ~9.80/10.20, a 30.00 option ~29.50/30.50
        "spx_option": SpreadParams(base=0.05, pct=0.015, min_half=0.05, max_half=3.0, tick=0.05),
        "vix_option": SpreadParams(base=0.02, pct=0.025, min_half=0.01, max_half=1.0, tick=0.01),
        "vx_future": SpreadParams(base=0.025, pct=0.0, min_half=0.025, max_half=0.5, tick=0.05),
        "etp": SpreadParams(base=0.0, pct=0.0005, min_half=0.005, max_half=1.0, tick=0.01),
    }


class CostParams(Params):
    """Per contract (per share for ETPs), per side, in USD: broker commission plus exchange/regulatory fees."""

    spx_option: float = Field(1.25, ge=0, description="IB ~0.65 + Cboe SPX exchange/ORF/OCC ~0.60")
    vix_option: float = Field(1.10, ge=0, description="IB ~0.65 + Cboe VIX fees ~0.45")
    vx_future: float = Field(2.50, ge=0, description="IB ~0.85 + CFE/NFA fees ~1.65")
    etp_per_share: float = Field(0.005, ge=0)
    etp_min_per_order: float = Field(1.0, ge=0)


class ExecutionParams(Params):
    spreads: dict[str, SpreadParams] = Field(default_factory=_default_spreads)
    costs: CostParams = Field(default_factory=CostParams)
    spread_paid_combo: float = Field(0.5, ge=0, le=1, description="fraction of each leg's half-spread paid by a multi-leg order")
    spread_paid_single: float = Field(1.0, ge=0, le=1, description="fraction of the half-spread paid by a single-leg order")
    slippage_ticks: float = Field(0.5, ge=0, description="extra ticks per leg beyond the spread paid")
    stress_vix_k: float = Field(0.5, ge=0, description="spread stress multiplier slope vs VIX above 20")
    fill_timing: Literal["same_snapshot", "next_snapshot"] = "same_snapshot"


def instrument_class(inst: Instrument) -> str:
    if isinstance(inst, OptionContract):
        return "vix_option" if inst.root == "VIX" else "spx_option"
    if isinstance(inst, FutureContract):
        return "vx_future"
    if isinstance(inst, Equity):
        return "etp"
    raise TypeError(f"unknown instrument {inst!r}")


@dataclass(frozen=True, slots=True)
class Quote:
    bid: float
    ask: float

    @property
    def mid(self) -> float:
        return 0.5 * (self.bid + self.ask)


class ExecutionSimulator:
    def __init__(self, params: ExecutionParams | None = None) -> None:
        self.params = params or ExecutionParams()

    def half_spreads(self, classes: list[str], mids: np.ndarray, vix: float) -> np.ndarray:
        p = self.params
        stress = 1.0 + p.stress_vix_k * max(0.0, (vix - 20.0) / 20.0) if np.isfinite(vix) else 1.0
        out = np.empty(len(classes))
        for i, (cls, mid) in enumerate(zip(classes, mids)):
            s = p.spreads[cls]
            out[i] = min(max(s.base + s.pct * abs(mid), s.min_half), s.max_half) * stress
        return out

    def quotes(self, instruments: list[Instrument], mids: np.ndarray, vix: float) -> list[Quote]:
        classes = [instrument_class(i) for i in instruments]
        hs = self.half_spreads(classes, mids, vix)
        out = []
        for cls, mid, h in zip(classes, mids, hs):
            tick = self.params.spreads[cls].tick
            bid = max(mid - h, 0.0)
            ask = max(mid + h, tick)
            out.append(Quote(bid, ask))
        return out

    def fill_prices(self, instruments: list[Instrument], ratios: list[int], mids: np.ndarray,
                    vix: float) -> np.ndarray:
        """Per-leg execution prices: a buy pays above mid, a sell receives below, never below zero."""
        p = self.params
        paid = p.spread_paid_combo if len(instruments) > 1 else p.spread_paid_single
        classes = [instrument_class(i) for i in instruments]
        hs = self.half_spreads(classes, mids, vix)
        prices = np.empty(len(instruments))
        for i, (cls, mid, h, ratio) in enumerate(zip(classes, mids, hs, ratios)):
            tick = p.spreads[cls].tick
            adj = paid * h + p.slippage_ticks * tick
            px = mid + adj if ratio > 0 else mid - adj
            prices[i] = max(px, 0.0)
        return prices

    def commission(self, instruments: list[Instrument], quantities: list[int]) -> float:
        c = self.params.costs
        total = 0.0
        for inst, qty in zip(instruments, quantities):
            n = abs(qty)
            cls = instrument_class(inst)
            if cls == "etp":
                total += max(c.etp_per_share * n, c.etp_min_per_order)
            else:
                total += getattr(c, cls) * n
        return total
