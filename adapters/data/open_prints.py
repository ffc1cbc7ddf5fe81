"""Which opening prints are real: the SPX open carried from the prior close, the VX `open` column's
placeholders. The panel, the data check and the replay's open snapshot share these rules."""
from __future__ import annotations

import numpy as np
import pandas as pd


def stale_opens(open_: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Days whose "open" is exactly the prior close. In spx_daily.csv the source carried the close forward (43% of 2006
    sessions, 16% of 2007, 25% of 2012 in spx_daily.csv) rather than recording an opening print.

    A real open equal to the prior close to the cent is rare: 3 of the 3,018 sessions 2014-2025 (0-1 a year),
    so the rule treats those few real flat opens as missing too, which only defers their fills to the close."""
    o = np.asarray(open_, dtype="float64")
    prior = np.concatenate([[np.nan], np.asarray(close, dtype="float64")[:-1]])
    return np.isfinite(o) & (o == prior)


def stale_open_counts(dates: pd.DatetimeIndex, mask: np.ndarray) -> dict[int, int]:
    """Days flagged in `mask` per calendar year (years with none left out)."""
    years = dates.year.to_numpy()[mask]
    uniq, n = np.unique(years, return_counts=True)
    return {int(y): int(k) for y, k in zip(uniq, n)}


def usable_vx_opens(vx: pd.DataFrame) -> np.ndarray:
    """The `open` column where it is a real opening trade, else NaN.

    The CFE/Cboe files write 0.0 for "no open" (no-trade days; the validator turns those into NaN). An open is
    used only on a day the contract traded (volume > 0) with a high and a low that bracket it, so a placeholder
    or a stray print is never taken for the market at 09:30. The open is the first trade of the CFE trade date:
    since extended trading hours that can be a print from the evening before, known at 09:30 (no look-ahead)."""
    o = vx["open"].to_numpy(dtype="float64")
    hi, lo = vx["high"].to_numpy(dtype="float64"), vx["low"].to_numpy(dtype="float64")
    vol = vx["volume"].to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(o) & (o > 0) & (vol > 0) & (lo <= o * 1.0001) & (o <= hi * 1.0001)
    return np.where(ok, o, np.nan)
