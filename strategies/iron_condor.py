"""SPX iron-condor book: sell a put spread and a call spread around the money, manage, exit.

Rules (all config; defaults in brackets): enter on a schedule [weekly, Monday, at the close] into the
listed expiry closest to a target DTE [45, window 30-60] - SPX monthlies before SPXW weeklies existed;
short legs by delta [0.16], long legs by delta [0.05] or wing width; exits: take profit at a fraction
of the credit [50%], stop when the loss reaches a multiple of the credit [2x], time exit at a DTE
[21]; at most N condors open [4]; size each by max loss as a % of equity [2%] with a cap for the
whole book [10%]; optional VIX entry filter.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from engine.calendar import is_trading_day, listed_expiries
from engine.events import FillEvent, MarketSnapshot, OrderState, OrderStatusEvent, SettlementEvent
from engine.instruments import OptionContract, instrument_from_dict
from engine.marketmodel import snapshot_memo
from engine.orders import OrderLeg
from engine.params import Params
from engine.strategy import Strategy, StrategyContext
from engine.strikes import strike_for_delta, strike_grid
from strategies.needs import SeriesNeed


class CondorParams(Params):
    entry_frequency: Literal["daily", "weekly", "monthly"] = "weekly"
    entry_weekday: int = Field(0, ge=0, le=4, description="0=Monday; a holiday moves entry to the next session")
    entry_phase: Literal["open", "close"] = "close"
    exit_phases: list[Literal["open", "close"]] = Field(default_factory=lambda: ["open", "close"])
    expiries: Literal["monthly", "any"] = Field("any", description="'monthly' = SPX AM third-Friday only")
    target_dte: int = Field(45, ge=1, le=365)
    min_dte: int = Field(30, ge=1)
    max_dte: int = Field(60, ge=1)
    short_delta: float = Field(0.16, gt=0, lt=0.5)
    wing: Literal["delta", "width"] = "delta"
    long_delta: float = Field(0.05, gt=0, lt=0.5)
    wing_width_pct: float = Field(0.025, gt=0, lt=0.5, description="wing width as a fraction of spot when wing='width'")
    take_profit: float | None = Field(0.5, gt=0, le=1, description="close when this fraction of the credit is captured")
    stop_loss: float | None = Field(2.0, gt=0, description="close when the loss reaches this multiple of the credit")
    exit_dte: int = Field(21, ge=0, description="close at or below this many calendar days to expiry (0 = hold to settlement)")
    max_open: int = Field(4, ge=1)
    risk_per_trade: float = Field(0.02, gt=0, le=1, description="max loss of one condor as a fraction of equity")
    max_book_risk: float = Field(0.10, gt=0, le=1, description="cap on the sum of open condors' max loss / equity")
    max_vix_entry: float | None = Field(None, gt=0)
    min_vix_entry: float | None = Field(None, gt=0)
    min_credit_to_width: float = Field(0.0, ge=0, lt=1, description="skip entries whose credit is below this fraction of the wider wing")
    limit_slack: float = Field(0.10, ge=0, le=1, description="entry orders carry a limit this fraction of the credit worse "
                               "than the natural price at decision time (matters when fills come later: next_snapshot, "
                               "live); so do take-profit exits; stops and time exits are market orders")

    @model_validator(mode="after")
    def _windows(self):
        if not self.min_dte <= self.target_dte <= self.max_dte:
            raise ValueError("condor: need min_dte <= target_dte <= max_dte")
        if self.wing == "delta" and self.long_delta >= self.short_delta:
            raise ValueError("condor: long_delta must be below short_delta")
        return self

    def needs(self) -> list[SeriesNeed]:
        """SPX and VIX every snapshot (no condor is traded or managed without them; VIX anchors the option
        surface), the T-bill rate for option prices and interest on cash. VIX9D/3M/6M shape the surface's
        term structure where they exist."""
        why = "the condor book"
        return [SeriesNeed("spx", why), SeriesNeed("vix", why), SeriesNeed("rate", why)]


@dataclass
class Condor:
    cid: str
    legs: tuple[OptionContract, ...]     # long put, short put, short call, long call
    ratios: tuple[int, ...]              # +1, -1, -1, +1
    quantity: int
    entry_date: dt.date
    expiry: dt.date
    credit: float = math.nan             # per unit, points, positive
    max_loss: float = math.nan           # per unit, points (widest wing - credit)
    commissions: float = 0.0
    status: str = "pending"              # pending -> open -> closing -> closed
    open_intent: str = ""
    close_intent: str = ""
    exit_reason: str = ""
    exit_date: dt.date | None = None
    exit_debit: float = math.nan
    settled_value: float = 0.0
    settled_legs: int = 0
    filled: int = 0                      # units of the opening order filled so far
    closed_units: int = 0                # units bought back so far
    close_cost: float = 0.0              # sum of closing net price x units

    @property
    def width(self) -> float:
        return max(self.legs[1].strike - self.legs[0].strike, self.legs[3].strike - self.legs[2].strike)

    def pnl(self) -> float:
        if self.exit_reason == "expired":
            return (self.credit * 100 * self.quantity) + self.settled_value - self.commissions
        return (self.credit - self.exit_debit) * 100 * self.quantity - self.commissions


class IronCondorBook(Strategy):
    def __init__(self, params: CondorParams | None = None, book: str = "condor") -> None:
        self.p = params or CondorParams()
        self.book = book
        self.condors: dict[str, Condor] = {}     # live: pending, open or closing
        self.closed: list[Condor] = []
        self.by_intent: dict[str, str] = {}
        self.trades: list[dict] = []
        self._last_entry_key: tuple | None = None
        self._first_seen: dt.date | None = None   # first entry check of this run (a restart begins again)
        self._n = 0
        self._leg_keys: dict[str, tuple] = {}   # condor id -> its legs as a memo key

    # ---- helpers -------------------------------------------------------------------------------
    def _open(self) -> list[Condor]:
        return list(self.condors.values())

    def _entry_due(self, date: dt.date) -> bool:
        p = self.p
        if self._first_seen is None:
            self._first_seen = date
        if p.entry_frequency == "daily":
            key = (date,)
        elif p.entry_frequency == "weekly":
            slot, caught_up, key = _weekly_slot(date, p.entry_weekday)
            if caught_up and slot < self._first_seen:
                return False   # last week's slot is not ours to catch up: the run began after it
        else:
            key = (date.year, date.month)
        if key == self._last_entry_key:
            return False
        self._last_entry_key = key
        return True

    # ---- hooks -------------------------------------------------------------------------------
    def on_snapshot(self, snap: MarketSnapshot, ctx: StrategyContext) -> None:
        q = snap.quotes
        if not math.isfinite(q.spx) or not math.isfinite(q.vix):
            return
        if "spx" in q.stale or "vix" in q.stale:
            return  # no opening print (a prior close carried forward): no stop check or entry on a fake open
        if snap.phase in self.p.exit_phases:   # Phase is a str enum: it equals its text ("open", "close")
            self._manage(snap, ctx)
        if snap.phase == self.p.entry_phase and self._entry_due(snap.date):
            self._enter(snap, ctx)

    def _manage(self, snap: MarketSnapshot, ctx: StrategyContext) -> None:
        live = [c for c in self.condors.values() if c.status == "open"]
        if not live:
            return
        p = self.p
        exit_dte, take_profit, stop_loss = p.exit_dte, p.take_profit, p.stop_loss
        today = snap.date
        market = ctx.market
        costs = snapshot_memo(market, "condor_cost")   # a condor's buy-back cost is a function of the snapshot
        leg_keys = self._leg_keys
        for c in live:
            dte = (c.expiry - today).days
            if dte <= 0 and exit_dte == 0:
                continue  # held to settlement
            key = leg_keys.get(c.cid)
            if key is None:
                key = leg_keys[c.cid] = (*(leg.key for leg in c.legs), c.ratios)
            cost = costs.get(key)
            if cost is None:
                cost = costs[key] = -_net(c.ratios, market.mid_list(c.legs))  # debit to buy back, per unit
            reason = ""
            if exit_dte and dte <= exit_dte:
                reason = "time"
            elif take_profit is not None and cost <= c.credit * (1.0 - take_profit):
                reason = "take_profit"
            elif stop_loss is not None and cost - c.credit >= stop_loss * c.credit:
                reason = "stop"
            if reason and dte >= 0:
                c.status = "closing"
                c.exit_reason = reason
                close_legs = [OrderLeg(leg, -r) for leg, r in zip(c.legs, c.ratios)]
                limit = None
                if reason == "take_profit":
                    # a profit is taken at a price, so its order carries one (re-priced when it is sent again
                    # after a DAY order expires); stops and time exits are market orders, filled at the model
                    # price plus spread and slippage wherever the market is when they meet it: a stop with the
                    # decision-time price as its limit is blocked by the very gap it should get out of
                    q = ctx.quotes(c.legs)
                    natural = sum(-r * (qt.ask if -r > 0 else qt.bid) for r, qt in zip(c.ratios, q))
                    limit = round(natural + p.limit_slack * c.credit, 2)   # a debit: willing to pay a little more
                c.close_intent = ctx.submit(close_legs, c.quantity - c.closed_units, purpose="close", limit=limit)
                self.by_intent[c.close_intent] = c.cid

    def _choose_expiry(self, date: dt.date):
        p = self.p
        return _expiry_near(date, p.min_dte, p.max_dte, p.target_dte, p.expiries)


    def _enter(self, snap: MarketSnapshot, ctx: StrategyContext) -> None:
        p = self.p
        vix = snap.quotes.vix
        if p.max_vix_entry is not None and vix > p.max_vix_entry:
            return
        if p.min_vix_entry is not None and vix < p.min_vix_entry:
            return
        if len(self._open()) >= p.max_open:
            return
        exp = self._choose_expiry(snap.date)
        if exp is None:
            return
        expiry = exp.date.date() if hasattr(exp.date, "date") else exp.date
        m = ctx.market
        legs = self._legs(m, exp.root, expiry, exp.settlement)
        if legs is None:
            return
        lp, sp, sc, lc = (leg.strike for leg in legs)
        ratios = (1, -1, -1, 1)
        credit = -_net(ratios, m.mid_list(legs))
        width = max(sp - lp, lc - sc)
        max_loss = width - credit
        if credit <= 0 or max_loss <= 0 or credit < p.min_credit_to_width * width:
            return
        equity = ctx.equity
        open_risk = sum(c.max_loss * 100 * c.quantity for c in self._open() if math.isfinite(c.max_loss))
        budget = min(p.risk_per_trade * equity, p.max_book_risk * equity - open_risk)
        qty = int(budget // (max_loss * 100))
        if qty < 1:
            return
        self._n += 1
        c = Condor(f"{self.book}-{snap.date:%Y%m%d}-{self._n}", legs, ratios, qty, snap.date, expiry,
                   credit=credit, max_loss=max_loss)
        q = ctx.quotes(legs)
        natural = sum(r * (qt.ask if r > 0 else qt.bid) for r, qt in zip(ratios, q))
        limit = natural + p.limit_slack * credit   # net is negative (a credit): accept a little less
        self.condors[c.cid] = c
        c.open_intent = ctx.submit([OrderLeg(leg, r) for leg, r in zip(legs, ratios)], qty, purpose="open",
                                   limit=round(limit, 2))
        self.by_intent[c.open_intent] = c.cid

    def _legs(self, m, root: str, expiry: dt.date, settlement: str) -> tuple[OptionContract, ...] | None:
        """Long put, short put, short call, long call on the listed grid (None when the strikes do not make a
        condor). They depend only on the snapshot and these parameters, so they are kept in the snapshot's memo
        (shared by a sweep's runs)."""
        p = self.p
        memo = snapshot_memo(m, "condor_legs")
        key = (root, expiry, settlement, p.short_delta, p.wing, p.long_delta, p.wing_width_pct)
        if key in memo:
            return memo[key]
        lp, sp, sc, lc = self._strikes(m, root, expiry, settlement)
        legs = None
        if lp < sp < sc < lc:
            legs = tuple(OptionContract(root, expiry, float(k), r, settlement)
                         for k, r in ((lp, "P"), (sp, "P"), (sc, "C"), (lc, "C")))
        memo[key] = legs
        return legs

    def _strikes(self, m, root: str, expiry: dt.date, settlement: str) -> tuple[float, float, float, float]:
        p = self.p
        probe = OptionContract(root, expiry, m.spot, "P", settlement)
        T = m.years_to(probe)
        surface = m.surface
        grid = strike_grid(m.spot, m.date, (expiry - m.date).days)
        sp = strike_for_delta(surface, T, p.short_delta, False, grid)
        sc = strike_for_delta(surface, T, p.short_delta, True, grid)
        if p.wing == "delta":
            lp = strike_for_delta(surface, T, p.long_delta, False, grid)
            lc = strike_for_delta(surface, T, p.long_delta, True, grid)
        else:
            w = p.wing_width_pct * m.spot
            lp = float(grid[np.argmin(np.abs(grid - (sp - w)))])
            lc = float(grid[np.argmin(np.abs(grid - (sc + w)))])
        return lp, sp, sc, lc

    def on_fill(self, fill: FillEvent, ctx: StrategyContext) -> None:
        cid = self.by_intent.get(fill.intent_id)
        if cid is None:
            return
        c = self.condors[cid]
        c.commissions += fill.commission
        q = fill.combo_quantity
        if fill.intent_id == c.open_intent:
            # partial fills average in; the condor is managed once the whole order is filled (or the rest
            # is cancelled, see on_order_status)
            credit = -fill.net_price
            c.credit = credit if c.filled == 0 else (c.credit * c.filled + credit * q) / (c.filled + q)
            c.filled += q
            c.max_loss = c.width - c.credit
            if c.filled >= c.quantity:
                c.status = "open"
        elif fill.intent_id == c.close_intent:
            c.closed_units += q
            c.close_cost += fill.net_price * q
            if c.closed_units >= c.quantity:
                c.exit_debit = c.close_cost / c.quantity
                c.exit_date = fill.ts.date()
                c.status = "closed"
                self._record(c)

    def on_order_status(self, event: OrderStatusEvent, ctx: StrategyContext) -> None:
        cid = self.by_intent.get(event.intent_id)
        if cid is None or event.state not in (OrderState.CANCELLED, OrderState.REJECTED):
            return
        c = self.condors[cid]
        if event.intent_id == c.open_intent:
            if c.filled == 0:
                c.status = "void"
                del self.condors[cid]
            else:  # keep what did fill: those units are in the account and must be managed
                c.quantity = c.filled
                c.status = "open"
        elif event.intent_id == c.close_intent:
            c.status = "open"  # the units not bought back are retried at the next check
            c.exit_reason = ""

    def on_settlement(self, event: SettlementEvent, ctx: StrategyContext) -> None:
        for c in self.condors.values():
            if c.status in ("open", "closing") and event.instrument in c.legs:
                c.settled_value += event.cash
                c.settled_legs += 1
                if c.settled_legs == 4:
                    c.status = "closed"
                    c.exit_reason = "expired"
                    c.exit_date = event.ts.date()
                    self._record(c)
                return

    def _record(self, c: Condor) -> None:
        self.condors.pop(c.cid, None)
        self._leg_keys.pop(c.cid, None)
        self.closed.append(c)
        for intent in (c.open_intent, c.close_intent):
            self.by_intent.pop(intent, None)
        self.trades.append({
            "id": c.cid, "entry_date": c.entry_date, "exit_date": c.exit_date, "expiry": c.expiry,
            "root": c.legs[0].root, "long_put": c.legs[0].strike, "short_put": c.legs[1].strike,
            "short_call": c.legs[2].strike, "long_call": c.legs[3].strike, "quantity": c.quantity,
            "credit": round(c.credit, 4), "exit_debit": None if math.isnan(c.exit_debit) else round(c.exit_debit, 4),
            "exit_reason": c.exit_reason, "commissions": round(c.commissions, 2), "pnl": round(c.pnl(), 2),
        })

    # ---- persistence (daemon) ----------------------------------------------------------------
    def state(self) -> dict:
        condors = {}
        for k, v in self.condors.items():
            raw = asdict(v)
            raw["legs"] = [leg.to_dict() for leg in v.legs]
            condors[k] = raw
        return {"condors": condors, "n": self._n, "last_entry_key": self._last_entry_key}

    def restore(self, state: dict) -> None:
        self._n = state.get("n", 0)
        key = state.get("last_entry_key")
        self._last_entry_key = tuple(key) if key else None
        self.condors.clear()
        self.by_intent.clear()
        for cid, raw in state.get("condors", {}).items():
            raw = dict(raw)
            raw["legs"] = tuple(instrument_from_dict(leg) if isinstance(leg, dict) else leg for leg in raw["legs"])
            raw["ratios"] = tuple(raw["ratios"])
            c = Condor(**raw)
            self.condors[cid] = c
            for intent in (c.open_intent, c.close_intent):
                if intent:
                    self.by_intent[intent] = cid


@lru_cache(maxsize=8192)
def _expiry_near(date: dt.date, min_dte: int, max_dte: int, target_dte: int, expiries: str):
    """The listed expiry closest to target_dte within [min_dte, max_dte], SPX AM monthlies first on a tie (only
    those with expiries="monthly"): a function of the calendar, kept per process."""
    best = None
    for e in listed_expiries(date, max_dte):
        dte = (e.date.date() - date).days if hasattr(e.date, "date") else (e.date - date).days
        if dte < min_dte or dte > max_dte:
            continue
        if expiries == "monthly" and e.root != "SPX":
            continue
        score = (abs(dte - target_dte), 0 if e.root == "SPX" else 1)
        if best is None or score < best[0]:
            best = (score, e)
    return None if best is None else best[1]


@lru_cache(maxsize=65536)
def _weekly_slot(date: dt.date, weekday: int) -> tuple[dt.date, bool, tuple[int, int]]:
    """(the week's entry slot for `date`, whether that slot is a session of an earlier ISO week being caught up,
    the slot's (ISO year, week)). The slot is the entry weekday on or before `date`; a holiday on it moves the
    entry to the next session, even into the next week (Good Friday -> Monday), and that week's own slot still
    gets its entry. A function of the date alone: kept for every run of the process."""
    slot = date - dt.timedelta(days=(date.weekday() - weekday) % 7)
    iso = slot.isocalendar()
    caught_up = iso[:2] != date.isocalendar()[:2] and is_trading_day(slot)
    return slot, caught_up, (iso.year, iso.week)


def _net(ratios: tuple[int, ...], prices: list[float]) -> float:
    """sum(ratio * price), added in leg order (what numpy's dot did for four legs, to the bit)."""
    total = 0.0
    for r, px in zip(ratios, prices):
        total += r * px
    return total

