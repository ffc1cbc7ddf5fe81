"""VXTH replica: the Cboe VIX Tail Hedge Index rules, traded through the ordinary engine.

Rules (Cboe's published methodology, summarised in shared/docs/market-facts.md):
- Hold the S&P 500 total return (price index plus reinvested dividends).
- Buy one-month ~30-delta VIX calls on every VIX expiration day (the "roll"): the calls expire on the next
  VIX expiration and settle at its VRO (the kernel settles them at the open on the final VX settlement).
- Call weight, as a fraction of the portfolio, set by the level of the VX future of the same expiry as the
  calls bought: <= 15 -> 0 %, 15-30 -> 1.0 %, 30-50 -> 0.5 %, > 50 -> 0 %.
- At each roll the expired calls' settlement value is folded back into the portfolio, which is then split
  again: weight w into new calls, 1 - w into the S&P 500 total return.

How it runs here:
- Both legs are real positions in the ledger, bought and sold through the simulated broker at model mid
  (replica_execution(): no spread, slippage or commissions). The S&P 500 leg is shares of Equity("SPXTR"),
  the S&P 500 total-return index the replay publishes like an ETP (adapters.sim.replay; engine.dividends builds
  it). The calls are marked every close by the same VIX-option model as every other strategy (MarketModel /
  VixOptionSurface).
- The account starts at `notional` and holds nothing but the replica, so the kernel's account equity IS the
  VXTH index (`VXTHReplica.daily` / `index_series()` read it). Whole shares leave a cash residue of less than
  one index level (a few thousand dollars on the default 1e8, < 0.005 %), which earns the T-bill rate.
- Sizing: on the first snapshot all cash buys SPXTR. At the open of each roll day the expired calls have
  settled and their cash buys SPXTR; when the calls are bought, SPXTR is sold so that the S&P 500 leg is the
  portfolio value less the premium. The calls and that SPXTR sale are one combo order (one combo unit, leg
  ratios = the call and share quantities), so the premium comes out of the S&P 500 leg, as in the real index,
  without the account ever borrowing cash.
- Roll timing: the expired calls settle at the open of the VIX expiration day (VRO) and the weight is fixed
  then, from the same-expiry VX future as the open snapshot shows it. That snapshot carries each VX contract at
  its prior settlement (the day's opening VX prices are not part of the replay's snapshot); docs/fidelity.md
  counts the roll days on which that changes the weight bracket against the real opening price. The calls are
  bought later that day: replay has no intraday snapshot, so by default at the close snapshot
  (`buy_phase = "close"`), with the strike chosen by delta on the close's model; `buy_phase = "open"` buys them
  at the open instead. The choice matters in spike quarters and docs/fidelity.md shows it.

S&P 500 dividends: engine.dividends (SPX_DIVIDEND_POINTS, SPXTotalReturn, re-exported here) holds the annual
dividend points and the accrual rule of the total-return index.
"""
from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import structlog
from pydantic import Field

from engine.calendar import vix_expiry
from engine.dividends import SPX_DIVIDEND_POINTS, SPXTotalReturn
from engine.events import FillEvent, MarketSnapshot, OrderState, OrderStatusEvent, Phase, SettlementEvent
from engine.instruments import Equity, vix_option
from engine.orders import OrderLeg
from engine.params import Params
from engine.strategy import Strategy, StrategyContext
from engine.strikes import vix_strike_grid

from .cndr import closest_to_delta

log = structlog.get_logger("alvh.vxth")

SPX_TR = Equity("SPXTR")        # the S&P 500 total-return index as the replay publishes it

__all__ = [
    "SPX_DIVIDEND_POINTS",
    "SPX_TR",
    "VXTH_WEIGHTS",
    "SPXTotalReturn",
    "VXTHParams",
    "VXTHReplica",
    "quarterly_returns",
    "vix_call_weight",
    "vxth_roll_dates",
]


# Cboe VXTH methodology: (upper bound of the next-month VX level, share of the portfolio in 30-delta VIX calls),
# first match wins, none above the last bound. The replica and the VXTH-style baseline hedge
# (strategies/baselines.py) both use it.
VXTH_WEIGHTS: tuple[tuple[float, float], ...] = ((15.0, 0.0), (30.0, 0.01), (50.0, 0.005))


def vix_call_weight(vx_level: float, table: tuple[tuple[float, float], ...] = VXTH_WEIGHTS) -> float:
    """VXTH call weight for a VX future level: <= 15 -> 0, (15, 30] -> 1 %, (30, 50] -> 0.5 %, > 50 -> 0."""
    if not math.isfinite(vx_level):
        return 0.0
    for upper, w in table:
        if vx_level <= upper:
            return w
    return 0.0


def vxth_roll_dates(start, end) -> list[dt.date]:
    """Every VXTH roll day (VIX expiration) in [start, end]."""
    s, e = pd.Timestamp(start).date(), pd.Timestamp(end).date()
    out = []
    y, m = s.year, s.month
    while (y, m) <= (e.year, e.month):
        d = vix_expiry(y, m).date()
        if s <= d <= e:
            out.append(d)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


class VXTHParams(Params):
    call_delta: float = Field(0.30, gt=0, lt=1)
    weight_table: tuple[tuple[float, float], ...] = Field(
        VXTH_WEIGHTS, description="(upper bound of the VX level, call weight), first match wins")
    buy_phase: Phase = Field(Phase.CLOSE, description="snapshot of the roll day at which the calls are bought "
                             "(the weight is always fixed at the open)")
    notional: float = Field(1e8, gt=0, description="starting value of the replica portfolio (USD)")


class VXTHReplica(Strategy):
    def __init__(self, params: VXTHParams | None = None, book: str = "vxth") -> None:
        self.p = params or VXTHParams()
        self.book = book
        self.shares = 0             # SPXTR shares held (from this book's fills)
        self.started = False
        self.daily: list[dict] = []
        self.rolls: list[dict] = []
        self.trades: list[dict] = []
        self._last_roll: dt.date | None = None
        self._pending: dict[str, dict] = {}       # call orders (with their SPXTR leg)
        self._open_calls: dict | None = None
        self._roll_due: dict | None = None
        self._tr_close = math.nan

    # ---- valuation -----------------------------------------------------------------------------
    @staticmethod
    def tr_level(snap: MarketSnapshot) -> float:
        return snap.quotes.etps.get(SPX_TR.symbol, math.nan)

    def value(self, ctx: StrategyContext, tr_level: float) -> float:
        """Portfolio value now: cash + SPXTR shares at `tr_level` + the calls at their last mark."""
        other = sum(p.market_value() for k, p in ctx.positions().items() if k != SPX_TR.key)
        return ctx.cash + self.shares * tr_level + other

    def _rebalance(self, ctx: StrategyContext, tr_level: float, calls: dict | None = None) -> None:
        """Trade SPXTR so the S&P 500 leg is the portfolio value less the premium of `calls` (whole shares, never
        more than the cash allows). With `calls`, one order: the calls plus the SPXTR trade that pays for them."""
        premium = calls["quantity"] * calls["price"] * calls["option"].multiplier if calls else 0.0
        target = math.floor((self.value(ctx, tr_level) - premium) / tr_level + 1e-9)
        delta = target - self.shares
        legs = [OrderLeg(calls["option"], calls["quantity"])] if calls else []
        if delta:
            legs.append(OrderLeg(SPX_TR, delta))
        if not legs:
            return
        intent = ctx.submit(legs, 1, purpose="roll" if calls else "rebalance")
        if calls:
            self._pending[intent] = {"roll": calls["roll"], "option": calls["option"]}

    # ---- hooks ---------------------------------------------------------------------------------
    def on_snapshot(self, snap: MarketSnapshot, ctx: StrategyContext) -> None:
        tr_level = self.tr_level(snap)
        if snap.phase is Phase.CLOSE:
            self._tr_close = tr_level
        if not math.isfinite(tr_level):
            return
        invest = not self.started       # first snapshot: all cash into SPXTR
        self.started = True
        is_roll_day = vix_expiry(snap.date.year, snap.date.month).date() == snap.date
        if snap.phase is Phase.OPEN and is_roll_day and self._last_roll != snap.date:
            self._last_roll = snap.date
            self._start_roll(snap, ctx)
            invest = True               # the expired calls' settlement goes into SPXTR
        if (self._roll_due is not None and snap.phase is self.p.buy_phase and snap.date == self._roll_due["date"]):
            roll, self._roll_due = self._roll_due, None
            self._buy(snap, ctx, roll)
        elif invest:
            self._rebalance(ctx, tr_level)

    def _start_roll(self, snap: MarketSnapshot, ctx: StrategyContext) -> None:
        """Open of the VIX expiration day: the expired calls have settled (their cash goes into the S&P 500 leg)
        and the new calls' weight is fixed from the same-expiry VX future as seen at the open."""
        m = ctx.market
        y, mo = (snap.date.year + 1, 1) if snap.date.month == 12 else (snap.date.year, snap.date.month + 1)
        expiry = vix_expiry(y, mo).date()
        fut = m.vx(expiry)
        w = vix_call_weight(fut, self.p.weight_table)
        roll = {"date": snap.date, "expiry": expiry, "vx_level": fut, "weight": w,
                "value": self.value(ctx, self.tr_level(snap)), "buy_phase": self.p.buy_phase.value,
                "vx_at_buy": math.nan, "strike": math.nan, "delta": math.nan, "price": math.nan, "quantity": 0,
                "vvix": math.nan}
        self.rolls.append(roll)
        if w > 0:
            self._roll_due = roll

    def _buy(self, snap: MarketSnapshot, ctx: StrategyContext, roll: dict) -> None:
        """Buy the ~30-delta calls of the next VIX expiry for `weight` of the portfolio at this snapshot, paying
        the premium out of the S&P 500 leg."""
        m = ctx.market
        tr_level = self.tr_level(snap)
        value = self.value(ctx, tr_level)
        expiry = roll["expiry"]
        fut = m.vx(expiry)
        roll.update(value=value, vx_at_buy=fut, vvix=m.quotes.vvix)
        if not math.isfinite(fut):
            log.warning("vxth_roll_skipped", date=str(snap.date), reason="no VX price", expiry=str(expiry))
            self._rebalance(ctx, tr_level)
            return
        grid = vix_strike_grid(fut)
        calls = [vix_option(expiry, k, "C") for k in grid]
        deltas = m.deltas(calls)
        k = closest_to_delta(grid, deltas, self.p.call_delta)
        opt = vix_option(expiry, k, "C")
        price = m.mid(opt)
        if not (math.isfinite(price) and price > 0):
            log.warning("vxth_roll_skipped", date=str(snap.date), reason="no call price", strike=k)
            self._rebalance(ctx, tr_level)
            return
        qty = round(roll["weight"] * value / (price * opt.multiplier))
        roll.update(strike=k, delta=float(deltas[list(grid).index(k)]), price=price, quantity=qty)
        if qty < 1:
            self._rebalance(ctx, tr_level)
            return
        self._rebalance(ctx, tr_level, {"roll": roll, "option": opt, "quantity": qty, "price": price})

    def on_fill(self, fill: FillEvent, ctx: StrategyContext) -> None:
        for leg in fill.legs:
            if leg.instrument == SPX_TR:
                self.shares += leg.quantity
        info = self._pending.pop(fill.intent_id, None)
        if info is None:
            return
        info["cost"] = sum(leg.quantity * leg.price * leg.instrument.multiplier for leg in fill.legs
                           if leg.instrument == info["option"]) + fill.commission
        info["settled"] = 0.0
        self._open_calls = info

    def on_order_status(self, event: OrderStatusEvent, ctx: StrategyContext) -> None:
        if event.state not in (OrderState.CANCELLED, OrderState.REJECTED):
            return
        self._pending.pop(event.intent_id, None)
        if event.book == self.book:
            log.warning("vxth_order_not_filled", intent=event.intent_id, state=event.state.value, reason=event.reason)

    def on_settlement(self, event: SettlementEvent, ctx: StrategyContext) -> None:
        info = self._open_calls
        if info is None or event.instrument != info["option"]:
            return
        r = info["roll"]
        self.trades.append({
            "id": f"{self.book}-{r['date']:%Y%m%d}", "entry_date": r["date"], "exit_date": event.ts.date(),
            "expiry": r["expiry"], "strike": r["strike"], "quantity": r["quantity"], "price": r["price"],
            "settlement": event.settlement_price, "weight": r["weight"],
            "pnl": round(event.cash - info["cost"], 2),
        })
        self._open_calls = None

    def on_end_of_day(self, date: dt.date, ctx: StrategyContext) -> None:
        """The day's VXTH level is the account equity (the kernel has just marked the book at the close)."""
        if not self.started:
            return
        tr = self._tr_close
        equity = ctx.equity
        cash = ctx.cash
        self.daily.append({"date": pd.Timestamp(date), "index": equity, "spx_tr": tr,
                           "hedge": equity - cash - self.shares * tr, "shares": self.shares, "cash": cash})

    # ---- results -------------------------------------------------------------------------------
    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self.daily)
        return df.set_index("date") if len(df) else df

    def index_series(self, base: float = 100.0) -> pd.Series:
        s = self.frame()["index"]
        return base * s / s.iloc[0]


def quarterly_returns(level: pd.Series) -> pd.Series:
    """Calendar-quarter returns of a daily level series (last close of each quarter to the next)."""
    q = level.resample("QE").last()
    first = level.iloc[0]
    r = q.pct_change()
    r.iloc[0] = q.iloc[0] / first - 1.0
    r.index = r.index.to_period("Q")
    return r

