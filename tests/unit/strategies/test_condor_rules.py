"""Condor book rules on small synthetic markets (no real data needed)."""
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from adapters.sim.backtest import run_backtest
from config.settings import load_config
from engine.calendar import trading_days


@dataclass
class SyntheticPanel:
    daily: pd.DataFrame

    # no VX contracts: the replay reads MarketPanel's sparse VX cells, here all empty
    def vx_expiries(self):
        return np.array([], dtype="datetime64[D]")

    def vx_settle_cells(self):
        return np.array([], dtype=int), np.array([], dtype=int), np.array([], dtype=float)

    vx_open_cells = vx_settle_cells


def make_panel(spx: np.ndarray, vix: np.ndarray, start="2021-01-04") -> SyntheticPanel:
    idx = trading_days(start, "2022-12-31")[: len(spx)]
    # real opening prints: an SPX open equal to the prior close, or a day with open = high = low = close,
    # reads as "no open" (stale), so each SPX open is 0.01 above the close and each day has a range
    spx_open = spx + 0.01
    df = pd.DataFrame({"spx_open": spx_open, "spx_close": spx, "spx_high": spx_open, "spx_low": spx,
                       "vix_open": vix, "vix_close": vix, "vix_high": vix + 0.01, "vix_low": vix,
                       "rate_tbill": 0.01}, index=idx)
    return SyntheticPanel(df)


def config(**condor):
    base = {"entry_frequency": "monthly", "max_open": 1, "risk_per_trade": 0.05, "max_book_risk": 0.2}
    base.update(condor)
    return load_config(None, {"condor": base, "run": {"start": "2021-01-01", "end": "2022-12-31"}})


def test_calm_market_takes_profit_or_exits_on_time():
    n = 60
    panel = make_panel(np.full(n, 4000.0), np.full(n, 20.0))
    res = run_backtest(config(), panel)
    t = res.trades
    assert len(t) >= 1
    first = t.iloc[0]
    assert first.exit_reason in ("take_profit", "time")
    assert first.pnl > 0                       # flat market, vol unchanged: theta was earned


def test_crash_triggers_stop_at_the_snapshot_it_happens():
    n = 60
    spx = np.full(n, 4000.0)
    vix = np.full(n, 18.0)
    spx[10:] = 3400.0                          # -15% gap on day 10 (at the open)
    vix[10:] = 45.0
    panel = make_panel(spx, vix)
    res = run_backtest(config(take_profit=None), panel)
    first = res.trades.iloc[0]
    assert first.exit_reason == "stop"
    assert pd.Timestamp(first.exit_date) == panel.daily.index[10]
    assert first.pnl < -first.credit * 100 * first.quantity   # lost more than the credit


def test_held_to_expiry_settles_at_intrinsic():
    n = 80
    spx = np.full(n, 4000.0)
    spx[30:] = 3000.0                           # far below the long put: max loss at settlement
    panel = make_panel(spx, np.full(n, 20.0))
    res = run_backtest(config(take_profit=None, stop_loss=None, exit_dte=0, min_dte=10, target_dte=40,
                              max_dte=50, expiries="monthly"), panel)
    first = res.trades.iloc[0]
    assert first.exit_reason == "expired"
    width = first.short_put - first.long_put
    expected = (first.credit - width) * 100 * first.quantity - first.commissions
    assert first.pnl == pytest.approx(expected, abs=0.01)
    # the ledger agrees with the trade record on the settlement day (before the next entry)
    assert res.equity["pnl_condor"].loc[pd.Timestamp(first.exit_date)] == pytest.approx(first.pnl, abs=0.01)


def test_vix_entry_filter_blocks_entries():
    n = 40
    panel = make_panel(np.full(n, 4000.0), np.full(n, 35.0))
    res = run_backtest(config(max_vix_entry=30.0), panel)
    assert len(res.fills) == 0


def test_partially_filled_entry_keeps_the_filled_units_and_state_round_trips():
    import datetime as dt

    from engine.clock import ET
    from engine.events import FillEvent, LegFill, OrderState, OrderStatusEvent
    from engine.instruments import OptionContract
    from strategies.iron_condor import Condor, CondorParams, IronCondorBook

    book = IronCondorBook(CondorParams())
    exp = dt.date(2024, 3, 15)
    legs = tuple(OptionContract("SPX", exp, k, r, "AM") for k, r in ((4400, "P"), (4500, "P"), (5000, "C"), (5100, "C")))
    c = Condor("c1", legs, (1, -1, -1, 1), 5, dt.date(2024, 2, 1), exp, credit=10.0, max_loss=90.0, open_intent="o1")
    book.condors["c1"] = c
    book.by_intent["o1"] = "c1"
    ts = dt.datetime(2024, 2, 1, 16, tzinfo=ET)
    book.on_fill(FillEvent(ts, "o1", "condor", "x1", tuple(LegFill(l, r * 2, 1.0) for l, r in zip(legs, c.ratios)),
                           2, -9.5, 10.0), None)
    assert c.status == "pending" and c.filled == 2
    book.on_order_status(OrderStatusEvent(ts, "o1", "condor", OrderState.CANCELLED, 2, 3), None)
    assert "c1" in book.condors and c.quantity == 2 and c.status == "open" and c.credit == 9.5
    again = IronCondorBook(CondorParams())
    again.restore(book.state())
    assert again.condors["c1"].legs == legs and again.condors["c1"].quantity == 2


def test_next_snapshot_fills_trade_at_the_following_open():
    n = 40
    panel = make_panel(np.full(n, 4000.0), np.full(n, 20.0))
    cfg = load_config(None, {"condor": {"entry_frequency": "monthly", "max_open": 1, "risk_per_trade": 0.05,
                                        "max_book_risk": 0.2},
                             "run": {"start": "2021-01-01", "end": "2022-12-31"},
                             "execution": {"fill_timing": "next_snapshot"}})
    res = run_backtest(cfg, panel)
    opens = res.fills[res.fills.purpose == "open"]
    assert len(opens) > 0
    first = opens.iloc[0]
    # decided at the close of the first session (2021-01-04), filled at 09:30 on the next one
    assert str(first.date) == "2021-01-05" and first.time == "09:30"
    same = run_backtest(load_config(None, {"condor": {"entry_frequency": "monthly", "max_open": 1,
                                                      "risk_per_trade": 0.05, "max_book_risk": 0.2},
                                           "run": {"start": "2021-01-01", "end": "2022-12-31"}}), panel)
    s_first = same.fills[same.fills.purpose == "open"].iloc[0]
    assert str(s_first.date) == "2021-01-04" and s_first.time == "16:00"
