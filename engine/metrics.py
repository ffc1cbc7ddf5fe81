"""Performance metrics on an equity series (daily, indexed by date)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

TRADING_DAYS = 252


@dataclass(frozen=True)
class Drawdown:
    max_drawdown: float          # positive fraction, e.g. 0.18 for -18%
    peak: pd.Timestamp | None
    trough: pd.Timestamp | None
    recovery: pd.Timestamp | None


def drawdown_series(equity: pd.Series) -> pd.Series:
    peak = equity.cummax()
    return equity / peak - 1.0


def max_drawdown(equity: pd.Series) -> Drawdown:
    if equity.empty:
        return Drawdown(0.0, None, None, None)
    dd = drawdown_series(equity)
    trough_pos = int(np.argmin(dd.to_numpy()))
    mdd = float(-dd.iloc[trough_pos])
    if mdd <= 0:
        return Drawdown(0.0, None, None, None)
    trough = equity.index[trough_pos]
    peak = equity.iloc[: trough_pos + 1].idxmax()
    after = equity.iloc[trough_pos:]
    recovered = after[after >= equity.loc[peak]]
    return Drawdown(mdd, peak, trough, recovered.index[0] if len(recovered) else None)


def cagr(equity: pd.Series) -> float:
    if len(equity) < 2 or equity.iloc[0] <= 0:
        return math.nan
    years = (equity.index[-1] - equity.index[0]).days / 365.25
    if years <= 0 or equity.iloc[-1] <= 0:
        return math.nan if equity.iloc[-1] > 0 else -1.0
    return float((equity.iloc[-1] / equity.iloc[0]) ** (1.0 / years) - 1.0)


def daily_returns(equity: pd.Series) -> pd.Series:
    return equity.pct_change().dropna()


def excess_returns(equity: pd.Series, rf_annual: pd.Series | float = 0.0) -> pd.Series:
    """Daily returns minus the risk-free rate (a series is aligned by date, known-rate carried forward)."""
    r = daily_returns(equity)
    if isinstance(rf_annual, pd.Series):
        rf = rf_annual.reindex(r.index).ffill().fillna(0.0) / TRADING_DAYS
    else:
        rf = rf_annual / TRADING_DAYS
    return r - rf


def sharpe(equity: pd.Series, rf_annual: pd.Series | float = 0.0) -> float:
    """Annualised Sharpe of daily returns in excess of the risk-free rate."""
    ex = excess_returns(equity, rf_annual)
    sd = ex.std(ddof=1)
    return float(ex.mean() / sd * math.sqrt(TRADING_DAYS)) if sd > 0 else math.nan


def sortino(equity: pd.Series, rf_annual: pd.Series | float = 0.0) -> float:
    """Annualised Sortino of excess returns (downside deviation of excess returns below zero)."""
    ex = excess_returns(equity, rf_annual)
    downside = np.sqrt((np.minimum(ex, 0.0) ** 2).mean())
    return float(ex.mean() / downside * math.sqrt(TRADING_DAYS)) if downside > 0 else math.nan


def volatility(equity: pd.Series) -> float:
    return float(daily_returns(equity).std(ddof=1) * math.sqrt(TRADING_DAYS))


def worst_month(equity: pd.Series) -> float:
    monthly = equity.resample("ME").last().pct_change().dropna()
    return float(monthly.min()) if len(monthly) else math.nan


@dataclass(frozen=True)
class UnderWater:
    """The longest stretch spent below a previous peak: `days` observations (trading days) under water, from
    the peak's date to the first date back at it (None: not back by the end of the series)."""

    days: int
    peak: pd.Timestamp | None
    recovery: pd.Timestamp | None


def longest_run(mask: np.ndarray) -> tuple[int, int]:
    """(length, first position) of the first longest run of True in `mask`; (0, -1) when there is none."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return 0, -1
    run_id = np.cumsum(~mask)[mask]          # each run of True shares the count of False before it
    _, starts, lengths = np.unique(run_id, return_index=True, return_counts=True)
    k = int(np.argmax(lengths))
    return int(lengths[k]), int(np.flatnonzero(mask)[starts[k]])


def longest_under_water(equity: pd.Series) -> UnderWater:
    v = equity.to_numpy(dtype=float)
    n, first = longest_run(v < np.maximum.accumulate(v) if len(v) else np.zeros(0, dtype=bool))
    if n == 0:
        return UnderWater(0, None, None)
    last = first + n - 1
    idx = equity.index
    return UnderWater(n, idx[first - 1] if first > 0 else None,
                      idx[last + 1] if last + 1 < len(idx) else None)


def time_under_water(equity: pd.Series) -> int:
    """Longest stretch, in trading days, spent below a previous peak."""
    return longest_under_water(equity).days


@dataclass(frozen=True)
class Summary:
    start: str
    end: str
    final_equity: float
    total_return: float
    cagr: float
    volatility: float
    sharpe: float
    sortino: float
    max_drawdown: float
    dd_peak: str
    dd_trough: str
    dd_recovery: str
    calmar: float
    worst_month: float
    under_water_days: int        # the longest stretch below a previous peak, in trading days ...
    under_water_from: str        # ... from the peak's date ...
    under_water_to: str          # ... to the first date back at it ("" = not back by the end)

    def as_dict(self) -> dict:
        return asdict(self)


def summarize(equity: pd.Series, rf_annual: pd.Series | float = 0.0) -> Summary:
    dd = max_drawdown(equity)
    uw = longest_under_water(equity)
    g = cagr(equity)
    fmt = lambda t: "" if t is None else pd.Timestamp(t).strftime("%Y-%m-%d")
    return Summary(
        start=fmt(equity.index[0]), end=fmt(equity.index[-1]),
        final_equity=float(equity.iloc[-1]),
        total_return=float(equity.iloc[-1] / equity.iloc[0] - 1.0),
        cagr=g, volatility=volatility(equity), sharpe=sharpe(equity, rf_annual), sortino=sortino(equity, rf_annual),
        max_drawdown=dd.max_drawdown, dd_peak=fmt(dd.peak), dd_trough=fmt(dd.trough), dd_recovery=fmt(dd.recovery),
        calmar=(g / dd.max_drawdown) if dd.max_drawdown > 0 and math.isfinite(g) else math.nan,
        worst_month=worst_month(equity), under_water_days=uw.days, under_water_from=fmt(uw.peak),
        under_water_to=fmt(uw.recovery),
    )
