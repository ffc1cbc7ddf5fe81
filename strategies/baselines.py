"""Baselines the layered VIX hedge is judged against, on the same condor book and the same costs.

- unhedged: the condor book alone (no hedge strategy at all);
- static: the ALVH layers permanently on (``AlvhParams(kind="static")``, built by strategies.alvh);
- ``VxthHedge``: the Cboe VXTH rule - on each VIX expiration day buy one-month ~30-delta VIX calls,
  spending a share of equity set by the next-month VX future: (15, 30] -> 1.0%, (30, 50] -> 0.5%,
  otherwise nothing; hold them to their own expiration. The index weights on the VX open; the open
  snapshot here carries the prior settlement of that future (the last price known at 09:30), and the
  calls are bought at the open snapshot of expiration day;
- ``SpxPutHedge``: an SPX put tail hedge - buy ~10-delta SPX puts near 90 DTE with ``budget_pct`` of
  equity as premium, sell and re-buy when 30 DTE is left.
"""
from __future__ import annotations

import datetime as dt
import math
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from engine.calendar import listed_expiries
from engine.events import FillEvent, MarketSnapshot, OrderState, OrderStatusEvent, SettlementEvent
from engine.instruments import OptionContract, spx_option, vix_option
from engine.orders import OrderLeg
from engine.params import Params
from engine.strategy import Strategy, StrategyContext, add_fill
from engine.strikes import strike_for_delta, strike_grid, vix_strike_grid
from strategies.alvh.instruments import is_monthly_vix_expiry, live_monthly
from strategies.benchmarks.vxth import VXTH_WEIGHTS, vix_call_weight
from strategies.needs import SeriesNeed


class VxthParams(Params):
    kind: Literal["vxth"] = "vxth"
    book: str = "hedge"
    delta: float = Field(0.30, gt=0, lt=1)
    decision_phase: Literal["open", "close"] = "open"
    table: tuple[tuple[float, float], ...] = Field(VXTH_WEIGHTS, description="(upper bound of the next-month VX "
                                                   "level, share of equity in calls), first match wins")

    def needs(self) -> list[SeriesNeed]:
        """The VX futures (the next-month future sets the weight; VIX calls are priced on their own future)."""
        return [SeriesNeed("vx", "the VXTH-style hedge"), SeriesNeed("vix", "the VXTH-style hedge")]


class _OptionBuyer(Strategy):
    """Shared bookkeeping: what this baseline holds, per instrument, from fills and settlements."""

    def __init__(self, book: str) -> None:
        self.book = book
        self.held: dict[OptionContract, int] = {}
        self.pending: set[str] = set()
        self.trades: list[dict] = []
        self.purchases: list[tuple] = []

    def on_fill(self, fill: FillEvent, ctx: StrategyContext) -> None:
        if fill.intent_id not in self.pending:
            return
        self.pending.discard(fill.intent_id)
        add_fill(self.held, fill)

    def on_order_status(self, event: OrderStatusEvent, ctx: StrategyContext) -> None:
        if event.state in (OrderState.CANCELLED, OrderState.REJECTED):
            self.pending.discard(event.intent_id)

    def on_settlement(self, event: SettlementEvent, ctx: StrategyContext) -> None:
        self.held.pop(event.instrument, None)

    def _buy(self, ctx: StrategyContext, inst: OptionContract, budget: float, date: dt.date) -> None:
        ask = ctx.quotes([inst])[0].ask
        if not (math.isfinite(ask) and ask > 0):
            return
        qty = int(budget // (ask * inst.multiplier))
        if qty < 1:
            return
        self.pending.add(ctx.submit([OrderLeg(inst, 1)], qty, purpose="hedge-buy"))
        self.purchases.append((date, inst.key, qty, ask))

    def _sell_all(self, ctx: StrategyContext) -> None:
        for inst, q in list(self.held.items()):
            if q > 0:
                self.pending.add(ctx.submit([OrderLeg(inst, -1)], q, purpose="hedge-roll"))


class VxthHedge(_OptionBuyer):
    def __init__(self, params: VxthParams | None = None) -> None:
        self.p = params or VxthParams()
        super().__init__(self.p.book)
        self._done: dt.date | None = None

    def on_snapshot(self, snap: MarketSnapshot, ctx: StrategyContext) -> None:
        today = snap.date
        if snap.phase.value != self.p.decision_phase or self._done == today or not is_monthly_vix_expiry(today):
            return
        self._done = today
        m = ctx.market
        live = live_monthly(m)
        if not live:
            return
        e, F = live[0]
        w = vix_call_weight(F, self.p.table)
        if w <= 0:
            return
        grid = vix_strike_grid(F)
        T = m.years_to(vix_option(e, F, "C"))
        d = np.asarray(m.vix_surface(e).delta(grid, np.full(len(grid), T), np.ones(len(grid), dtype=bool)))
        K = float(grid[int(np.argmin(np.abs(d - self.p.delta)))])
        self._buy(ctx, vix_option(e, K, "C"), w * ctx.equity, today)


class SpxPutParams(Params):
    kind: Literal["spx_puts"] = "spx_puts"
    book: str = "hedge"
    target_dte: int = Field(90, ge=7, le=365)
    min_dte: int = Field(60, ge=1)
    max_dte: int = Field(120, ge=1)
    roll_dte: int = Field(30, ge=0)
    delta: float = Field(0.10, gt=0, lt=0.5, description="|put delta| of the strike bought")
    budget_pct: float = Field(0.005, gt=0, le=0.1, description="premium per purchase, fraction of equity")
    decision_phase: Literal["open", "close"] = "close"

    @model_validator(mode="after")
    def _window(self):
        if not self.min_dte <= self.target_dte <= self.max_dte or self.roll_dte >= self.min_dte:
            raise ValueError("spx_puts: need roll_dte < min_dte <= target_dte <= max_dte")
        return self

    def needs(self) -> list[SeriesNeed]:
        why = "the SPX put hedge"
        return [SeriesNeed("spx", why), SeriesNeed("vix", why), SeriesNeed("rate", why)]


class SpxPutHedge(_OptionBuyer):
    def __init__(self, params: SpxPutParams | None = None) -> None:
        self.p = params or SpxPutParams()
        super().__init__(self.p.book)

    def on_snapshot(self, snap: MarketSnapshot, ctx: StrategyContext) -> None:
        if snap.phase.value != self.p.decision_phase or self.pending:
            return
        today = snap.date
        if not (math.isfinite(snap.quotes.spx) and math.isfinite(snap.quotes.vix)):
            return
        due = not self.held or any((o.expiry - today).days <= self.p.roll_dte for o in self.held)
        if not due:
            return
        self._sell_all(ctx)
        p = self.p
        best = None
        for e in listed_expiries(today, p.max_dte):
            exp = e.date.date()
            dte = (exp - today).days
            if p.min_dte <= dte <= p.max_dte:
                score = (abs(dte - p.target_dte), 0 if e.root == "SPX" else 1)
                if best is None or score < best[0]:
                    best = (score, exp, e.root)
        if best is None:
            return
        _, exp, root = best
        m = ctx.market
        T = m.years_to(spx_option(exp, m.spot, "P", root))
        K = strike_for_delta(m.surface, T, p.delta, False, strike_grid(m.spot, today, (exp - today).days))
        self._buy(ctx, spx_option(exp, K, "P", root), p.budget_pct * ctx.equity, today)
