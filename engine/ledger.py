"""Portfolio ledger: cash, positions, marks, settlements, variation margin, interest.

Invariants (property-tested): equity == cash + sum(market values); cash == initial cash + interest +
sum of every book's cash flows; after every position settles the book is flat and equity == cash.
Positions are kept per book (strategy) so condor and hedge P&L can be told apart in one account.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from engine.events import FillEvent, SettlementEvent
from engine.instruments import FutureContract, Instrument


@dataclass(slots=True)
class Position:
    book: str
    instrument: Instrument
    quantity: int = 0
    avg_price: float = 0.0
    mark: float = 0.0          # last price used for valuation
    vm_price: float = 0.0      # futures only: price up to which variation margin has been paid
    is_future: bool = field(init=False, default=False)
    multiplier: int = field(init=False, default=1)

    def __post_init__(self) -> None:
        # read on every valuation: fixed by the instrument, so looked up once
        self.is_future = isinstance(self.instrument, FutureContract)
        self.multiplier = self.instrument.multiplier

    def market_value(self) -> float:
        if self.is_future:
            # daily variation margin moves value into cash; what is left is the move since the last settle
            return self.quantity * (self.mark - self.vm_price) * self.multiplier
        return self.quantity * self.mark * self.multiplier


@dataclass(slots=True)
class BookTotals:
    cash_flow: float = 0.0       # premiums, settlements, variation margin, commissions
    commissions: float = 0.0
    realized: float = 0.0
    trades: int = 0


class Ledger:
    def __init__(self, initial_cash: float) -> None:
        self.initial_cash = float(initial_cash)
        self.cash = float(initial_cash)
        self.interest = 0.0
        self.positions: dict[tuple[str, str], Position] = {}
        self.books: dict[str, BookTotals] = {}

    # ---- queries -----------------------------------------------------------------------------
    def book(self, name: str) -> BookTotals:
        totals = self.books.get(name)
        if totals is None:
            totals = self.books[name] = BookTotals()
        return totals

    def market_value(self, book: str | None = None) -> float:
        # the values in position order, added by sum() as before (inlined Position.market_value: the hot path)
        return sum([p.quantity * (p.mark - p.vm_price) * p.multiplier if p.is_future else p.quantity * p.mark * p.multiplier
                    for p in self.positions.values() if book is None or p.book == book])

    def equity(self) -> float:
        return self.cash + self.market_value()

    def equity_at(self, prices: dict[str, float]) -> float:
        """Equity if every position were marked at `prices` (unknown or NaN: its last mark); changes nothing,
        so a loss limit can watch intraday without moving the day's variation margin."""
        total = self.cash
        for pos in self.positions.values():
            px = prices.get(pos.instrument.key, math.nan)
            mark = pos.mark if math.isnan(px) else px
            base = pos.vm_price if pos.is_future else 0.0
            total += pos.quantity * (mark - base) * pos.multiplier
        return total

    def valuation(self, books: list[str]) -> tuple[float, tuple[float, ...]]:
        """(equity(), (book_pnl(b) for b in books)) from one pass over the positions, added in the same order."""
        vals = []
        per_book = {b: [] for b in books}   # each book's values, in position order like `vals`
        for p in self.positions.values():
            v = p.quantity * (p.mark - p.vm_price) * p.multiplier if p.is_future else p.quantity * p.mark * p.multiplier
            vals.append(v)
            mine = per_book.get(p.book)
            if mine is not None:
                mine.append(v)
        return self.cash + sum(vals), tuple(self.book(b).cash_flow + sum(per_book[b]) for b in books)

    def book_pnl(self, book: str) -> float:
        """Cash flows plus open market value of one book (interest is the account's, not a book's)."""
        return self.book(book).cash_flow + self.market_value(book)

    def book_positions(self, book: str) -> dict[str, Position]:
        return {k: p for (b, k), p in self.positions.items() if b == book}

    def quantity(self, book: str, key: str) -> int:
        pos = self.positions.get((book, key))
        return pos.quantity if pos else 0

    def net_holdings(self) -> dict[str, list]:
        """Account-level view (what a broker reports): key -> [instrument, net quantity across books]."""
        out: dict[str, list] = {}
        for p in self.positions.values():
            h = out.setdefault(p.instrument.key, [p.instrument, 0])
            h[1] += p.quantity
        return out

    def holdings_and_equity(self) -> tuple[dict[str, list], float]:
        """(net_holdings(), equity()) from one pass over the positions (the pre-trade check needs both)."""
        out: dict[str, list] = {}
        get = out.get
        vals = []
        for p in self.positions.values():
            inst = p.instrument
            q = p.quantity
            h = get(inst.key)
            if h is None:
                out[inst.key] = [inst, q]
            else:
                h[1] += q
            vals.append(q * (p.mark - p.vm_price) * p.multiplier if p.is_future else q * p.mark * p.multiplier)
        return out, self.cash + sum(vals)

    def net_positions(self) -> dict[str, int]:
        return {k: q for k, (_, q) in self.net_holdings().items() if q != 0}

    # ---- updates -----------------------------------------------------------------------------
    def _cash(self, book: str, amount: float) -> None:
        self.cash += amount
        self.book(book).cash_flow += amount

    def apply_fill(self, fill: FillEvent) -> None:
        totals = self.book(fill.book)
        for leg in fill.legs:
            self._apply_leg(fill.book, leg.instrument, leg.quantity, leg.price)
        self._cash(fill.book, -fill.commission)
        totals.commissions += fill.commission
        totals.trades += 1

    def _apply_leg(self, book: str, inst: Instrument, qty: int, price: float) -> None:
        if qty == 0:
            return
        key = (book, inst.key)
        pos = self.positions.get(key)
        if pos is None:
            pos = self.positions[key] = Position(book, inst, 0, 0.0, price, price)
        mult = inst.multiplier
        totals = self.book(book)
        if pos.is_future:
            # settle variation margin up to the trade price, then only commissions touch cash
            amount = pos.quantity * (price - pos.vm_price) * mult
            pos.vm_price = price
        else:
            amount = -qty * price * mult
        self.cash += amount   # _cash() inlined: the book's totals are at hand
        totals.cash_flow += amount
        old = pos.quantity
        new = old + qty
        if old == 0 or (old > 0) == (qty > 0):
            pos.avg_price = (pos.avg_price * abs(old) + price * abs(qty)) / abs(new)
        else:
            closed = min(abs(qty), abs(old))
            sign = 1 if old > 0 else -1
            totals.realized += sign * closed * (price - pos.avg_price) * mult
            if abs(qty) > abs(old):  # flipped through zero
                pos.avg_price = price
        pos.quantity = new
        pos.mark = price
        if new == 0:
            del self.positions[key]

    def mark(self, prices: dict[str, float], settle_futures: bool = True) -> None:
        """Value positions at `prices` (instrument key -> price). At the close, futures variation
        margin moves into cash (settle_futures) as the clearing house does each day."""
        self.mark_positions(list(self.positions.values()), [prices.get(key) for _, key in self.positions],
                            settle_futures)

    def mark_positions(self, positions: list[Position], prices: list[float | None],
                       settle_futures: bool = True) -> None:
        """mark() with the prices given per position, in the order of `positions` (a snapshot of
        self.positions.values()): the end-of-day marks without building a key -> price dict."""
        for pos, px in zip(positions, prices):
            if px is None or math.isnan(px):  # unknown or NaN: keep the last mark rather than invent one
                continue
            pos.mark = px
            if pos.is_future and settle_futures:
                self._cash(pos.book, pos.quantity * (px - pos.vm_price) * pos.multiplier)
                pos.vm_price = px

    def settle(self, book: str, key: str, settlement_price: float, ts) -> SettlementEvent:
        """Remove an expiring position at its settlement value (cash-settled products)."""
        pos = self.positions.pop((book, key))
        mult = pos.multiplier
        totals = self.book(book)
        if pos.is_future:
            cash = pos.quantity * (settlement_price - pos.vm_price) * mult
        else:
            cash = pos.quantity * settlement_price * mult
        self._cash(book, cash)
        sign = 1 if pos.quantity > 0 else -1
        totals.realized += sign * abs(pos.quantity) * (settlement_price - pos.avg_price) * mult
        return SettlementEvent(ts, book, pos.instrument, pos.quantity, settlement_price, cash)

    def accrue_interest(self, annual_rate: float, days: float) -> float:
        """Interest on the cash balance (T-bill collateral) for `days` calendar days, continuous compounding.
        A negative balance pays the same rate (no spread modelled)."""
        if days <= 0 or not math.isfinite(annual_rate):
            return 0.0
        amount = self.cash * (math.exp(annual_rate * days / 365.0) - 1.0)
        self.cash += amount
        self.interest += amount
        return amount
