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
- The calls are real VIX option positions in the ledger, bought through the simulated broker at model mid
  (replica_execution(): no spread, slippage or commissions) and marked every close by the same VIX-option
  model as every other strategy (MarketModel / VixOptionSurface).
- The engine has no instrument for a total-return index, so the S&P 500 leg is a synthetic sleeve kept
  inside this strategy: `units` of an SPX total-return level (SPXTotalReturn), valued at each snapshot. The
  hedge's cash flows (premium paid, settlement received) are swept into or out of that sleeve at each roll, so
  the index value is units x TR + (this book's P&L since the last sweep). The ledger's own cash balance (and
  the T-bill interest it earns) is NOT part of the index: read the replica's level from `VXTHReplica.daily`
  (or `index_series()`), not from the account equity. The portfolio starts at `notional`; run it in an account
  whose cash is well above that (adapters.fidelity uses 100x) so the ledger can pay every premium out of cash,
  standing in for the S&P 500 shares that the real index sells to buy the calls.
- Roll timing: the expired calls settle at the open of the VIX expiration day (VRO) and the weight is fixed
  then, from the same-expiry VX future as the open snapshot shows it. That snapshot carries each VX contract at
  its prior settlement (the day's opening VX prices are not part of the replay's snapshot); docs/fidelity.md
  counts the roll days on which that changes the weight bracket against the real opening price. The calls are
  bought later that day: replay has no intraday snapshot, so by default at the close snapshot
  (`buy_phase = "close"`), with the strike chosen by delta on the close's model; `buy_phase = "open"` buys them
  at the open instead. The choice matters in spike quarters and docs/fidelity.md shows it.

S&P 500 dividends: SPX_DIVIDEND_POINTS holds the dividends per share (index points) paid in each calendar
year, accrued evenly per calendar day. The values are those implied by S&P Dow Jones Indices' published
annual S&P 500 total returns over our price series (adapters.fidelity.derive_dividend_points re-derives them
and tests/test_fidelity.py checks they still reproduce the published annual figures); they agree with S&P's
published annual dividends per share (e.g. 2008: 28.39, 2011: 26.43, 2013: 34.99) to within about 1 %.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping

import pandas as pd
import structlog
from pydantic import BaseModel, ConfigDict, Field

from engine.calendar import vix_expiry
from engine.events import FillEvent, MarketSnapshot, OrderState, OrderStatusEvent, Phase, SettlementEvent
from engine.instruments import vix_option
from engine.orders import OrderLeg
from engine.strategy import Strategy, StrategyContext
from engine.strikes import vix_strike_grid

from .cndr import closest_to_delta

log = structlog.get_logger("alvh.vxth")

# S&P 500 dividends per share (index points) paid in each calendar year: implied by S&P DJI's published annual
# total returns (2005 4.91 %, 2006 15.79 %, 2007 5.49 %, 2008 -37.00 %, 2009 26.46 %, 2010 15.06 %, 2011 2.11 %, 2012 16.00 %,
# 2013 32.39 %, 2014 13.69 %, 2015 1.38 %, 2016 11.96 %, 2017 21.83 %, 2018 -4.38 %, 2019 31.49 %, 2020 18.40 %,
# 2021 28.71 %, 2022 -18.11 %, 2023 26.29 %, 2024 25.02 %, 2025 17.88 %) with even daily accrual.
SPX_DIVIDEND_POINTS: dict[int, float] = {
    2005: 22.23, 2006: 24.82, 2007: 27.52, 2008: 28.17, 2009: 22.43, 2010: 22.73, 2011: 26.51, 2012: 30.99,
    2013: 34.87, 2014: 39.40, 2015: 43.25, 2016: 45.73, 2017: 48.94, 2018: 53.43, 2019: 58.29, 2020: 57.94,
    2021: 60.44, 2022: 67.11, 2023: 70.41, 2024: 73.80, 2025: 78.71,
}


class SPXTotalReturn:
    """S&P 500 total-return level from the price index plus evenly accrued dividends:
    TR_t = TR_{t-1} * (P_t + D_year * days / 365) / P_{t-1} at each close (days = calendar days since the last
    close); intraday (open) levels move with the price only."""

    def __init__(self, dividends: Mapping[int, float] | None = None, start_level: float = 100.0,
                 fallback_yield: float = 0.018) -> None:
        self.dividends = dict(SPX_DIVIDEND_POINTS if dividends is None else dividends)
        self.fallback_yield = fallback_yield
        self.level = start_level          # at the last close
        self.last_price = math.nan        # last close price
        self.last_date: dt.date | None = None

    def dividend_points(self, year: int, price: float) -> float:
        """Annual dividend points for `year`; outside the table, `fallback_yield` times the current price."""
        d = self.dividends.get(year)
        return d if d is not None else self.fallback_yield * price

    def peek(self, price: float) -> float:
        """Level at an intraday price (no dividend accrual)."""
        if not math.isfinite(self.last_price) or not math.isfinite(price):
            return self.level
        return self.level * price / self.last_price

    def close(self, date: dt.date, price: float) -> float:
        """Advance to the close of `date` at `price`; returns the new level."""
        if not math.isfinite(price):
            return self.level
        if math.isfinite(self.last_price) and self.last_date is not None:
            days = (date - self.last_date).days
            div = self.dividend_points(date.year, self.last_price) * days / 365.0
            self.level *= (price + div) / self.last_price
        self.last_price = price
        self.last_date = date
        return self.level


def vix_call_weight(vx_level: float, table: tuple[tuple[float, float], ...] | None = None) -> float:
    """VXTH call weight for a VX future level: <= 15 -> 0, (15, 30] -> 1 %, (30, 50] -> 0.5 %, > 50 -> 0."""
    if not math.isfinite(vx_level):
        return 0.0
    table = table or VXTHParams().weight_table
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


class VXTHParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    call_delta: float = Field(0.30, gt=0, lt=1)
    weight_table: tuple[tuple[float, float], ...] = Field(
        ((15.0, 0.0), (30.0, 0.01), (50.0, 0.005), (math.inf, 0.0)),
        description="(upper bound of the VX level, call weight), first match wins")
    buy_phase: Phase = Field(Phase.CLOSE, description="snapshot of the roll day at which the calls are bought "
                             "(the weight is always fixed at the open)")
    notional: float = Field(1e8, gt=0, description="starting value of the replica portfolio (USD)")


class VXTHReplica(Strategy):
    def __init__(self, params: VXTHParams | None = None, book: str = "vxth",
                 dividends: Mapping[int, float] | None = None) -> None:
        self.p = params or VXTHParams()
        self.book = book
        self.tr = SPXTotalReturn(dividends)
        self.units = math.nan       # SPX total-return units held (synthetic sleeve)
        self.ref = 0.0              # book P&L already folded into the sleeve
        self.daily: list[dict] = []
        self.rolls: list[dict] = []
        self.trades: list[dict] = []
        self._last_roll: dt.date | None = None
        self._pending: dict[str, dict] = {}
        self._open_calls: dict | None = None
        self._roll_due: dict | None = None

    # ---- valuation -----------------------------------------------------------------------------
    def _tr_now(self, snap: MarketSnapshot) -> float:
        return self.tr.peek(snap.quotes.spx) if snap.phase is not Phase.CLOSE else self.tr.level

    def hedge_value(self, ctx: StrategyContext) -> float:
        """Value of the VIX-call sleeve: this book's P&L since the last sweep (marks + unswept cash)."""
        return ctx.book_pnl() - self.ref

    def value(self, ctx: StrategyContext, tr_level: float) -> float:
        return self.units * tr_level + self.hedge_value(ctx)

    def _sweep(self, ctx: StrategyContext, tr_level: float) -> None:
        """Fold the hedge sleeve's cash (settlements received, premium paid) into the S&P 500 sleeve."""
        mv = sum(p.market_value() for p in ctx.positions().values())
        cash = self.hedge_value(ctx) - mv
        self.units += cash / tr_level
        self.ref += cash

    # ---- hooks ---------------------------------------------------------------------------------
    def on_snapshot(self, snap: MarketSnapshot, ctx: StrategyContext) -> None:
        if snap.phase is Phase.CLOSE:
            self.tr.close(snap.date, snap.quotes.spx)
        if math.isnan(self.units):
            if not math.isfinite(snap.quotes.spx):
                return
            if not math.isfinite(self.tr.last_price):
                # start the total-return clock on the first price seen
                self.tr.last_price = snap.quotes.spx
                self.tr.last_date = snap.date
            self.units = self.p.notional / self._tr_now(snap)
            self.ref = ctx.book_pnl()
        is_roll_day = vix_expiry(snap.date.year, snap.date.month).date() == snap.date
        if snap.phase is Phase.OPEN and is_roll_day and self._last_roll != snap.date:
            self._last_roll = snap.date
            self._start_roll(snap, ctx)
        if (self._roll_due is not None and snap.phase is self.p.buy_phase and snap.date == self._roll_due["date"]):
            roll, self._roll_due = self._roll_due, None
            self._buy(snap, ctx, roll)

    def _start_roll(self, snap: MarketSnapshot, ctx: StrategyContext) -> None:
        """Open of the VIX expiration day: the expired calls have settled (fold the cash into the S&P 500
        sleeve) and the new calls' weight is fixed from the same-expiry VX future as seen at the open."""
        m = ctx.market
        tr_level = self._tr_now(snap)
        self._sweep(ctx, tr_level)
        y, mo = (snap.date.year + 1, 1) if snap.date.month == 12 else (snap.date.year, snap.date.month + 1)
        expiry = vix_expiry(y, mo).date()
        fut = m.vx(expiry)
        w = vix_call_weight(fut, self.p.weight_table)
        roll = {"date": snap.date, "expiry": expiry, "vx_level": fut, "weight": w, "value": self.value(ctx, tr_level),
                "buy_phase": self.p.buy_phase.value, "vx_at_buy": math.nan, "strike": math.nan, "delta": math.nan,
                "price": math.nan, "quantity": 0, "vvix": math.nan}
        self.rolls.append(roll)
        if w > 0:
            self._roll_due = roll

    def _buy(self, snap: MarketSnapshot, ctx: StrategyContext, roll: dict) -> None:
        """Buy the ~30-delta calls of the next VIX expiry for `weight` of the portfolio at this snapshot."""
        m = ctx.market
        tr_level = self._tr_now(snap)
        value = self.value(ctx, tr_level)
        expiry = roll["expiry"]
        fut = m.vx(expiry)
        roll.update(value=value, vx_at_buy=fut, vvix=m.quotes.vvix)
        if not math.isfinite(fut):
            log.warning("vxth_roll_skipped", date=str(snap.date), reason="no VX price", expiry=str(expiry))
            return
        grid = vix_strike_grid(fut)
        calls = [vix_option(expiry, k, "C") for k in grid]
        deltas = m.deltas(calls)
        k = closest_to_delta(grid, deltas, self.p.call_delta)
        opt = vix_option(expiry, k, "C")
        price = m.mid(opt)
        if not (math.isfinite(price) and price > 0):
            log.warning("vxth_roll_skipped", date=str(snap.date), reason="no call price", strike=k)
            return
        qty = round(roll["weight"] * value / (price * opt.multiplier))
        roll.update(strike=k, delta=float(deltas[list(grid).index(k)]), price=price, quantity=qty)
        if qty < 1:
            return
        intent = ctx.submit([OrderLeg(opt, 1)], qty, purpose="roll")
        self._pending[intent] = {"roll": roll, "option": opt, "tr": tr_level}

    def on_fill(self, fill: FillEvent, ctx: StrategyContext) -> None:
        info = self._pending.pop(fill.intent_id, None)
        if info is None:
            return
        self._sweep(ctx, info["tr"])         # pay the premium out of the S&P 500 sleeve
        info["cost"] = fill.net_price * fill.combo_quantity * info["option"].multiplier + fill.commission
        info["settled"] = 0.0
        self._open_calls = info

    def on_order_status(self, event: OrderStatusEvent, ctx: StrategyContext) -> None:
        if event.intent_id in self._pending and event.state in (OrderState.CANCELLED, OrderState.REJECTED):
            self._pending.pop(event.intent_id)
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
        if math.isnan(self.units):
            return
        hedge = self.hedge_value(ctx)
        tr = self.tr.level
        self.daily.append({"date": pd.Timestamp(date), "index": self.units * tr + hedge, "spx_tr": tr,
                           "hedge": hedge, "units": self.units})

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

