"""Calendar checks of a daily series: NYSE trading days without a row (an error unless allowlisted,
then carried from the previous close), and FRED's empty holiday values (carried, runs limited)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import sources as S
from .reading import runs
from .sink import LIMIT, Sink, fmt_date, list_dates


def fill_calendar_gaps(spec: S.DailySpec, rel: str, td: pd.DatetimeIndex, udates: pd.DatetimeIndex,
                       ulines: np.ndarray, frame: pd.DataFrame, rows: pd.Series, fred_empty: np.ndarray,
                       start: pd.Timestamp, end: pd.Timestamp, sink: Sink) -> tuple[pd.DataFrame, list[pd.Timestamp]]:
    """Report missing trading days and carry the allowed ones forward (as-of rule).

    ``td`` is the trading calendar of the coverage window, ``udates``/``ulines`` the file's rows on it,
    ``frame`` the values reindexed to ``td``. Returns the filled frame and the carried days."""
    # ---- gaps: NYSE trading days without a row --------------------------------------------------
    missing = td.difference(udates)
    known = {pd.Timestamp(g.date): g for g in spec.known_gaps}
    unknown_pos = np.nonzero(td.isin(missing) & ~td.isin(list(known)))[0]
    for a, b in runs(unknown_pos)[: LIMIT]:
        nxt = udates.searchsorted(td[b], side="right")
        row = int(ulines[nxt]) if nxt < len(udates) else None
        nxt_date = udates[nxt] if nxt < len(udates) else None
        what = (f"NYSE trading day {fmt_date(td[a])} is missing" if a == b
                else f"NYSE trading days {fmt_date(td[a])}..{fmt_date(td[b])} ({b - a + 1} days) are missing")
        sink.error(rel, row, what + (" (gap before this row)" if row else " (gap at the end of the file)"),
                   None if nxt_date is None else fmt_date(nxt_date))
    runs_unknown = runs(unknown_pos)
    if len(runs_unknown) > LIMIT:
        sink.error(rel, None, f"{len(runs_unknown) - LIMIT} more gaps of missing NYSE trading days")
    stale = [d for d in known if start <= d <= end and d in udates]
    if stale:
        sink.warnings.append(f"{rel}: allowlisted gap(s) {list_dates(stale)} are present in the file; "
                             "the allowlist in adapters/data/sources.py is stale")

    carried: list[pd.Timestamp] = []
    known_missing = [d for d in missing if d in known]
    if known_missing:
        cols = list(spec.price_columns)
        ref = "close" if "close" in cols else cols[0]
        for d in known_missing:
            pos = td.get_loc(d)
            if pos == 0:
                sink.error(rel, int(ulines[0]) if len(ulines) else None,
                           f"allowlisted gap {fmt_date(d)} is the first day of the coverage window; nothing to carry")
                continue
        # carry the last known close into every price column (the as-of value for that day)
        prev_close = frame[ref].ffill().shift(1)
        mask = frame.index.isin(known_missing)
        for c in cols:
            frame.loc[mask, c] = prev_close[mask]
        carried += known_missing
        sink.notes.append(
            f"{rel}: known gap(s) {list_dates(known_missing)} carried forward from the previous {ref} "
            f"(as-of rule; reason: {known[known_missing[0]].reason})")

    # ---- FRED: empty values on NYSE trading days are carried (as-of), runs limited --------------
    if spec.fred_empty_values and fred_empty.any():
        empty_days = udates[fred_empty]
        pos = np.nonzero(td.isin(empty_days))[0]
        for a, b in runs(pos):
            length = b - a + 1
            if a == 0:
                sink.error(rel, int(rows.iloc[a]), "value is empty on the first trading day of the coverage "
                                                   "window; there is no earlier value to carry", fmt_date(td[a]))
            elif length > spec.max_carry_run:
                sink.error(rel, int(rows.iloc[a]),
                           f"value is empty on {length} consecutive NYSE trading days ({fmt_date(td[a])}..{fmt_date(td[b])}); "
                           f"at most {spec.max_carry_run} may be carried forward", fmt_date(td[a]))
        frame = frame.ffill()
        carried += list(empty_days)
        sink.notes.append(
            f"{rel}: {len(empty_days)} empty values on NYSE trading days ({spec.empty_reason}) carried from the previous observation (as-of rule): {list_dates(empty_days, 5)}")
    return frame, carried
