"""Reading a source file as text and the checks every file shares: header, ISO dates (unique,
ascending), numbers, and the NYSE trading days of a window."""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .. import sources as S
from .sink import LIMIT, Sink, fmt_date

EMPTY_TOKENS = ("", "nan", "NaN", "NA", "N/A", "null", "NULL", ".", "#N/A")
_CAL_END = pd.Timestamp("2030-12-31")  # engine.calendar's XNYS window ends here
LINE_RE = re.compile(r"line (\d+)")


def trading_days_between(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    from engine.calendar import trading_days  # lazy: keeps a cached panel load free of the calendar import

    start = max(pd.Timestamp(start), pd.Timestamp(S.CALENDAR_START))
    end = min(pd.Timestamp(end), _CAL_END)
    if start > end:
        return pd.DatetimeIndex([], dtype="datetime64[ns]", name="date")
    idx = pd.DatetimeIndex(trading_days(start, end)).astype("datetime64[ns]")
    return pd.DatetimeIndex(idx.to_numpy(), name="date")  # no freq: identical whether built or read from cache


def read_text_csv(data_dir: Path, rel: str, sink: Sink) -> pd.DataFrame | None:
    path = data_dir / rel
    if not path.is_file():
        sink.error(rel, None, f"file not found (expected at {path})")
        return None
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        m = LINE_RE.search(str(exc))
        sink.error(rel, int(m.group(1)) if m else None, f"cannot be read as CSV ({str(exc).strip()})")
        return None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def check_header(df: pd.DataFrame, required: Sequence[str], rel: str, sink: Sink) -> bool:
    missing = [c for c in required if c not in df.columns]
    if missing:
        sink.error(rel, 1, f"header has no column {', '.join(repr(c) for c in missing)} (found: {', '.join(df.columns)})")
        return False
    return True


def parse_dates(raw: pd.Series) -> pd.Series:
    s = raw.astype(str).str.strip()
    return pd.to_datetime(s, format="%Y-%m-%d", errors="coerce").astype("datetime64[ns]")


def numeric(raw: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values float64, empty mask, unparseable mask)."""
    s = raw.astype(str).str.strip()
    empty = s.isin(EMPTY_TOKENS).to_numpy()
    num = pd.to_numeric(s.where(~empty, None), errors="coerce").to_numpy(dtype="float64")
    unparseable = ~empty & np.isnan(num)
    return num, empty, unparseable


def runs(positions: np.ndarray) -> list[tuple[int, int]]:
    """Group sorted integer positions into runs of consecutive values: [(first, last), ...]."""
    if len(positions) == 0:
        return []
    breaks = np.nonzero(np.diff(positions) != 1)[0]
    starts = np.r_[positions[0], positions[breaks + 1]]
    ends = np.r_[positions[breaks], positions[-1]]
    return list(zip(starts.tolist(), ends.tolist()))


def check_dates(dates: pd.Series, raw: pd.Series, lines: np.ndarray, rel: str, sink: Sink,
                 group: np.ndarray | None = None) -> bool:
    """Unparseable, duplicate and out-of-order dates. ``group`` (same length) restarts the order check."""
    before = sink.n_errors
    bad = dates.isna().to_numpy()
    if bad.any():
        idx = np.nonzero(bad)[0]
        msgs = [f"date {raw.iloc[i]!r} is not a YYYY-MM-DD date" for i in idx]
        if group is None:
            sink.errors_at(rel, lines[idx], [None] * len(idx), msgs)
        else:
            for i, m in list(zip(idx, msgs))[:LIMIT]:
                sink.error(group[i], int(lines[i]), m)
        return False
    dv = dates.to_numpy()
    if len(dv) < 2:
        return True
    same_group = np.ones(len(dv) - 1, dtype=bool) if group is None else (group[1:] == group[:-1])
    dup = (dv[1:] == dv[:-1]) & same_group
    back = (dv[1:] < dv[:-1]) & same_group
    for mask, kind in ((dup, "dup"), (back, "back")):
        idx = np.nonzero(mask)[0] + 1
        if not len(idx):
            continue
        if kind == "dup":
            msgs = [f"duplicate date: the same date is on row {int(lines[i - 1])}" for i in idx]
        else:
            msgs = [f"date is out of order: it is earlier than {fmt_date(dv[i - 1])} on row {int(lines[i - 1])}" for i in idx]
        if group is None:
            sink.errors_at(rel, lines[idx], dv[idx], msgs)
        else:
            for i, m in list(zip(idx, msgs))[:LIMIT]:
                sink.error(group[i], int(lines[i]), m, fmt_date(dv[i]))
    return sink.n_errors == before
