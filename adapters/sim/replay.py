"""Historical replay: turns the validated daily panel into market snapshots on the exchange calendar.

Two snapshots per trading day, each built only from what was known at that instant:
- open (09:30 ET): SPX/VIX-family opens; VX at the prior settlement (the day's settle is published at
  4:15 pm); ETPs at the prior close; the SPX open as the AM-settlement (SOQ) proxy; the final VX
  settlement of a contract expiring today (VRO/SOQ is set at the open);
- close (16:00 ET): closes, the day's VX settlements, ETP closes.
"SPXTR" in `etps` is the S&P 500 total-return index (engine.dividends.total_return_index over the SPX closes):
the day's TR close at the close; at the open the prior TR close x (SPX open / prior SPX close), i.e. the price
move known at 09:30 and no dividend accrual for the day yet.
The risk-free rate is the prior trading day's T-bill observation (FRED publishes with a lag).
Intraday bars can plug in later as extra INTRADAY snapshots between the two.
"""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd

from engine.bus import EventBus
from engine.clock import ET
from engine.dividends import total_return_index
from engine.events import MarketQuotes, MarketSnapshot, Phase

INDEX_FIELDS = ("spx", "vix", "vix9d", "vix3m", "vix6m")
TR_SYMBOL = "SPXTR"   # the S&P 500 total-return index, carried like an ETP
ETP_COLUMNS = {"VIXY": "vixy_close", "VIXM": "vixm_close", "VXX": "vxx_close", "VXX_A": "vxx_a_close",
               "UVXY": "uvxy_close", "SVXY": "svxy_close"}


class ReplayRangeError(ValueError):
    """The requested window has no data: a user error, reported as one sentence."""


def _col(daily: pd.DataFrame, name: str) -> np.ndarray:
    if name in daily.columns:
        return daily[name].to_numpy(dtype=float)
    return np.full(len(daily), math.nan)


def _usable_open(daily: pd.DataFrame, name: str, close: np.ndarray) -> np.ndarray:
    """Opening prints a trader could have seen at 09:30.

    Some sources are close-only for years (open == close: VIX9D 2011-13, VIX6M 2008-13, VIX 1990-91) and
    Cboe's VIX file has opens outside the day's range before 2007 (e.g. 2006-02-08 open 41.60, range
    12-13). Using such an "open" would either leak the close or trade on a bad print, so those opens are
    replaced by the prior close (known at the open) and the substitution is counted in `open_fallbacks`.
    """
    o = _col(daily, f"{name}_open").copy()
    hi, lo = _col(daily, f"{name}_high"), _col(daily, f"{name}_low")
    has_range = np.isfinite(hi) & np.isfinite(lo)
    close_only = (o == close) & np.where(has_range, hi == lo, True)
    bad = ~np.isfinite(o) | close_only | (has_range & ((o > hi * 1.0001) | (o < lo * 0.9999)))
    prior = np.concatenate([[math.nan], close[:-1]])
    bad &= np.isfinite(close)  # only days the series exists
    o[bad] = prior[bad]
    _usable_open.fallbacks[name] = int(bad.sum())
    return o


_usable_open.fallbacks = {}


class HistoricalReplay:
    def __init__(self, panel, start: str | dt.date | None = None, end: str | dt.date | None = None) -> None:
        daily = panel.daily
        dates_all = daily.index
        lo = pd.Timestamp(start) if start is not None else dates_all[0]
        hi = pd.Timestamp(end) if end is not None else dates_all[-1]
        # keep one day before the window so "prior close/settle" exists for the first open snapshot
        first = max(int(dates_all.searchsorted(lo)), 0)
        last = int(dates_all.searchsorted(hi, side="right"))
        if last <= first:
            raise ReplayRangeError(f"no trading days in the data between {lo.date()} and {hi.date()} "
                                   f"(the data covers {dates_all[0].date()} .. {dates_all[-1].date()})")
        self._first, self._last = first, last
        self.dates = [d.date() for d in dates_all]
        self._c = {f: _col(daily, f"{f}_close") for f in INDEX_FIELDS}
        self._o = {f: _usable_open(daily, f, self._c[f]) for f in INDEX_FIELDS}
        self._vvix = _col(daily, "vvix_close")
        self._skew = _col(daily, "skew_close")
        self._rate = _col(daily, "rate_tbill")
        self._etp = {sym: _col(daily, col) for sym, col in ETP_COLUMNS.items()}
        self._tr = total_return_index(dates_all, self._c["spx"])
        # every other daily series (e.g. cor1m, dspx, dff) rides along in `extra`, so a strategy can use
        # any series in the data dir by name: the close value at the close, the prior close at the open
        known = {f"{f}_{k}" for f in INDEX_FIELDS for k in ("open", "high", "low", "close")}
        known |= {"vvix_close", "skew_close", "rate_tbill", *ETP_COLUMNS.values()}
        self._extra = {c.removesuffix("_close"): daily[c].to_numpy(dtype=float) for c in daily.columns
                       if c not in known and c.endswith("_close") or c == "dff"}
        vx_dates, expiries, settle = panel.vx_matrix()
        if len(vx_dates) != len(dates_all) or not (vx_dates == dates_all).all():
            raise ValueError("panel.vx_matrix() dates must align with panel.daily")
        self._vx_exp = [pd.Timestamp(e).date() for e in expiries]
        self._vx_col = {e: j for j, e in enumerate(self._vx_exp)}
        self._vx = settle
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

    def _vx_row(self, i: int, today: dt.date, include_expiring: bool) -> dict[dt.date, float]:
        row = self._vx[i]
        idx = np.flatnonzero(np.isfinite(row))
        exp = self._vx_exp
        return {exp[j]: float(row[j]) for j in idx if exp[j] > today or (include_expiring and exp[j] == today)}

    def open_quotes(self, i: int) -> MarketQuotes:
        today = self.dates[i]
        p = i - 1
        rate = self._rate[p] if p >= 0 else math.nan
        prev_vx = self._vx_row(p, today, include_expiring=True) if p >= 0 else {}
        final = {}
        j = self._vx_col.get(today)
        if j is not None and math.isfinite(self._vx[i, j]):
            final[today] = float(self._vx[i, j])
        etps = {s: float(a[p]) for s, a in self._etp.items() if p >= 0 and math.isfinite(a[p])}
        o = self._o
        if p >= 0:
            tr_open = self._tr[p] * o["spx"][i] / self._c["spx"][p]
            if math.isfinite(tr_open):
                etps[TR_SYMBOL] = float(tr_open)
        return MarketQuotes(
            spx=o["spx"][i], vix=o["vix"][i], rate=rate, vix9d=o["vix9d"][i], vix3m=o["vix3m"][i],
            vix6m=o["vix6m"][i], vvix=self._vvix[p] if p >= 0 else math.nan,
            skew=self._skew[p] if p >= 0 else math.nan, vx=prev_vx, etps=etps, spx_soq=o["spx"][i],
            vx_final=final, extra=self._extra_at(p), stale=frozenset({"vx", "etps", "vvix", "skew", "extra"}))

    def close_quotes(self, i: int) -> MarketQuotes:
        today = self.dates[i]
        p = i - 1
        rate = self._rate[p] if p >= 0 else self._rate[i]
        c = self._c
        etps = {s: float(a[i]) for s, a in self._etp.items() if math.isfinite(a[i])}
        if math.isfinite(self._tr[i]):
            etps[TR_SYMBOL] = float(self._tr[i])
        return MarketQuotes(
            spx=c["spx"][i], vix=c["vix"][i], rate=rate, vix9d=c["vix9d"][i], vix3m=c["vix3m"][i],
            vix6m=c["vix6m"][i], vvix=self._vvix[i], skew=self._skew[i],
            vx=self._vx_row(i, today, include_expiring=False), etps=etps, extra=self._extra_at(i))

    def _extra_at(self, i: int) -> dict[str, float]:
        if i < 0:
            return {}
        return {k: float(a[i]) for k, a in self._extra.items() if math.isfinite(a[i])}

    def snapshots_for(self, i: int):
        d = self.dates[i]
        yield MarketSnapshot(dt.datetime(d.year, d.month, d.day, 9, 30, tzinfo=ET), d, Phase.OPEN, self.open_quotes(i))
        yield MarketSnapshot(dt.datetime(d.year, d.month, d.day, 16, 0, tzinfo=ET), d, Phase.CLOSE, self.close_quotes(i))

    def run(self) -> None:
        bus = self.bus
        for i in range(self._first, self._last):
            for snap in self.snapshots_for(i):
                bus.publish(snap)
                bus.run()
                self.snapshots += 1
