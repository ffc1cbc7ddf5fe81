"""S&P 500 dividends and the total-return index built from them.

The replay (adapters.sim.replay) publishes the S&P 500 total-return level as the ETP-like series "SPXTR", and the
VXTH replica (strategies.benchmarks.vxth) holds it as shares; both use the table and the accrual rule here.

SPX_DIVIDEND_POINTS holds the dividends per share (index points) paid in each calendar year, accrued evenly per
calendar day: TR_t = TR_{t-1} * (P_t + D_year * days / 365) / P_{t-1} at each close (days = calendar days since
the last close, D_year the table value for the year of the close; outside the table `fallback_yield` times the
prior close). Intraday (open) levels move with the price only. The values are those implied by S&P Dow Jones
Indices' published annual S&P 500 total returns over our price series (analysis.replicas.derive_dividend_points
re-derives them and tests/integration/test_fidelity.py checks they still reproduce the published annual figures);
they agree with S&P's published annual dividends per share (e.g. 2008: 28.39, 2011: 26.43, 2013: 34.99) to within
about 1 %.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

# S&P 500 dividends per share (index points) paid in each calendar year: implied by S&P DJI's published annual
# total returns (2005 4.91 %, 2006 15.79 %, 2007 5.49 %, 2008 -37.00 %, 2009 26.46 %, 2010 15.06 %, 2011 2.11 %, 2012 16.00 %,
# 2013 32.39 %, 2014 13.69 %, 2015 1.38 %, 2016 11.96 %, 2017 21.83 %, 2018 -4.38 %, 2019 31.49 %, 2020 18.40 %,
# 2021 28.71 %, 2022 -18.11 %, 2023 26.29 %, 2024 25.02 %, 2025 17.88 %) with even daily accrual.
SPX_DIVIDEND_POINTS: dict[int, float] = {
    2005: 22.23, 2006: 24.82, 2007: 27.52, 2008: 28.17, 2009: 22.43, 2010: 22.73, 2011: 26.51, 2012: 30.99,
    2013: 34.87, 2014: 39.40, 2015: 43.25, 2016: 45.73, 2017: 48.94, 2018: 53.43, 2019: 58.29, 2020: 57.94,
    2021: 60.44, 2022: 67.11, 2023: 70.41, 2024: 73.80, 2025: 78.71,
}
FALLBACK_YIELD = 0.018          # dividend yield on the price for years outside the table
TR_START_LEVEL = 100.0


class SPXTotalReturn:
    """S&P 500 total-return level from the price index plus evenly accrued dividends:
    TR_t = TR_{t-1} * (P_t + D_year * days / 365) / P_{t-1} at each close (days = calendar days since the last
    close); intraday (open) levels move with the price only."""

    def __init__(self, dividends: Mapping[int, float] | None = None, start_level: float = TR_START_LEVEL,
                 fallback_yield: float = FALLBACK_YIELD) -> None:
        self.dividends = dict(SPX_DIVIDEND_POINTS if dividends is None else dividends)
        self.fallback_yield = fallback_yield
        self.level = start_level          # at the last close
        self.last_price = math.nan        # last close price
        self.last_date: dt.date | None = None

    def dividend_points(self, year: int, price: float) -> float:
        """Annual dividend points for `year`; outside the table, `fallback_yield` times the current price."""
        d = self.dividends.get(year)
        return d if d is not None else self.fallback_yield * price

    def peek(self, price: float) -> float:
        """Level at an intraday price (no dividend accrual)."""
        if not math.isfinite(self.last_price) or not math.isfinite(price):
            return self.level
        return self.level * price / self.last_price

    def close(self, date: dt.date, price: float) -> float:
        """Advance to the close of `date` at `price`; returns the new level."""
        if not math.isfinite(price):
            return self.level
        if math.isfinite(self.last_price) and self.last_date is not None:
            days = (date - self.last_date).days
            div = self.dividend_points(date.year, self.last_price) * days / 365.0
            self.level *= (price + div) / self.last_price
        self.last_price = price
        self.last_date = date
        return self.level


def total_return_index(dates: Iterable, spx_close, dividends: Mapping[int, float] | None = None,
                       start_level: float = TR_START_LEVEL, fallback_yield: float = FALLBACK_YIELD) -> np.ndarray:
    """S&P 500 total-return closes for each date (SPXTotalReturn's rule), starting at `start_level` on the first
    finite close. NaN before the first finite close and on days without a close (the accrual then runs from the
    last close seen)."""
    tr = SPXTotalReturn(dividends, start_level, fallback_yield)
    prices = np.asarray(spx_close, dtype=float)
    out = np.full(len(prices), math.nan)
    for k, (d, p) in enumerate(zip(dates, prices)):
        if math.isfinite(p):
            out[k] = tr.close(pd.Timestamp(d).date(), float(p))
    return out
