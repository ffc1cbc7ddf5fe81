"""The kernel wires bus, clock, broker, ledger and strategies; it runs the same way in replay and live.

Per snapshot: build the market model, settle what expires now, let the broker work resting orders,
hand the snapshot to each strategy in order, and at the close mark the book, accrue interest and
record the day.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import structlog

from engine.bus import EventBus
from engine.clock import Clock
from engine.events import (
    EndOfDayEvent,
    FillEvent,
    MarketSnapshot,
    OrderState,
    OrderStatusEvent,
    Phase,
)
from engine.execution import ExecutionSimulator
from engine.instruments import FutureContract, OptionContract
from engine.ledger import Ledger
from engine.limits import RiskGate, RiskLimits
from engine.marketmodel import MarketModel, PriceCache, PricingParams, pricing_key
from engine.orders import OrderRequest
from engine.ports import Broker
from engine.risk import MarginParams, check_buying_power
from engine.strategy import Strategy, StrategyContext

log = structlog.get_logger("alvh.kernel")


def _sum_like_numpy(values: list[float]) -> float:
    """np.sum of a short float vector, to the bit: numpy adds fewer than 8 values one after the other."""
    if len(values) >= 8:
        return float(np.sum(np.array(values, dtype=float)))
    total = 0.0
    for v in values:
        total += v
    return total


class SettlementDataError(RuntimeError):
    pass


@dataclass
class Records:
    """Everything a run writes out. Lists of tuples: cheap to append, turned into frames at the end."""

    equity: list[tuple] = field(default_factory=list)
    fills: list[tuple] = field(default_factory=list)
    settlements: list[tuple] = field(default_factory=list)
    rejections: list[tuple] = field(default_factory=list)


class Kernel:
    def __init__(self, *, bus: EventBus, clock: Clock, broker: Broker, ledger: Ledger,
                 strategies: list[Strategy], pricing: PricingParams | None = None,
                 execution: ExecutionSimulator | None = None, margin: MarginParams | None = None,
                 limits: RiskLimits | None = None, orders_today=None, strict_settlement: bool = True) -> None:
        self.bus = bus
        self.clock = clock
        self.broker = broker
        self.ledger = ledger
        self.strategies = strategies
        self.pricing = pricing or PricingParams()
        self._skew = self.pricing.skew()
        self._vix_params = self.pricing.vix_option_params()
        # Replay sets a price cache (adapters/sim/backtest.py): snapshot prices shared by the runs of a process.
        self.price_cache: PriceCache | None = None
        self._pricing_key = pricing_key(self.pricing)
        self.execution = execution or ExecutionSimulator()
        self.margin = margin or MarginParams()
        # limits and the kill switch: the same checks for every broker, replay or live
        self.risk = RiskGate(limits, orders_today)
        # an outside reason no order may go out now (the daemon: inside the broker's nightly reset window)
        self.blocked: Callable[[], str | None] = lambda: None
        # Replay: a missing settlement value is a data error. Live: the value (VRO, SOQ) can arrive late,
        # so the position stays on the book, is logged, and is settled at the first snapshot that has it.
        self.strict_settlement = strict_settlement
        self.market: MarketModel | None = None
        self.records = Records()
        self.contexts = {s.book: StrategyContext(self, s.book) for s in strategies}
        self._books = list(dict.fromkeys(s.book for s in strategies))
        self._by_book = {s.book: s for s in strategies}
        if len(self.contexts) != len(strategies):
            raise ValueError("every strategy needs its own book name")
        self._last_interest_date: dt.date | None = None
        self._expiry_keys: tuple = ()            # position keys the earliest expiry below was taken over
        self._earliest_expiry: dt.date | None = None
        self._hhmm: tuple = (None, "")           # (fill timestamp, its "HH:MM"): a snapshot's fills share one
        self._started = False
        # per snapshot and per day: (strategy, its context) pairs, and only the strategies that override the
        # end-of-day hook (the base one does nothing); the broker's market hook looked up once
        self._hooks = [(s, self.contexts[s.book]) for s in strategies]
        self._eod_hooks = [(s, c) for s, c in self._hooks if type(s).on_end_of_day is not Strategy.on_end_of_day]
        self._on_market = getattr(broker, "on_market", None)
        bus.subscribe(MarketSnapshot, self._on_snapshot)
        bus.subscribe(FillEvent, self._on_fill)
        bus.subscribe(OrderStatusEvent, self._on_status)
        bus.subscribe(EndOfDayEvent, self._on_end_of_day)
        broker.bind(bus)

    # ---- market ----------------------------------------------------------------------------------
    def _on_snapshot(self, snap: MarketSnapshot) -> None:
        cache = self.price_cache
        self.market = MarketModel(snap, self.pricing, self._skew, self._vix_params,
                                  None if cache is None else cache.entry(snap, self._pricing_key))
        if not self._started:
            self._started = True
            for s in self.strategies:
                s.on_start(self.contexts[s.book])
        self._settle_expiring(snap)
        if self.risk.limits.watches_losses and self.ledger.positions and self.risk.halted is None:
            self._watch_losses(snap)
        if self._on_market is not None:
            self._on_market(self.market)
        for s, ctx in self._hooks:
            s.on_snapshot(snap, ctx)
        if snap.phase is Phase.CLOSE:
            self.bus.publish(EndOfDayEvent(snap.ts, snap.date))

    def _settle_expiring(self, snap: MarketSnapshot) -> None:
        today = snap.date
        positions = self.ledger.positions
        # Most snapshots settle nothing: the earliest expiry held is kept per set of position keys (a key names
        # one instrument, so an unchanged key set has an unchanged earliest expiry) and the scan below skipped.
        keys = tuple(positions)
        if keys != self._expiry_keys:
            self._expiry_keys = keys
            self._earliest_expiry = min((p.instrument.expiry for p in positions.values()
                                         if isinstance(p.instrument, (OptionContract, FutureContract))),
                                        default=None)
        if self._earliest_expiry is None or self._earliest_expiry > today:
            return
        q = snap.quotes
        for (book, key), pos in list(positions.items()):
            inst = pos.instrument
            if not isinstance(inst, (OptionContract, FutureContract)) or inst.expiry > today:
                continue
            pm = isinstance(inst, OptionContract) and inst.settlement == "PM"
            if inst.expiry == today and pm and snap.phase is not Phase.CLOSE:
                continue
            if inst.expiry < today and self.strict_settlement:
                raise SettlementDataError(f"{key} expired on {inst.expiry} but no settlement snapshot was seen")
            if isinstance(inst, OptionContract) and inst.underlying == "SPX":
                und = q.spx if pm else q.spx_soq
                price = inst.intrinsic(und) if math.isfinite(und) else math.nan
            else:
                final = q.vx_final.get(inst.expiry, math.nan)
                price = final if isinstance(inst, FutureContract) else (inst.intrinsic(final) if math.isfinite(final) else math.nan)
            if not math.isfinite(price):
                if self.strict_settlement:
                    raise SettlementDataError(f"no settlement value for {key} on {today}")
                log.warning("settlement_pending", instrument=key, expiry=str(inst.expiry))
                continue
            ev = self.ledger.settle(book, key, price, snap.ts)
            self.records.settlements.append((today, book, key, ev.quantity, price, ev.cash))
            self.bus.publish(ev)
            strat = self._strategy(book)
            if strat is not None:
                strat.on_settlement(ev, self.contexts[book])

    def _strategy(self, book: str) -> Strategy | None:
        return self._by_book.get(book)

    def _watch_losses(self, snap: MarketSnapshot) -> None:
        insts = [p.instrument for p in self.ledger.positions.values()]
        marks = dict(zip((i.key for i in insts), self.market.mids(insts).tolist()))
        reason = self.risk.loss_breach(snap.date, self.ledger.equity_at(marks), self.ledger.initial_cash)
        if reason is not None:
            self.halt(reason)

    # ---- the kill switch -----------------------------------------------------------------------
    def halt(self, reason: str) -> None:
        """Refuse every new order and cancel every working one, whatever the broker. Synchronous: the halted
        state is set before the first cancel, so a broker asked why it cancels sees it."""
        if self.risk.halt(reason):
            log.warning("halted", reason=reason)
        for order in list(self.broker.working_orders()):
            self.broker.cancel(order.intent_id)

    def resume(self) -> None:
        self.risk.resume()

    @property
    def halted(self) -> str | None:
        return self.risk.halted

    # ---- orders --------------------------------------------------------------------------------
    def submit(self, order: OrderRequest) -> None:
        """Limits and kill switch, then the buying-power check (the same in replay and live), then the broker."""
        m = self.market
        today = m.date if m is not None else self.clock.now().date()
        reason = self.risk.refusal(order, today=today, vx=m.vx, etp=m.etp,
                                   held=lambda key: self.ledger.net_positions().get(key, 0))
        if reason is None:
            reason = self.blocked() or self.pretrade_check(order)
        if reason is not None:
            self.records.rejections.append((self.market.date if self.market else None, order.intent_id, reason))
            log.debug("order_rejected", intent=order.intent_id, reason=reason)
            self.bus.publish(OrderStatusEvent(self.clock.now(), order.intent_id, order.book, OrderState.REJECTED,
                                              0, order.quantity, reason))
            return
        self.risk.accepted(today)
        self.broker.submit(order)

    def pretrade_check(self, order: OrderRequest) -> str | None:
        m = self.market
        t = self.execution.order_terms(order, m)
        insts, mids, prices, qtys, commission = t.instruments, t.mids, t.prices, t.quantities, t.commission
        if prices is None:
            bad = [i.key for i, p in zip(insts, mids) if not math.isfinite(p)]
            return f"no price for {', '.join(bad)}"
        cash_move = -_sum_like_numpy([0.0 if isinstance(i, FutureContract) else float(q) * p * i.multiplier
                                      for i, q, p in zip(insts, qtys, prices)]) - commission
        cost_vs_mid = _sum_like_numpy([float(q) * (p - mid) * i.multiplier
                                       for i, q, p, mid in zip(insts, qtys, prices, mids)]) + commission
        holdings, equity = self.ledger.holdings_and_equity()
        for inst, qty in zip(insts, qtys):
            h = holdings.setdefault(inst.key, [inst, 0])
            h[1] += qty
        return check_buying_power(
            equity=equity, cash=self.ledger.cash,
            holdings_after=holdings.values(), order_cash=cash_move,
            cost_vs_mid=cost_vs_mid, spx=m.spot, vx_price=m.vx, params=self.margin, memo=m.memo("margin"))

    def _on_fill(self, fill: FillEvent) -> None:
        self.ledger.apply_fill(fill)
        ts = fill.ts
        d = ts.date()
        last_ts, hhmm = self._hhmm
        if last_ts is None or ts != last_ts or ts.tzinfo is not last_ts.tzinfo:
            hhmm = ts.strftime("%H:%M")
            self._hhmm = (ts, hhmm)
        per_leg = round(fill.commission / len(fill.legs), 6)
        book, intent, purpose = fill.book, fill.intent_id, fill.purpose
        self.records.fills.extend([(d, hhmm, book, intent, purpose, leg.instrument.key, leg.quantity,
                                    round(leg.price, 6), per_leg) for leg in fill.legs])
        strat = self._by_book.get(book)
        if strat is not None:
            strat.on_fill(fill, self.contexts[book])

    def _on_status(self, ev: OrderStatusEvent) -> None:
        strat = self._by_book.get(ev.book)
        if strat is not None:
            strat.on_order_status(ev, self.contexts[ev.book])

    # ---- end of day ----------------------------------------------------------------------------
    def _on_end_of_day(self, ev: EndOfDayEvent) -> None:
        m = self.market
        ledger = self.ledger
        positions = list(ledger.positions.values())
        if positions:
            ledger.mark_positions(positions, m.mid_list([p.instrument for p in positions]))
        if self._last_interest_date is not None:
            ledger.accrue_interest(m.rate, (ev.date - self._last_interest_date).days)
        self._last_interest_date = ev.date
        equity, pnls = ledger.valuation(self._books)
        self.records.equity.append((ev.date, equity, self.ledger.cash, self.ledger.interest, pnls, m.spot, m.vix))
        for s, ctx in self._eod_hooks:
            s.on_end_of_day(ev.date, ctx)
