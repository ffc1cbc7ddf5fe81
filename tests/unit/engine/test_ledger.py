"""Ledger invariants, as property tests: equity = cash + marks; flat after settlement; cash conservation."""
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.clock import ET
from engine.events import FillEvent, LegFill
from engine.instruments import Equity, spx_option, vx_future
from engine.ledger import Ledger

EXP = dt.date(2024, 3, 15)
TS = dt.datetime(2024, 1, 2, 16, tzinfo=ET)
INSTRUMENTS = [spx_option(EXP, 4500, "P"), spx_option(EXP, 4600, "P"), spx_option(EXP, 5000, "C"),
               vx_future(dt.date(2024, 2, 14)), Equity("VIXY")]

trade = st.tuples(st.integers(0, len(INSTRUMENTS) - 1), st.integers(-5, 5).filter(bool),
                  st.floats(0.05, 200, allow_nan=False), st.floats(0, 10, allow_nan=False))


def fill(inst, qty, price, commission=0.0, book="b"):
    return FillEvent(TS, "i", book, "x", (LegFill(inst, qty, price),), 1, price, commission)


@settings(max_examples=150, deadline=None)
@given(st.lists(trade, max_size=30), st.lists(st.floats(0.05, 300, allow_nan=False), min_size=5, max_size=5))
def test_equity_is_cash_plus_marks_and_cash_is_conserved(trades, marks):
    led = Ledger(1_000_000)
    for idx, qty, price, comm in trades:
        led.apply_fill(fill(INSTRUMENTS[idx], qty, price, comm, book="ab"[idx % 2]))
    led.mark({i.key: m for i, m in zip(INSTRUMENTS, marks)}, settle_futures=True)
    mv = sum(p.market_value() for p in led.positions.values())
    assert led.equity() == pytest.approx(led.cash + mv, abs=1e-6)
    flows = sum(b.cash_flow for b in led.books.values())
    assert led.cash == pytest.approx(led.initial_cash + led.interest + flows, abs=1e-6)
    # equity is the sum of starting cash and every book's P&L
    assert led.equity() == pytest.approx(led.initial_cash + sum(led.book_pnl(b) for b in led.books), abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(st.lists(trade, max_size=20), st.floats(3000, 6000), st.floats(10, 80))
def test_book_is_flat_after_settlement(trades, spx_settle, vx_settle):
    led = Ledger(100_000)
    for idx, qty, price, comm in trades:
        led.apply_fill(fill(INSTRUMENTS[idx], qty, price, comm))
    for (book, key), pos in list(led.positions.items()):
        inst = pos.instrument
        if isinstance(inst, Equity):
            led.apply_fill(fill(inst, -pos.quantity, 10.0))
            continue
        px = vx_settle if key.startswith("VX") else inst.intrinsic(spx_settle)
        led.settle(book, key, px, TS)
    assert led.positions == {}
    assert led.equity() == pytest.approx(led.cash)


def test_futures_variation_margin_moves_cash_daily():
    led = Ledger(100_000)
    fut = vx_future(dt.date(2024, 2, 14))
    led.apply_fill(fill(fut, 2, 15.0, commission=5.0))
    assert led.cash == pytest.approx(100_000 - 5.0)      # no premium for futures
    led.mark({fut.key: 16.5})
    assert led.cash == pytest.approx(100_000 - 5.0 + 2 * 1.5 * 1000)
    assert led.market_value() == pytest.approx(0.0)
    ev = led.settle("b", fut.key, 14.0, TS)
    assert ev.cash == pytest.approx(2 * (14.0 - 16.5) * 1000)
    assert led.equity() == pytest.approx(100_000 - 5.0 + 2 * (14.0 - 15.0) * 1000)
    assert led.book("b").realized == pytest.approx(2 * (14.0 - 15.0) * 1000)


def test_short_condor_credit_and_settlement_pnl():
    led = Ledger(50_000)
    lp, sp = spx_option(EXP, 4400, "P"), spx_option(EXP, 4450, "P")
    led.apply_fill(FillEvent(TS, "i", "c", "x", (LegFill(lp, 1, 2.0), LegFill(sp, -1, 4.0)), 1, -2.0, 2.5))
    assert led.cash == pytest.approx(50_000 + 200 - 2.5)
    # settles at 4420: short put owes 30, long put worth 0
    led.settle("c", sp.key, sp.intrinsic(4420), TS)
    led.settle("c", lp.key, lp.intrinsic(4420), TS)
    assert led.equity() == pytest.approx(50_000 + 200 - 2.5 - 3000)


def test_interest_accrues_on_cash():
    led = Ledger(1_000_000)
    amt = led.accrue_interest(0.05, 365)
    assert amt == pytest.approx(1_000_000 * (2.718281828459045 ** 0.05 - 1), rel=1e-9)
    assert led.interest == pytest.approx(amt)
