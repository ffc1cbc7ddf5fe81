"""Constant-maturity VIX futures blends from real VX settlements.

Follows the S&P VIX Futures Index methodology:
- short-term (about 1 month): long the first and second VX months; over each roll period the weight moves
  linearly, by business days, from the first to the second month.
- mid-term (about 5 months): long months 4, 5, 6 and 7; month 4 rolls linearly into month 7 while months 5
  and 6 are held in full.
A roll period runs from one VX settlement date (included) to the next (excluded). With dt business days in
the period and dr business days left after day t (from the next business day up to, not including, the next
settlement), the contract-count weights set at the close of t are CRW1 = dr/dt, CRW2 = (dt - dr)/dt.
The daily excess return of day t uses the weights set at the close of t-1:
    r_t = sum(CRW_{i,t-1} * P_{i,t}) / sum(CRW_{i,t-1} * P_{i,t-1}) - 1.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

import numpy as np
import pandas as pd

from engine.calendar import trading_days

Kind = Literal["short", "mid"]


def _as_date(d) -> dt.date:
    return d if isinstance(d, dt.date) and not isinstance(d, dt.datetime) else pd.Timestamp(d).date()


@lru_cache(maxsize=4)
def _sessions(start: str, end: str) -> np.ndarray:
    return trading_days(start, end).to_numpy().astype("datetime64[D]")


class RollSchedule:
    """Business-day arithmetic over VX settlement dates (NYSE sessions as business days)."""

    def __init__(self, expiries: Sequence, start="2004-01-01", end="2030-12-31") -> None:
        self.expiries = np.unique(np.array([_as_date(e) for e in expiries], dtype="datetime64[D]"))
        self.sessions = _sessions(str(start), str(end))

    def _count(self, lo: np.datetime64, hi: np.datetime64) -> int:
        """Sessions in [lo, hi)."""
        s = self.sessions
        return int(np.searchsorted(s, hi, "left") - np.searchsorted(s, lo, "left"))

    def weights(self, date, kind: Kind = "short") -> dict[dt.date, float]:
        """Contract-count weights (summing to 1) set at the close of `date`, held over the next day."""
        t = np.datetime64(_as_date(date), "D")
        exp = self.expiries
        k = int(np.searchsorted(exp, t, "right"))   # first expiry strictly after t
        need = 2 if kind == "short" else 7
        if k == 0 or k + need > len(exp):
            return {}
        e_prev, e_next = exp[k - 1], exp[k]
        dt_days = self._count(e_prev, e_next)
        nxt = t + np.timedelta64(1, "D")
        dr = self._count(nxt, e_next)
        f = dr / dt_days if dt_days else 0.0
        months = [e.astype(object) for e in exp[k:k + need]]
        if kind == "short":
            raw = {months[0]: f, months[1]: 1.0 - f}
        else:
            raw = {months[3]: f, months[4]: 1.0, months[5]: 1.0, months[6]: 1.0 - f}
        total = sum(raw.values())
        return {e: w / total for e, w in raw.items() if w > 0}


def cm_weights(date, expiries: Sequence, kind: Kind = "short") -> dict[dt.date, float]:
    """Convenience wrapper: weights for one date (build a RollSchedule once when calling in a loop)."""
    return RollSchedule(expiries).weights(date, kind)


def blend_returns(dates: pd.DatetimeIndex, expiries: np.ndarray, settle: np.ndarray,
                  kind: Kind = "short") -> pd.Series:
    """Daily excess returns (no T-bill interest) of the constant-maturity blend on real settlements.

    `settle` is [len(dates), len(expiries)] with NaN where a contract has no settlement. A day whose needed
    prices are missing gets NaN (never a filled value).
    """
    exp_dates = [pd.Timestamp(e).date() for e in expiries]
    col = {e: j for j, e in enumerate(exp_dates)}
    sched = RollSchedule(exp_dates)
    out = np.full(len(dates), np.nan)
    prev_w: dict[dt.date, float] = {}
    for i, d in enumerate(dates):
        if i > 0 and prev_w:
            idx = [col[e] for e in prev_w]
            w = np.fromiter(prev_w.values(), float)
            p0 = settle[i - 1, idx]
            p1 = settle[i, idx]
            # a contract settling today contributes its final value (it is in the row on expiry day)
            if np.all(np.isfinite(p0)) and np.all(np.isfinite(p1)):
                out[i] = float(w @ p1 / (w @ p0) - 1.0)
        prev_w = sched.weights(d.date(), kind)
    return pd.Series(out, index=dates, name=f"vx_cm_{kind}")


def blend_index(dates: pd.DatetimeIndex, expiries: np.ndarray, settle: np.ndarray, kind: Kind = "short",
                rate: pd.Series | None = None, start_level: float = 100.0) -> pd.Series:
    """Total-return index level: excess return plus T-bill interest on the collateral (when `rate` given,
    as an annual continuously compounded rate known at the prior close). Missing days contribute nothing."""
    r = blend_returns(dates, expiries, settle, kind).fillna(0.0)
    if rate is not None:
        rr = rate.reindex(dates).shift(1).fillna(0.0).to_numpy()
        days = np.diff(dates.to_numpy().astype("datetime64[D]").astype(np.int64), prepend=0)
        days[0] = 0
        r = r + (np.exp(rr * days / 365.0) - 1.0)
    return start_level * (1.0 + r).cumprod()
