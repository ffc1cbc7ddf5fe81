"""Build and run one backtest from a RunConfig: replay -> bus -> strategies -> simulated broker -> ledger."""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from adapters.sim.broker import SimulatedBroker
from adapters.sim.replay import HistoricalReplay
from config.settings import RunConfig
from config.wiring import build_kernel
from engine.marketmodel import PriceCache
from engine.metrics import Summary, summarize
from engine.strategy import Strategy

# Snapshot prices shared by every replay in this process (a sweep or verdict worker runs many configurations over
# the same snapshots); bounded, and results are the same with or without it.
PROCESS_PRICES = PriceCache()

FILL_COLUMNS = ["date", "time", "book", "intent_id", "purpose", "instrument", "quantity", "price", "commission"]


@dataclass
class BacktestResult:
    config: RunConfig
    equity: pd.DataFrame
    fills: pd.DataFrame
    trades: pd.DataFrame
    rejections: pd.DataFrame
    summary: Summary
    strategies: list[Strategy]
    events: int = 0
    wall_seconds: float = 0.0
    extras: dict = field(default_factory=dict)

    def book_pnl(self, book: str) -> pd.Series:
        return self.equity[f"pnl_{book}"]

    def totals(self) -> dict:
        trades = self.trades
        wins = int((trades["pnl"] > 0).sum()) if len(trades) else 0
        return {
            "trades": len(trades),
            "win_rate": wins / len(trades) if len(trades) else math.nan,
            "total_commissions": float(self.fills["commission"].sum()) if len(self.fills) else 0.0,
            "rejected_orders": len(self.rejections),
            "interest": float(self.equity["interest"].iloc[-1]) if len(self.equity) else 0.0,
            **self.pnl_split(),
        }

    def pnl_split(self) -> dict:
        """Where the money came from: starting -> final equity = each book's P&L (after its commissions and
        fees) + interest on cash. Spread and slippage are inside the fill prices, so inside the books' P&L."""
        eq = self.equity
        start = float(self.config.run.initial_equity)
        books = [c.removeprefix("pnl_") for c in eq.columns if c.startswith("pnl_")]
        fees = self.fills.groupby("book")["commission"].sum() if len(self.fills) else pd.Series(dtype=float)
        return {
            "start_equity": start,
            "book_pnl": {b: float(eq[f"pnl_{b}"].iloc[-1]) if len(eq) else 0.0 for b in books},
            "book_commissions": {b: float(fees.get(b, 0.0)) for b in books},
        }


def run_backtest(cfg: RunConfig, panel, *, start=None, end=None,
                 strategies: list[Strategy] | None = None, share_prices: bool = True) -> BacktestResult:
    """One replay. share_prices=False prices every snapshot afresh (a private cache): the same results, slower."""
    t0 = time.perf_counter()
    kernel = build_kernel(cfg, SimulatedBroker, strategies=strategies)
    kernel.price_cache = PROCESS_PRICES if share_prices else PriceCache()
    strategies, bus = kernel.strategies, kernel.bus
    replay = HistoricalReplay(panel, start or cfg.run.start, end or cfg.run.end)
    replay.bind(bus)
    replay.run()
    rec = kernel.records
    books = [s.book for s in strategies]
    eq = pd.DataFrame(
        [(d, e, c, i, *pnl, spx, vix) for d, e, c, i, pnl, spx, vix in rec.equity],
        columns=["date", "equity", "cash", "interest", *[f"pnl_{b}" for b in books], "spx", "vix"],
    )
    eq["date"] = pd.to_datetime(eq["date"])
    eq = eq.set_index("date")
    fills = pd.DataFrame(rec.fills, columns=FILL_COLUMNS)
    trades_rows = [t for s in strategies for t in getattr(s, "trades", [])]
    trades = pd.DataFrame(trades_rows, columns=None if trades_rows else ["id", "pnl"])
    rejections = pd.DataFrame(rec.rejections, columns=["date", "intent_id", "reason"])
    rf = panel.daily.get("rate_tbill", 0.0)
    summary = summarize(eq["equity"], rf)
    return BacktestResult(cfg, eq, fills, trades, rejections, summary, strategies,
                          events=bus.dispatched, wall_seconds=time.perf_counter() - t0,
                          extras={"stale_spx_opens": replay.stale_spx_opens()})


def write_outputs(result: BacktestResult, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in (("equity", result.equity), ("trades", result.trades), ("fills", result.fills)):
        frame = df.reset_index() if name == "equity" else df
        csv = out / f"{name}.csv"
        frame.to_csv(csv, index=False, float_format="%.6f")
        pq = out / f"{name}.parquet"
        frame.to_parquet(pq, index=False)
        written += [csv, pq]
    summary = {"config": result.config.source, **result.summary.as_dict(), **result.totals(),
               "stale_spx_opens": {str(y): n for y, n in result.extras.get("stale_spx_opens", {}).items()}}
    path = out / "summary.json"
    path.write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    written.append(path)
    return written


BOOK_LABELS = {"condor": "condor book", "hedge": "hedge"}


def format_summary(result: BacktestResult) -> str:
    s = result.summary
    t = result.totals()
    pct = lambda x: "n/a" if not math.isfinite(x) else f"{x * 100:.2f}%"
    num = lambda x: "n/a" if not math.isfinite(x) else f"{x:.2f}"
    signed = lambda x: f"{x:+,.0f}"
    start, gain = t["start_equity"], s.final_equity - t["start_equity"]
    rows = [
        ("period", f"{s.start} .. {s.end}"),
        ("starting equity", f"{start:,.0f}"),
        ("final equity", f"{s.final_equity:,.0f}  ({signed(gain)}, {gain / start * 100:+.2f}%)"),
    ]
    for book, pnl in t["book_pnl"].items():   # each book's trading P&L, its commissions and fees, the net
        fees = t["book_commissions"][book]
        detail = f"{signed(pnl)}  ({signed(pnl + fees)} trading, {signed(-fees)} commissions and fees)"
        rows.append((f"  {BOOK_LABELS.get(book, book)}", detail))
    rows.append(("  interest on cash", signed(t["interest"])))
    other = gain - sum(t["book_pnl"].values()) - t["interest"]
    if abs(other) >= 0.5:   # the ledger keeps equity = start + books + interest: anything else is a defect to see
        rows.append(("  unexplained", signed(other)))
    uw_end = f"back at the peak {s.under_water_to}" if s.under_water_to else "not back at the peak by the end"
    rows += [
        ("CAGR", pct(s.cagr)),
        ("volatility", pct(s.volatility)),
        ("max drawdown", f"{pct(s.max_drawdown)} (peak {s.dd_peak}, trough {s.dd_trough}, recovered {s.dd_recovery or 'not yet'})"),
        ("longest under water", f"{s.under_water_days:,} trading days (~{s.under_water_days / 252:.1f} years) from the "
                                f"peak of {s.under_water_from or '-'}, {uw_end}"
         if s.under_water_days else "never below a previous peak"),
        ("Sharpe", num(s.sharpe)),
        ("Sortino", num(s.sortino)),
        ("Calmar", num(s.calmar)),
        ("worst month", pct(s.worst_month)),
        ("trades", str(t["trades"])),
        ("win rate", pct(t["win_rate"])),
        ("costs", f"{t['total_commissions']:,.0f} commissions and fees (spread and slippage are inside fill prices)"),
        ("rejected orders", str(t["rejected_orders"])),
    ]
    stale = result.extras.get("stale_spx_opens")
    if stale:   # sessions whose open snapshot had no SPX price: no condor stop check or fill there
        rows.append(("stale SPX opens", f"{sum(stale.values())} sessions without an opening print ("
                     + ", ".join(f"{y}: {n}" for y, n in stale.items()) + ")"))
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)
