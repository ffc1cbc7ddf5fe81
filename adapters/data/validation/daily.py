"""Per-file rules of a daily series (index level, ETP close, FRED rate): header, dates, values
(NaN, sign, rate bounds), then the calendar checks of ``gaps.py`` and the plausibility warnings
(jumps, OHLC consistency)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import sources as S
from .gaps import fill_calendar_gaps
from .reading import check_dates, check_header, numeric, parse_dates, read_text_csv, trading_days_between
from .sink import Sink, fmt_date, list_dates


@dataclass
class ValidatedSeries:
    spec: S.DailySpec
    frame: pd.DataFrame  # index: NYSE trading days of the coverage window ('date'); float64 price columns
    rows: pd.Series  # file line per frame date (0 where the day was carried forward)
    file_rows: int  # data rows in the file
    carried: pd.DatetimeIndex  # days whose values were carried from the previous observation

    @property
    def first(self) -> pd.Timestamp | None:
        return self.frame.index[0] if len(self.frame) else None

    @property
    def last(self) -> pd.Timestamp | None:
        return self.frame.index[-1] if len(self.frame) else None


def validate_daily(data_dir: Path, spec: S.DailySpec, sink: Sink) -> ValidatedSeries | None:
    rel = spec.path
    if not spec.required and not (data_dir / rel).exists():
        sink.notes.append(f"{rel}: optional file not present; {spec.description} is not in the panel (NaN)")
        return None
    df = read_text_csv(data_dir, rel, sink)
    if df is None or not check_header(df, spec.columns, rel, sink):
        return None
    n = len(df)
    if n == 0:
        sink.error(rel, None, "file has a header but no data rows")
        return None
    lines = np.arange(2, n + 2)
    raw_dates = df[spec.date_column]
    dates = parse_dates(raw_dates)
    if not check_dates(dates, raw_dates, lines, rel, sink):
        return None

    first, last = dates.iloc[0], dates.iloc[-1]
    start = max(first, pd.Timestamp(spec.coverage_start or first), pd.Timestamp(S.CALENDAR_START))
    end = min(last, pd.Timestamp(spec.coverage_end) if spec.coverage_end else last)
    if start > end:
        sink.error(rel, None, f"no rows inside the coverage window (file runs {fmt_date(first)}..{fmt_date(last)}, "
                              f"window starts {spec.coverage_start})")
        return None
    td = trading_days_between(start, end)
    in_win = ((dates >= start) & (dates <= end)).to_numpy()
    on_td = dates.isin(td).to_numpy()

    closed = in_win & ~on_td
    if closed.any():
        why = ("FRED lists every business day" if spec.fred_empty_values and spec.key != "dff"
               else "FRED lists every calendar day" if spec.key == "dff" else "rows on NYSE-closed days")
        sink.notes.append(f"{rel}: {int(closed.sum())} rows on NYSE-closed days dropped ({why}): "
                          f"{list_dates(dates[closed])}")

    use = in_win & on_td
    udates = pd.DatetimeIndex(dates[use]).rename("date")
    ulines = lines[use]
    values: dict[str, np.ndarray] = {}
    fred_empty = np.zeros(int(use.sum()), dtype=bool)
    for col in spec.price_columns:
        num, empty, unparse = numeric(df[col][use])
        if spec.ohlc and col in ("open", "high", "low") and len(empty) and empty.all():
            # a close-only source (Cboe's SPX history): the column is absent, not a run of bad rows
            sink.notes.append(f"{rel}: {col} is empty on every row (the source publishes closes only); "
                              f"{col} is NaN in the panel")
            values[col] = num
            continue
        if unparse.any():
            i = np.nonzero(unparse)[0]
            raw = df[col][use].to_numpy()
            sink.errors_at(rel, ulines[i], udates[i], [f"{col} {raw[k]!r} is not a number" for k in i])
        bad_inf = np.isinf(num)
        if bad_inf.any():
            i = np.nonzero(bad_inf)[0]
            sink.errors_at(rel, ulines[i], udates[i], [f"{col} is infinite" for _ in i])
        if empty.any():
            if spec.fred_empty_values:
                fred_empty |= empty
            else:
                i = np.nonzero(empty)[0]
                sink.errors_at(rel, ulines[i], udates[i], [f"{col} is NaN" for _ in i])
        with np.errstate(invalid="ignore"):
            if spec.value_kind in ("price", "nonnegative"):
                nonpos = num <= 0 if spec.value_kind == "price" else num < 0
                if spec.value_kind == "nonnegative" and (num == 0).any():
                    i = np.nonzero(num == 0)[0]
                    sink.warn_at(rel, ulines[i], udates[i], [f"{col} is 0 (allowed for this series, but check it)"
                                                             for _ in i])
                if nonpos.any():
                    i = np.nonzero(nonpos)[0]
                    sink.errors_at(rel, ulines[i], udates[i], [f"{col} is {num[k]:g}; prices must be > 0" if spec.value_kind == "price"
                                    else f"{col} is {num[k]:g}; must be >= 0" for k in i])
            else:
                lo, hi = S.RATE_BOUNDS
                out = (num < lo) | (num > hi)
                if out.any():
                    i = np.nonzero(out)[0]
                    sink.errors_at(rel, ulines[i], udates[i],
                                   [f"{col} is {num[k]:g} %, outside the plausible range {lo:g}..{hi:g} %" for k in i])
        values[col] = num

    frame = pd.DataFrame(values, index=udates).reindex(td)
    rows = pd.Series(ulines, index=udates).reindex(td).fillna(0).astype("int64")

    frame, carried = fill_calendar_gaps(spec, rel, td, udates, ulines, frame, rows, fred_empty, start, end, sink)

    # ---- plausibility: jumps and OHLC consistency (warnings) ------------------------------------
    if spec.jump_column and spec.jump_threshold:
        x = frame[spec.jump_column].to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            lr = np.diff(np.log(x))
        j = np.nonzero(np.abs(lr) > spec.jump_threshold)[0] + 1
        if len(j):
            kj = {pd.Timestamp(g.date): g for g in spec.known_jumps}
            is_known = td[j].isin(list(kj))
            for k in j[is_known]:
                sink.notes.append(f"{rel} row {int(rows.iloc[k])} ({fmt_date(td[k])}): {spec.jump_column} "
                                  f"{x[k - 1]:g} -> {x[k]:g} ({kj[td[k]].reason})")
            j = j[~is_known]
            sink.warn_at(rel, rows.to_numpy()[j], td[j],
                         [f"implausible jump: {spec.jump_column} {x[k - 1]:g} -> {x[k]:g} "
                          f"(log change {lr[k - 1]:+.2f}, threshold {spec.jump_threshold:g})" for k in j])
    if spec.ohlc:
        o, h, lo_, c = (frame[k].to_numpy() for k in ("open", "high", "low", "close"))
        eps = 1e-9
        with np.errstate(invalid="ignore"):
            bad = (h < lo_ - eps) | (o > h + eps) | (o < lo_ - eps) | (c > h + eps) | (c < lo_ - eps)
        if bad.any():
            i = np.nonzero(bad)[0]
            sink.warnings.append(
                f"{rel}: {len(i)} rows have open or close outside [low, high] or high < low "
                f"(rows {', '.join(f'{int(rows.iloc[k])} ({fmt_date(td[k])})' for k in i[:5])}"
                f"{', ...' if len(i) > 5 else ''}); use open/high/low of these days with caution")

    return ValidatedSeries(spec=spec, frame=frame, rows=rows, file_rows=n,
                           carried=pd.DatetimeIndex(sorted(carried), name="date"))
