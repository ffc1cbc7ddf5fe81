"""`alvh signal`: what the configured strategies do on one day, without a broker.

The replay engine runs the configuration from ``run.start`` to the day before, then the day's open (09:30) and
close (16:00) snapshots, recording every order the strategies submit that day - the orders the daemon's paper
replay sends for the same day (tests/integration/test_signal.py) - and what stood behind them:

- the condors to open (expiry, strikes, quantity, limit credit) and to close (and why);
- each hedge layer's trigger against the signal level (on at, off below, yesterday, today);
- per instrument, what the books held at the start of the day and after the day's orders (the target);
- the orders, in the engine's price convention (positive limit = debit paid, negative = credit received).

The day's decisions use that day's prints (open and close), as the replay does; the daemon takes the same
decisions at 09:31 and 15:45 on live quotes. Reports: analysis/signal_report.py.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from adapters.sim.broker import SimulatedBroker
from adapters.sim.replay import HistoricalReplay
from config.wiring import build_kernel
from engine.events import Phase
from engine.instruments import Equity, FutureContract, Instrument, OptionContract
from engine.orders import OrderRequest
from strategies.alvh.hedge import LayeredVixHedge
from strategies.alvh.signals import read_signal
from strategies.iron_condor import Condor, IronCondorBook

EXIT_REASONS = {
    "time": "{dte} days to expiry, at or below the time exit of {exit_dte}",
    "take_profit": "{take:.0%} of the credit captured (take profit)",
    "stop": "the loss reached {stop:g}x the credit (stop)",
    "expired": "expires today (cash settled)",
}


@dataclass
class OrderLine:
    phase: str                  # "open" (09:30) or "close" (16:00)
    intent_id: str
    book: str
    purpose: str
    quantity: int
    legs: list[tuple[str, int]]  # (instrument, signed ratio per unit)
    limit: float | None          # engine convention: positive = debit paid, negative = credit received
    status: str                  # what the replay's simulated broker did with it: filled / rejected: reason / working


@dataclass
class CondorLine:
    cid: str
    root: str
    expiry: dt.date
    strikes: tuple[float, float, float, float]   # long put, short put, short call, long call
    quantity: int
    intent_id: str = ""
    limit: float | None = None   # per condor, engine convention (an opening credit is negative)
    credit: float = math.nan     # the opening credit per condor (the model mid at decision, or the fill)
    entry_date: dt.date | None = None
    reason: str = ""


@dataclass
class LayerLine:
    name: str
    on_at: float
    off_below: float
    was_on: bool
    is_on: bool
    level: float
    holding: str                 # the layer's instrument (its label), "" when it has none
    units: float                 # size in the budget's units (contracts of exposure, before rounding)
    contracts: list[tuple[str, int]] = field(default_factory=list)   # what the layer holds after the day


@dataclass
class PositionLine:
    book: str
    instrument: str
    held: int                    # at the start of the day
    target: int                  # after the day's orders
    traded: int                  # by the day's filled orders (the rest of target - held: expiry/settlement)


@dataclass
class DaySignal:
    day: dt.date
    config: str
    history_start: dt.date
    spx: float
    vix: float
    equity_start: float
    equity_end: float
    hedge_signal: str = ""
    signal_value: float = math.nan
    gates: list[str] = field(default_factory=list)
    condor_opens: list[CondorLine] = field(default_factory=list)
    condor_closes: list[CondorLine] = field(default_factory=list)
    layers: list[LayerLine] = field(default_factory=list)
    positions: list[PositionLine] = field(default_factory=list)
    orders: list[OrderLine] = field(default_factory=list)


def instrument_label(inst: Instrument) -> str:
    if isinstance(inst, OptionContract):
        return f"{inst.root} {inst.expiry} {inst.strike:g}{inst.right}"
    if isinstance(inst, FutureContract):
        return f"{inst.symbol} {inst.expiry} future"
    if isinstance(inst, Equity):
        return f"{inst.symbol} shares"
    return inst.key


def _positions(ledger) -> dict[tuple[str, str], tuple[str, int]]:
    return {(b, k): (instrument_label(p.instrument), p.quantity) for (b, k), p in ledger.positions.items()
            if p.quantity}


def _condor_by_intent(book: IronCondorBook, intent: str) -> Condor | None:
    for c in [*book.condors.values(), *book.closed]:
        if intent in (c.open_intent, c.close_intent):
            return c
    return None


def _float(x) -> float | None:
    return None if x is None else float(x)


def _condor_line(c: Condor, **kw) -> CondorLine:
    return CondorLine(c.cid, c.legs[0].root, c.expiry, tuple(float(leg.strike) for leg in c.legs), c.quantity,
                      credit=float(c.credit), entry_date=c.entry_date, **kw)


def _exit_reason(c: Condor, book: IronCondorBook, day: dt.date) -> str:
    p = book.p
    return EXIT_REASONS.get(c.exit_reason, c.exit_reason).format(
        dte=(c.expiry - day).days, exit_dte=p.exit_dte, take=p.take_profit or 0, stop=p.stop_loss or 0)


def compute_signal(cfg, panel, day: dt.date, start: dt.date | None = None) -> DaySignal:
    """Replay `cfg` from `start` (default run.start) through `day` and describe the day's decisions."""
    orders: list[tuple[dt.datetime, OrderRequest]] = []
    kernel = build_kernel(cfg, SimulatedBroker)
    submit = kernel.submit

    def recording_submit(order: OrderRequest) -> None:   # every order, also those the kernel refuses
        orders.append((kernel.bus.now, order))
        submit(order)

    kernel.submit = recording_submit
    dates = list(panel.daily.index.date)
    if day not in dates:
        raise ValueError(f"{day} is not a trading day in the market data")
    i = dates.index(day)
    first = start or cfg.run.start
    if i > 0 and dates[i - 1] >= first:
        prior = HistoricalReplay(panel, first, dates[i - 1])
        prior.bind(kernel.bus)
        prior.run()
    ledger = kernel.ledger
    before = _positions(ledger)
    equity_start = ledger.equity()
    hedges = [s for s in kernel.strategies if isinstance(s, LayeredVixHedge)]
    was_on = {id(h): list(h.schedule.states) for h in hedges}
    orders.clear()
    today = HistoricalReplay(panel, day, day)
    today.bind(kernel.bus)
    today.run()
    close = today.close_quotes(today.dates.index(day))

    rejected = {intent: reason for d, intent, reason in kernel.records.rejections if d == day}
    filled = {f[3] for f in kernel.records.fills if f[0] == day}
    sig = DaySignal(day, cfg.source, first, float(close.spx), float(close.vix), equity_start, ledger.equity())
    for ts, o in orders:
        status = ("rejected: " + rejected[o.intent_id]) if o.intent_id in rejected else (
            "filled" if o.intent_id in filled else "working")
        sig.orders.append(OrderLine("open" if ts.time() < dt.time(12) else "close", o.intent_id, o.book, o.purpose,
                                    o.quantity, [(instrument_label(leg.instrument), leg.ratio) for leg in o.legs],
                                    _float(o.limit), status))
    for book in (s for s in kernel.strategies if isinstance(s, IronCondorBook)):
        for o in (o for _, o in orders if o.book == book.book):
            c = _condor_by_intent(book, o.intent_id)
            if c is None:
                continue
            if o.purpose == "open":
                sig.condor_opens.append(_condor_line(c, intent_id=o.intent_id, limit=_float(o.limit)))
            elif o.purpose == "close":
                sig.condor_closes.append(_condor_line(c, intent_id=o.intent_id, limit=_float(o.limit),
                                                      reason=_exit_reason(c, book, day)))
        for c in book.closed:
            if c.exit_reason == "expired" and c.exit_date == day:
                sig.condor_closes.append(_condor_line(c, reason=_exit_reason(c, book, day)))
    for h in hedges:
        sig.hedge_signal = h.p.signal
        sig.gates = list(h.p.gates.use)
        row = h.activity[-1] if h.activity and h.activity[-1][0] == day else None
        snap_signal = row[1] if row is not None else read_signal(h.p.signal, _close_snapshot(day, close))
        sig.signal_value = float(snap_signal)
        for lp, layer, prev, now in zip(h.p.layers, h.layers, was_on[id(h)], h.schedule.states):
            sig.layers.append(LayerLine(lp.name, lp.threshold, lp.threshold - lp.hysteresis, prev, now,
                                        float(layer.level), layer.held.label if layer.held is not None else "",
                                        float(layer.units),
                                        [(instrument_label(k), q) for k, q in sorted(layer.qty.items(),
                                                                                     key=lambda kv: kv[0].key) if q]))
    traded: dict[tuple[str, str], int] = {}
    for _, o in orders:
        if o.intent_id in filled:
            for leg in o.legs:
                key = (o.book, leg.instrument.key)
                traded[key] = traded.get(key, 0) + leg.ratio * o.quantity
    after = _positions(ledger)
    for key in sorted(set(before) | set(after)):
        label = (after.get(key) or before.get(key))[0]
        held, target = before.get(key, ("", 0))[1], after.get(key, ("", 0))[1]
        sig.positions.append(PositionLine(key[0], label, held, target, traded.get(key, 0)))
    return sig


def _close_snapshot(day: dt.date, quotes):
    from engine.clock import ET
    from engine.events import MarketSnapshot

    return MarketSnapshot(dt.datetime.combine(day, dt.time(16), tzinfo=ET), day, Phase.CLOSE, quotes)
