"""CNDR replica: the Cboe S&P 500 Iron Condor Index rules, traded through the ordinary engine.

Rules (Cboe's published methodology, as summarised in shared/docs/market-facts.md):
- Roll day: the standard SPX monthly expiration, the third Friday, or the preceding business day when that
  Friday is a holiday (engine.calendar.spx_monthly_expiry).
- On the roll day the expiring condor settles at the Special Opening Quotation (AM settlement; the kernel
  settles it at the open snapshot on the SPX open, our SOQ proxy). The new condor is chosen before 11:00 ET:
  we use the open snapshot (09:30) and nothing later.
- New condor: next month's standard (AM-settled) SPX expiry; sell the put and the call whose delta is closest
  to 0.20, buy the put and the call closest to 0.05, on the listed strike grid (engine.strikes.strike_grid),
  deltas from the same model the simulator prices with (MarketModel.deltas).
- Filled at mid: the replica is run with replica_execution() (no spread, slippage or commissions) through the
  same simulated broker as every other strategy.
- Held to AM settlement, no management.
- Collateral: a T-bill account (the ledger's cash earns the T-bill rate every day) that covers ten times the
  condor's maximum possible loss at every roll: quantity = floor(equity / (10 x max loss x 100)), max loss =
  widest wing - credit. Run with a large notional (e.g. $100m) so the integer contract count tracks the
  index's fractional one to within 0.1 %.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import structlog
from pydantic import Field

from engine.calendar import spx_monthly_expiry
from engine.events import FillEvent, MarketSnapshot, OrderState, OrderStatusEvent, Phase, SettlementEvent
from engine.instruments import OptionContract, spx_option
from engine.orders import OrderLeg
from engine.params import Params
from engine.strategy import Strategy, StrategyContext
from engine.strikes import strike_grid

log = structlog.get_logger("alvh.cndr")


class CNDRParams(Params):
    short_delta: float = Field(0.20, gt=0, lt=0.5, description="|delta| of the short put and call")
    long_delta: float = Field(0.05, gt=0, lt=0.5, description="|delta| of the long put and call")
    collateral_multiple: float = Field(10.0, gt=0, description="T-bill collateral / max loss at each roll")
    roll_phase: Phase = Field(Phase.OPEN, description="snapshot on which the new condor is chosen and filled")


def _next_month(d: dt.date) -> tuple[int, int]:
    return (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)


def cndr_roll_dates(start, end) -> list[dt.date]:
    """Every CNDR roll day (SPX standard monthly expiry) in [start, end]."""
    s, e = pd.Timestamp(start).date(), pd.Timestamp(end).date()
    out = []
    y, m = s.year, s.month
    while (y, m) <= (e.year, e.month):
        d = spx_monthly_expiry(y, m).date()
        if s <= d <= e:
            out.append(d)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def closest_to_delta(strikes: Sequence[float], deltas: Sequence[float], target: float) -> float:
    """The strike whose |delta| is closest to |target|. On an exact tie the option further out of the money
    (smaller |delta|) wins, so the rule never depends on the order of the chain."""
    K = np.asarray(strikes, dtype=float)
    d = np.abs(np.asarray(deltas, dtype=float))
    if K.size == 0 or K.size != d.size:
        raise ValueError("closest_to_delta needs one delta per strike")
    ok = np.isfinite(d)
    if not ok.any():
        raise ValueError("no finite delta")
    dist = np.where(ok, np.abs(d - abs(float(target))), np.inf)
    best = dist.min()
    tied = np.flatnonzero(np.abs(dist - best) <= 1e-12)
    i = tied[np.argmin(d[tied])]
    return float(K[i])


class CNDRReplica(Strategy):
    """One iron condor at a time, rolled monthly on the SPX expiry, sized to 10x collateral."""

    def __init__(self, params: CNDRParams | None = None, book: str = "cndr") -> None:
        self.p = params or CNDRParams()
        self.book = book
        self.trades: list[dict] = []
        self.rolls: list[dict] = []
        self._current: dict | None = None
        self._by_intent: dict[str, dict] = {}
        self._last_roll: dt.date | None = None

    # ---- rules ---------------------------------------------------------------------------------
    @staticmethod
    def is_roll_day(d: dt.date) -> bool:
        return spx_monthly_expiry(d.year, d.month).date() == d

    @staticmethod
    def next_expiry(d: dt.date) -> dt.date:
        return spx_monthly_expiry(*_next_month(d)).date()

    def choose_strikes(self, ctx: StrategyContext, date: dt.date, expiry: dt.date) -> tuple[float, float, float, float]:
        """(long put, short put, short call, long call) by model delta on the listed grid."""
        m = ctx.market
        grid = strike_grid(m.spot, date, (expiry - date).days, "SPX")
        puts = [spx_option(expiry, k, "P", "SPX") for k in grid]
        calls = [spx_option(expiry, k, "C", "SPX") for k in grid]
        dp = m.deltas(puts)
        dc = m.deltas(calls)
        p = self.p
        sp = closest_to_delta(grid, dp, p.short_delta)
        lp = closest_to_delta(grid, dp, p.long_delta)
        sc = closest_to_delta(grid, dc, p.short_delta)
        lc = closest_to_delta(grid, dc, p.long_delta)
        # a coarse grid can put both deltas on one strike: move the long wing one listed strike further out
        if lp >= sp:
            lower = grid[grid < sp]
            lp = float(lower[-1]) if len(lower) else math.nan
        if lc <= sc:
            upper = grid[grid > sc]
            lc = float(upper[0]) if len(upper) else math.nan
        return lp, sp, sc, lc

    # ---- hooks ---------------------------------------------------------------------------------
    def on_snapshot(self, snap: MarketSnapshot, ctx: StrategyContext) -> None:
        if snap.phase is not self.p.roll_phase or not self.is_roll_day(snap.date) or self._last_roll == snap.date:
            return
        self._last_roll = snap.date
        q = snap.quotes
        if not (math.isfinite(q.spx) and math.isfinite(q.vix)):
            log.warning("cndr_roll_skipped", date=str(snap.date), reason="no SPX/VIX quote")
            return
        self._roll(snap, ctx)

    def _roll(self, snap: MarketSnapshot, ctx: StrategyContext) -> None:
        m = ctx.market
        expiry = self.next_expiry(snap.date)
        lp, sp, sc, lc = self.choose_strikes(ctx, snap.date, expiry)
        if not all(math.isfinite(k) for k in (lp, sp, sc, lc)) or not (lp < sp < sc < lc):
            log.warning("cndr_roll_skipped", date=str(snap.date), strikes=(lp, sp, sc, lc))
            return
        legs = tuple(spx_option(expiry, k, r, "SPX") for k, r in ((lp, "P"), (sp, "P"), (sc, "C"), (lc, "C")))
        ratios = (1, -1, -1, 1)
        mids = m.mids(legs)
        deltas = m.deltas(legs)
        credit = float(-np.dot(ratios, mids))
        width = max(sp - lp, lc - sc)
        max_loss = width - credit
        equity = ctx.equity
        qty = math.floor(equity / (self.p.collateral_multiple * max_loss * 100.0)) if max_loss > 0 else 0
        roll = {
            "date": snap.date, "expiry": expiry, "spot": m.spot, "vix": m.vix,
            "long_put": lp, "short_put": sp, "short_call": sc, "long_call": lc,
            "delta_long_put": float(deltas[0]), "delta_short_put": float(deltas[1]),
            "delta_short_call": float(deltas[2]), "delta_long_call": float(deltas[3]),
            "credit": credit, "width": width, "max_loss": max_loss, "equity": equity, "quantity": qty,
            "collateral_multiple": equity / (max_loss * 100.0 * qty) if qty else math.nan,
        }
        self.rolls.append(roll)
        if qty < 1:
            log.warning("cndr_roll_skipped", date=str(snap.date), reason="quantity < 1", equity=equity, max_loss=max_loss)
            return
        intent = ctx.submit([OrderLeg(leg, r) for leg, r in zip(legs, ratios)], qty, purpose="roll")
        cur = {"id": intent, "legs": legs, "roll": roll, "settled": 0, "settle_cash": 0.0, "premium": math.nan,
               "status": "pending"}
        self._by_intent[intent] = cur

    def on_fill(self, fill: FillEvent, ctx: StrategyContext) -> None:
        cur = self._by_intent.get(fill.intent_id)
        if cur is None:
            return
        cur["status"] = "open"
        cur["premium"] = -fill.net_price * 100.0 * fill.combo_quantity  # credit received in USD
        cur["fill_credit"] = -fill.net_price
        cur["commission"] = fill.commission
        self._current = cur

    def on_order_status(self, event: OrderStatusEvent, ctx: StrategyContext) -> None:
        cur = self._by_intent.get(event.intent_id)
        if cur is not None and event.state in (OrderState.CANCELLED, OrderState.REJECTED):
            cur["status"] = "void"
            log.warning("cndr_order_not_filled", intent=event.intent_id, state=event.state.value, reason=event.reason)

    def on_settlement(self, event: SettlementEvent, ctx: StrategyContext) -> None:
        cur = self._current
        if cur is None or event.instrument not in cur["legs"]:
            return
        cur["settled"] += 1
        cur["settle_cash"] += event.cash
        if cur["settled"] == len(cur["legs"]):
            r = cur["roll"]
            self.trades.append({
                "id": cur["id"], "entry_date": r["date"], "exit_date": event.ts.date(), "expiry": r["expiry"],
                "long_put": r["long_put"], "short_put": r["short_put"], "short_call": r["short_call"],
                "long_call": r["long_call"], "quantity": r["quantity"], "credit": round(cur["fill_credit"], 4),
                "max_loss": round(r["max_loss"], 4), "settlement_price_spx": ctx.market.quotes.spx_soq,
                "exit_reason": "expired",
                "pnl": round(cur["premium"] + cur["settle_cash"] - cur.get("commission", 0.0), 2),
            })
            self._current = None

    def position_legs(self) -> tuple[OptionContract, ...]:
        return self._current["legs"] if self._current else ()
