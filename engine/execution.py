"""Execution simulation: quotes around the model mid, fills, commissions and fees.

The model produces mid prices; real markets charge a spread that widens with price and with stress.
Every number here is a config value with a documented default (docs/assumptions.md).
"""
from __future__ import annotations

import math
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
    t = type(inst)
    if t is OptionContract:
        return "vix_option" if inst.root == "VIX" else "spx_option"
    if t is FutureContract:
        return "vx_future"
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


@dataclass(frozen=True, slots=True)
class OrderTerms:
    """An order at one snapshot's mids: per-leg instruments, ratios, mids and, when every mid is finite, fill
    prices, signed quantities and the commission (else prices/quantities are None and commission NaN)."""
    instruments: list[Instrument]
    ratios: list[int]
    mids: list[float]
    prices: list[float] | None
    quantities: list[int] | None
    commission: float


class ExecutionSimulator:
    def __init__(self, params: ExecutionParams | None = None) -> None:
        self.params = params or ExecutionParams()

    @property
    def params(self) -> ExecutionParams:
        return self._params

    @params.setter
    def params(self, value: ExecutionParams) -> None:
        self._params = value
        # per class (base, pct, min_half, max_half, tick): read on every quote and fill
        self._spread = {k: (s.base, s.pct, s.min_half, s.max_half, s.tick) for k, s in value.spreads.items()}
        self._last_terms: tuple | None = None

    def _stress(self, vix: float) -> float:
        return 1.0 + self._params.stress_vix_k * max(0.0, (vix - 20.0) / 20.0) if math.isfinite(vix) else 1.0

    def half_spreads(self, classes: list[str], mids, vix: float) -> np.ndarray:
        return np.array(self._half_spreads(classes, mids, self._stress(vix)), dtype=float)

    def _half_spreads(self, classes: list[str], mids, stress: float) -> list[float]:
        spread = self._spread
        out = []
        for cls, mid in zip(classes, mids):
            base, pct, lo, hi, _ = spread[cls]
            out.append(min(max(base + pct * abs(mid), lo), hi) * stress)
        return out

    def quotes(self, instruments: list[Instrument], mids, vix: float) -> list[Quote]:
        classes = [instrument_class(i) for i in instruments]
        hs = self._half_spreads(classes, mids, self._stress(vix))
        spread = self._spread
        out = []
        for cls, mid, h in zip(classes, mids, hs):
            bid = max(mid - h, 0.0)
            ask = max(mid + h, spread[cls][4])
            out.append(Quote(bid, ask))
        return out

    def fill_prices(self, instruments: list[Instrument], ratios: list[int], mids,
                    vix: float) -> np.ndarray:
        """Per-leg execution prices: a buy pays above mid, a sell receives below, never below zero."""
        return np.array(self.fill_price_list(instruments, ratios, mids, vix), dtype=float)

    def fill_price_list(self, instruments: list[Instrument], ratios: list[int], mids, vix: float) -> list[float]:
        """fill_prices() as a list of floats (the kernel's and the simulated broker's scalar path)."""
        p = self._params
        paid = p.spread_paid_combo if len(instruments) > 1 else p.spread_paid_single
        slip = p.slippage_ticks
        classes = [instrument_class(i) for i in instruments]
        hs = self._half_spreads(classes, mids, self._stress(vix))
        spread = self._spread
        prices = []
        for cls, mid, h, ratio in zip(classes, mids, hs, ratios):
            adj = paid * h + slip * spread[cls][4]
            px = mid + adj if ratio > 0 else mid - adj
            prices.append(max(px, 0.0))
        return prices

    def order_terms(self, order, market) -> OrderTerms:
        """`order` (an OrderRequest) at `market`'s mids (a MarketModel). The pre-trade check and the simulated
        broker's fill ask for the same order at the same snapshot one after the other, so the last answer is
        kept (one slot, matched by identity: an order and a snapshot's market model do not change)."""
        last = self._last_terms
        if last is not None and last[0] is order and last[1] is market:
            return last[2]
        legs = order.legs
        insts = [leg.instrument for leg in legs]
        ratios = [leg.ratio for leg in legs]
        mids = market.mid_list(insts)
        if all(map(math.isfinite, mids)):
            qtys = [r * order.quantity for r in ratios]
            terms = OrderTerms(insts, ratios, mids, self.fill_price_list(insts, ratios, mids, market.vix), qtys,
                               self.commission(insts, qtys))
        else:
            terms = OrderTerms(insts, ratios, mids, None, None, math.nan)
        self._last_terms = (order, market, terms)
        return terms

    def commission(self, instruments: list[Instrument], quantities: list[int]) -> float:
        c = self._params.costs
        total = 0.0
        for inst, qty in zip(instruments, quantities):
            n = abs(qty)
            cls = instrument_class(inst)
            if cls == "etp":
                total += max(c.etp_per_share * n, c.etp_min_per_order)
            else:
                total += getattr(c, cls) * n
        return total
