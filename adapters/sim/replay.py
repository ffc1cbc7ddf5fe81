"""Historical replay: turns the validated daily panel into market snapshots on the exchange calendar.

Two snapshots per trading day, each built only from what was known at that instant:
- open (09:30 ET): SPX/VIX-family opens; each VX contract at its opening trade where the CFE file has one,
  else at the prior settlement (the day's settle is published at 4:15 pm); ETPs, VVIX, SKEW and the other
  series at the prior close; the SPX open as the AM-settlement (SOQ) proxy; the final VX settlement of a
  contract expiring today (VRO/SOQ is set at the open). Every price that is not from this instant (a prior
  close or settle carried forward, a fallback for a missing or stale open) is named in `MarketQuotes.stale`
  (a series name, or an instrument key such as "VX 2018-02-14" or "VXX"): strategies may read it as
  information, the simulated broker never fills at it (engine.marketmodel.MarketModel.fresh);
- close (16:00 ET): closes, the day's VX settlements, ETP closes.
"SPXTR" in `etps` is the S&P 500 total-return index (engine.dividends.total_return_index over the SPX closes):
the day's TR close at the close; at the open the prior TR close x (SPX open / prior SPX close), i.e. the price
move known at 09:30 and no dividend accrual for the day yet.
The risk-free rate is the prior trading day's T-bill observation (FRED publishes with a lag).
Intraday bars can plug in later as extra INTRADAY snapshots between the two.

The panel's columns as arrays, and every snapshot once built, are kept per panel and process (ReplayMarket in
the panel's memo): the configurations of a sweep or verdict replay the same snapshot objects, so a snapshot is
built once per worker and the kernel's price cache can recognise it.
"""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd

from adapters.data.open_prints import stale_open_counts, stale_opens
from engine.bus import EventBus
from engine.clock import ET
from engine.dividends import total_return_index
from engine.events import MarketQuotes, MarketSnapshot, Phase
from engine.instruments import FutureContract

INDEX_FIELDS = ("spx", "vix", "vix9d", "vix3m", "vix6m")
TR_SYMBOL = "SPXTR"   # the S&P 500 total-return index, carried like an ETP
ETP_COLUMNS = {"VIXY": "vixy_close", "VIXM": "vixm_close", "VXX": "vxx_close", "VXX_A": "vxx_a_close",
               "UVXY": "uvxy_close", "SVXY": "svxy_close"}
_OPEN_STALE = ("vvix", "skew", "extra")   # close-only series: at the open always the prior close


class ReplayRangeError(ValueError):
    """The requested window has no data: a user error, reported as one sentence."""


def _col(daily: pd.DataFrame, name: str) -> np.ndarray:
    if name in daily.columns:
        return daily[name].to_numpy(dtype=float)
    return np.full(len(daily), math.nan)


def _usable_open(daily: pd.DataFrame, name: str, close: np.ndarray,
                 stale: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Opening prints a trader could have seen at 09:30, and the days that have none.

    Some sources are close-only for years (open == close: VIX9D 2011-13, VIX6M 2008-13, VIX 1990-91) and
    Cboe's VIX file has opens outside the day's range before 2007 (e.g. 2006-02-08 open 41.60, range
    12-13); `stale` marks more days without a real open (the SPX open carried from the prior close). Using
    such an "open" would either leak the close or trade on a bad print, so those opens are replaced by the
    prior close (known at the open, as information), returned as missing in the mask, and counted in
    `open_fallbacks`.
    """
    o = _col(daily, f"{name}_open").copy()
    hi, lo = _col(daily, f"{name}_high"), _col(daily, f"{name}_low")
    has_range = np.isfinite(hi) & np.isfinite(lo)
    close_only = (o == close) & np.where(has_range, hi == lo, True)
    bad = ~np.isfinite(o) | close_only | (has_range & ((o > hi * 1.0001) | (o < lo * 0.9999)))
    if stale is not None:
        bad |= stale
    prior = np.concatenate([[math.nan], close[:-1]])
    bad &= np.isfinite(close)  # only days the series exists
    o[bad] = prior[bad]
    _usable_open.fallbacks[name] = int(bad.sum())
    return o, bad


_usable_open.fallbacks = {}


def _finite_dicts(columns: dict, n: int) -> list[dict]:
    """Per row: {name: value} of the columns with a finite value (Python floats)."""
    rows: list[dict] = [{} for _ in range(n)]
    for name, a in columns.items():
        vals = a.tolist()
        for i in np.flatnonzero(np.isfinite(a)).tolist():
            rows[i][name] = vals[i]
    return rows


def _row_bounds(cells: tuple, n: int) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Cells with each row's [start, end) bounds: row i is cols/vals[starts[i]:starts[i + 1]] (numpy, made Python
    values per row when that row is first used: ~100k fewer objects held)."""
    rows, cols, vals = cells
    return np.searchsorted(rows, np.arange(n + 1)).tolist(), np.asarray(cols), np.asarray(vals, dtype="float64")


class ReplayMarket:
    """The panel as per-day Python values, and the snapshots built from them (each built once, then reused)."""

    def __init__(self, panel) -> None:
        daily = panel.daily
        dates_all = daily.index
        n = len(dates_all)
        self.index = dates_all
        self.dates = [d.date() for d in dates_all]
        close = {f: _col(daily, f"{f}_close") for f in INDEX_FIELDS}
        spx_stale = stale_opens(_col(daily, "spx_open"), close["spx"])
        opens = {f: _usable_open(daily, f, close[f], spx_stale if f == "spx" else None) for f in INDEX_FIELDS}
        self.c = {f: a.tolist() for f, a in close.items()}
        self.o = {f: a.tolist() for f, (a, _) in opens.items()}
        self.o_stale = {f: bad.tolist() for f, (_, bad) in opens.items()}
        self.spx_open_missing = opens["spx"][1]   # per day: no real SPX open (the prior close is carried)
        self.vvix = _col(daily, "vvix_close").tolist()
        self.skew = _col(daily, "skew_close").tolist()
        self.rate = _col(daily, "rate_tbill").tolist()
        self.etp_close = _finite_dicts({sym: _col(daily, col) for sym, col in ETP_COLUMNS.items()}, n)
        self.tr = total_return_index(dates_all, close["spx"]).tolist()
        # every other daily series (e.g. cor1m, dspx, dff) rides along in `extra`, so a strategy can use
        # any series in the data dir by name: the close value at the close, the prior close at the open
        known = {f"{f}_{k}" for f in INDEX_FIELDS for k in ("open", "high", "low", "close")}
        known |= {"vvix_close", "skew_close", "rate_tbill", *ETP_COLUMNS.values()}
        self.extra = _finite_dicts({c.removesuffix("_close"): daily[c].to_numpy(dtype=float) for c in daily.columns
                                    if c not in known and c.endswith("_close") or c == "dff"}, n)
        self.vx_exp = [pd.Timestamp(e).date() for e in panel.vx_expiries()]
        self._vx_settle = _row_bounds(panel.vx_settle_cells(), n)   # MarketPanel's sparse (row, column, value) cells
        self._vx_opens = _row_bounds(panel.vx_open_cells(), n)
        self._vx_rows: list[list | None] = [None] * n   # per row, built on first use: (expiry, settle) pairs
        self.snaps: list[tuple[MarketSnapshot, MarketSnapshot] | None] = [None] * n

    @classmethod
    def of(cls, panel) -> ReplayMarket:
        """The one ReplayMarket of this panel in this process."""
        memo = getattr(panel, "_memo", None)
        if memo is None:
            return cls(panel)
        m = memo.get("replay_market")
        if m is None:
            m = memo["replay_market"] = cls(panel)
        return m

    def _settles(self, i: int) -> list[tuple[dt.date, float]]:
        row = self._vx_rows[i]
        if row is None:
            starts, cols, vals = self._vx_settle
            s, e = starts[i], starts[i + 1]
            exp = self.vx_exp
            row = self._vx_rows[i] = list(zip([exp[j] for j in cols[s:e].tolist()], vals[s:e].tolist()))
        return row

    def vx_row(self, i: int, today: dt.date, include_expiring: bool) -> dict[dt.date, float]:
        row = self._settles(i)
        if include_expiring:
            return {e: v for e, v in row if e >= today}
        return {e: v for e, v in row if e > today}

    def open_vx(self, i: int, today: dt.date) -> tuple[dict[dt.date, float], list[str]]:
        """VX at 09:30: each live contract's opening trade where it has one, else its prior settlement (named
        stale). Contracts without a prior settlement are left out, as before."""
        if i == 0:
            return {}, []
        starts, cols, vals = self._vx_opens
        s, e = starts[i], starts[i + 1]
        exp = self.vx_exp
        opens = {exp[j]: v for j, v in zip(cols[s:e].tolist(), vals[s:e].tolist())}
        out, stale = {}, []
        for e, prior in self.vx_row(i - 1, today, include_expiring=True).items():
            o = opens.get(e)
            if o is not None and e > today:
                out[e] = o
            else:
                out[e] = prior
                stale.append(FutureContract("VX", e).key)
        return out, stale

    def open_quotes(self, i: int) -> MarketQuotes:
        today = self.dates[i]
        p = i - 1
        o = self.o
        final = {e: v for e, v in self._settles(i) if e == today}
        stale = {f for f in INDEX_FIELDS if self.o_stale[f][i]}
        stale.update(_OPEN_STALE)
        if p >= 0:
            etps = dict(self.etp_close[p])
            stale.update(etps)   # close-only files: every ETP is at its prior close
            tr_open = self.tr[p] * o["spx"][i] / self.c["spx"][p]
            if math.isfinite(tr_open):
                etps[TR_SYMBOL] = tr_open   # moves with the SPX open: as fresh as that open
                if "spx" in stale:
                    stale.add(TR_SYMBOL)
            vx, vx_stale = self.open_vx(i, today)
            stale.update(vx_stale)
            return MarketQuotes(
                spx=o["spx"][i], vix=o["vix"][i], rate=self.rate[p], vix9d=o["vix9d"][i], vix3m=o["vix3m"][i],
                vix6m=o["vix6m"][i], vvix=self.vvix[p], skew=self.skew[p],
                vx=vx, etps=etps, spx_soq=o["spx"][i],
                vx_final=final, extra=self.extra[p], stale=frozenset(stale))
        return MarketQuotes(
            spx=o["spx"][i], vix=o["vix"][i], rate=math.nan, vix9d=o["vix9d"][i], vix3m=o["vix3m"][i],
            vix6m=o["vix6m"][i], vvix=math.nan, skew=math.nan, vx={}, etps={}, spx_soq=o["spx"][i],
            vx_final=final, extra={}, stale=frozenset(stale))

    def close_quotes(self, i: int) -> MarketQuotes:
        today = self.dates[i]
        p = i - 1
        rate = self.rate[p] if p >= 0 else self.rate[i]
        c = self.c
        etps = dict(self.etp_close[i])
        if math.isfinite(self.tr[i]):
            etps[TR_SYMBOL] = self.tr[i]
        return MarketQuotes(
            spx=c["spx"][i], vix=c["vix"][i], rate=rate, vix9d=c["vix9d"][i], vix3m=c["vix3m"][i],
            vix6m=c["vix6m"][i], vvix=self.vvix[i], skew=self.skew[i],
            vx=self.vx_row(i, today, include_expiring=False), etps=etps, extra=self.extra[i])

    def snapshots(self, i: int) -> tuple[MarketSnapshot, MarketSnapshot]:
        pair = self.snaps[i]
        if pair is None:
            d = self.dates[i]
            pair = self.snaps[i] = (
                MarketSnapshot(dt.datetime(d.year, d.month, d.day, 9, 30, tzinfo=ET), d, Phase.OPEN,
                               self.open_quotes(i)),
                MarketSnapshot(dt.datetime(d.year, d.month, d.day, 16, 0, tzinfo=ET), d, Phase.CLOSE,
                               self.close_quotes(i)))
        return pair


class HistoricalReplay:
    def __init__(self, panel, start: str | dt.date | None = None, end: str | dt.date | None = None) -> None:
        self.market = ReplayMarket.of(panel)
        dates_all = self.market.index
        lo = pd.Timestamp(start) if start is not None else dates_all[0]
        hi = pd.Timestamp(end) if end is not None else dates_all[-1]
        # keep one day before the window so "prior close/settle" exists for the first open snapshot
        first = max(int(dates_all.searchsorted(lo)), 0)
        last = int(dates_all.searchsorted(hi, side="right"))
        if last <= first:
            raise ReplayRangeError(f"no trading days in the data between {lo.date()} and {hi.date()} "
                                   f"(the data covers {dates_all[0].date()} .. {dates_all[-1].date()})")
        self._first, self._last = first, last
        self.dates = self.market.dates
        self.bus: EventBus | None = None
        self.snapshots = 0

    @property
    def first_date(self) -> dt.date:
        return self.dates[self._first]

    @property
    def last_date(self) -> dt.date:
        return self.dates[self._last - 1]

    def bind(self, bus: EventBus) -> None:
        self.bus = bus

    def stale_spx_opens(self) -> dict[int, int]:
        """Sessions of this window without a real SPX open (stale: open == prior close), per year."""
        lo, hi = self._first, self._last
        return stale_open_counts(self.market.index[lo:hi], self.market.spx_open_missing[lo:hi])

    def open_quotes(self, i: int) -> MarketQuotes:
        return self.market.snapshots(i)[0].quotes

    def close_quotes(self, i: int) -> MarketQuotes:
        return self.market.snapshots(i)[1].quotes

    def snapshots_for(self, i: int):
        return iter(self.market.snapshots(i))

    def run(self) -> None:
        snapshots = self.market.snapshots
        dispatch = self.bus.publish_and_run
        for i in range(self._first, self._last):
            for snap in snapshots(i):
                dispatch(snap)
        self.snapshots += 2 * (self._last - self._first)
