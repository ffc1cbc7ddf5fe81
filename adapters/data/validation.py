"""Validation of every source file against its spec in ``sources.py``.

All checks are vectorised pandas/numpy. Two modes share the same code:

* ``collect=False`` (``load_panel``): the first hard error is raised as :class:`DataError`.
* ``collect=True`` (``check_data``): every error is collected (at most ``_LIMIT`` per check and
  file, then one summary line), together with warnings and notes.

Row numbers are 1-based line numbers in the file (header = line 1, first data row = line 2).
"""
from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import sources as S
from .errors import DataError

_LIMIT = 10  # per (file, check): errors/warnings listed individually before a summary line
_EMPTY_TOKENS = ("", "nan", "NaN", "NA", "N/A", "null", "NULL", ".", "#N/A")
_CAL_END = pd.Timestamp("2030-12-31")  # engine.calendar's XNYS window ends here


def _trading_days(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    from engine.calendar import trading_days  # lazy: keeps a cached panel load free of the calendar import

    start = max(pd.Timestamp(start), pd.Timestamp(S.CALENDAR_START))
    end = min(pd.Timestamp(end), _CAL_END)
    if start > end:
        return pd.DatetimeIndex([], dtype="datetime64[ns]", name="date")
    idx = pd.DatetimeIndex(trading_days(start, end)).astype("datetime64[ns]")
    return pd.DatetimeIndex(idx.to_numpy(), name="date")  # no freq: identical whether built or read from cache


def _d(ts) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%d")


def _list_dates(dates: Iterable, limit: int = 8) -> str:
    dates = list(dates)
    s = ", ".join(_d(x) for x in dates[:limit])
    return s + (f", ... ({len(dates)} in all)" if len(dates) > limit else "")


class Sink:
    """Collects (or raises) errors; always collects warnings and notes."""

    def __init__(self, collect: bool) -> None:
        self.collect = collect
        self.errors: list[DataError] = []
        self.warnings: list[str] = []
        self.notes: list[str] = []

    def error(self, file: str, row: int | None, message: str, date: str | None = None) -> None:
        err = DataError(file, row, message, date=date)
        if not self.collect:
            raise err
        self.errors.append(err)

    def errors_at(self, file: str, rows: Sequence, dates: Sequence, messages: Sequence[str]) -> None:
        n = len(rows)
        for i in range(min(n, _LIMIT)):
            r = rows[i]
            dt = dates[i]
            self.error(file, None if r is None else int(r), messages[i], None if dt is None else _d(dt))
        if n > _LIMIT:
            self.error(file, None, f"{n - _LIMIT} more rows have the same kind of problem as row {int(rows[_LIMIT - 1])}")

    def warn_at(self, file: str, rows: Sequence, dates: Sequence, messages: Sequence[str]) -> None:
        n = len(rows)
        for i in range(min(n, _LIMIT)):
            self.warnings.append(str(DataError(file, int(rows[i]), messages[i], date=_d(dates[i]))))
        if n > _LIMIT:
            self.warnings.append(f"{file}: {n - _LIMIT} more rows with the same warning as row {int(rows[_LIMIT - 1])}")

    @property
    def n_errors(self) -> int:
        return len(self.errors)


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------
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


@dataclass
class ValidatedVX:
    frame: pd.DataFrame  # long format, cleaned, rescaled, NYSE days only, sorted by (date, expiry)
    files: list[str]
    file_rows: int


@dataclass
class Validated:
    series: dict[str, ValidatedSeries]
    vx: ValidatedVX | None
    events: dict[str, pd.DatetimeIndex]
    sink: Sink


@dataclass
class DataReport:
    errors: list[DataError]
    warnings: list[str]
    coverage: pd.DataFrame  # series, file, first, last, rows, missing_trading_days
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def __str__(self) -> str:  # a readable summary for the CLI
        lines = [f"data check: {'OK' if self.ok else 'FAILED'} ({len(self.errors)} errors, {len(self.warnings)} warnings)"]
        lines += [f"ERROR {e}" for e in self.errors]
        lines += [f"WARNING {w}" for w in self.warnings]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Reading helpers
# --------------------------------------------------------------------------------------------------
_LINE_RE = re.compile(r"line (\d+)")


def _read_text_csv(data_dir: Path, rel: str, sink: Sink) -> pd.DataFrame | None:
    path = data_dir / rel
    if not path.is_file():
        sink.error(rel, None, f"file not found (expected at {path})")
        return None
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        m = _LINE_RE.search(str(exc))
        sink.error(rel, int(m.group(1)) if m else None, f"cannot be read as CSV ({str(exc).strip()})")
        return None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _check_header(df: pd.DataFrame, required: Sequence[str], rel: str, sink: Sink) -> bool:
    missing = [c for c in required if c not in df.columns]
    if missing:
        sink.error(rel, 1, f"header has no column {', '.join(repr(c) for c in missing)} (found: {', '.join(df.columns)})")
        return False
    return True


def _parse_dates(raw: pd.Series) -> pd.Series:
    s = raw.astype(str).str.strip()
    return pd.to_datetime(s, format="%Y-%m-%d", errors="coerce").astype("datetime64[ns]")


def _numeric(raw: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values float64, empty mask, unparseable mask)."""
    s = raw.astype(str).str.strip()
    empty = s.isin(_EMPTY_TOKENS).to_numpy()
    num = pd.to_numeric(s.where(~empty, None), errors="coerce").to_numpy(dtype="float64")
    unparseable = ~empty & np.isnan(num)
    return num, empty, unparseable


def _runs(positions: np.ndarray) -> list[tuple[int, int]]:
    """Group sorted integer positions into runs of consecutive values: [(first, last), ...]."""
    if len(positions) == 0:
        return []
    breaks = np.nonzero(np.diff(positions) != 1)[0]
    starts = np.r_[positions[0], positions[breaks + 1]]
    ends = np.r_[positions[breaks], positions[-1]]
    return list(zip(starts.tolist(), ends.tolist()))


def _check_dates(dates: pd.Series, raw: pd.Series, lines: np.ndarray, rel: str, sink: Sink,
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
            for i, m in list(zip(idx, msgs))[:_LIMIT]:
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
            msgs = [f"date is out of order: it is earlier than {_d(dv[i - 1])} on row {int(lines[i - 1])}" for i in idx]
        if group is None:
            sink.errors_at(rel, lines[idx], dv[idx], msgs)
        else:
            for i, m in list(zip(idx, msgs))[:_LIMIT]:
                sink.error(group[i], int(lines[i]), m, _d(dv[i]))
    return sink.n_errors == before


# --------------------------------------------------------------------------------------------------
# Daily series
# --------------------------------------------------------------------------------------------------
def validate_daily(data_dir: Path, spec: S.DailySpec, sink: Sink) -> ValidatedSeries | None:
    rel = spec.path
    df = _read_text_csv(data_dir, rel, sink)
    if df is None or not _check_header(df, spec.columns, rel, sink):
        return None
    n = len(df)
    if n == 0:
        sink.error(rel, None, "file has a header but no data rows")
        return None
    lines = np.arange(2, n + 2)
    raw_dates = df[spec.date_column]
    dates = _parse_dates(raw_dates)
    if not _check_dates(dates, raw_dates, lines, rel, sink):
        return None

    first, last = dates.iloc[0], dates.iloc[-1]
    start = max(first, pd.Timestamp(spec.coverage_start or first), pd.Timestamp(S.CALENDAR_START))
    end = min(last, pd.Timestamp(spec.coverage_end) if spec.coverage_end else last)
    if start > end:
        sink.error(rel, None, f"no rows inside the coverage window (file runs {_d(first)}..{_d(last)}, "
                              f"window starts {spec.coverage_start})")
        return None
    td = _trading_days(start, end)
    in_win = ((dates >= start) & (dates <= end)).to_numpy()
    on_td = dates.isin(td).to_numpy()

    closed = in_win & ~on_td
    if closed.any():
        why = ("FRED lists every business day" if spec.fred_empty_values and spec.key != "dff"
               else "FRED lists every calendar day" if spec.key == "dff" else "rows on NYSE-closed days")
        sink.notes.append(f"{rel}: {int(closed.sum())} rows on NYSE-closed days dropped ({why}): "
                          f"{_list_dates(dates[closed])}")

    use = in_win & on_td
    udates = pd.DatetimeIndex(dates[use]).rename("date")
    ulines = lines[use]
    values: dict[str, np.ndarray] = {}
    fred_empty = np.zeros(int(use.sum()), dtype=bool)
    for col in spec.price_columns:
        num, empty, unparse = _numeric(df[col][use])
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

    # ---- gaps: NYSE trading days without a row --------------------------------------------------
    missing = td.difference(udates)
    known = {pd.Timestamp(g.date): g for g in spec.known_gaps}
    unknown_pos = np.nonzero(td.isin(missing) & ~td.isin(list(known)))[0]
    for a, b in _runs(unknown_pos)[: _LIMIT]:
        nxt = udates.searchsorted(td[b], side="right")
        row = int(ulines[nxt]) if nxt < len(udates) else None
        nxt_date = udates[nxt] if nxt < len(udates) else None
        what = (f"NYSE trading day {_d(td[a])} is missing" if a == b
                else f"NYSE trading days {_d(td[a])}..{_d(td[b])} ({b - a + 1} days) are missing")
        sink.error(rel, row, what + (" (gap before this row)" if row else " (gap at the end of the file)"),
                   None if nxt_date is None else _d(nxt_date))
    runs_unknown = _runs(unknown_pos)
    if len(runs_unknown) > _LIMIT:
        sink.error(rel, None, f"{len(runs_unknown) - _LIMIT} more gaps of missing NYSE trading days")
    stale = [d for d in known if start <= d <= end and d in udates]
    if stale:
        sink.warnings.append(f"{rel}: allowlisted gap(s) {_list_dates(stale)} are present in the file; "
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
                           f"allowlisted gap {_d(d)} is the first day of the coverage window; nothing to carry")
                continue
        # carry the last known close into every price column (the as-of value for that day)
        prev_close = frame[ref].ffill().shift(1)
        mask = frame.index.isin(known_missing)
        for c in cols:
            frame.loc[mask, c] = prev_close[mask]
        carried += known_missing
        sink.notes.append(
            f"{rel}: known gap(s) {_list_dates(known_missing)} carried forward from the previous {ref} "
            f"(as-of rule; reason: {known[known_missing[0]].reason})")

    # ---- FRED: empty values on NYSE trading days are carried (as-of), runs limited --------------
    if spec.fred_empty_values and fred_empty.any():
        empty_days = udates[fred_empty]
        pos = np.nonzero(td.isin(empty_days))[0]
        for a, b in _runs(pos):
            length = b - a + 1
            if a == 0:
                sink.error(rel, int(rows.iloc[a]), "value is empty on the first trading day of the coverage "
                                                   "window; there is no earlier value to carry", _d(td[a]))
            elif length > spec.max_carry_run:
                sink.error(rel, int(rows.iloc[a]),
                           f"value is empty on {length} consecutive NYSE trading days ({_d(td[a])}..{_d(td[b])}); "
                           f"at most {spec.max_carry_run} may be carried forward", _d(td[a]))
        frame = frame.ffill()
        carried += list(empty_days)
        sink.notes.append(
            f"{rel}: {len(empty_days)} empty values on NYSE trading days ({spec.empty_reason}) carried from the previous observation (as-of rule): {_list_dates(empty_days, 5)}")

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
                sink.notes.append(f"{rel} row {int(rows.iloc[k])} ({_d(td[k])}): {spec.jump_column} "
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
                f"(rows {', '.join(f'{int(rows.iloc[k])} ({_d(td[k])})' for k in i[:5])}"
                f"{', ...' if len(i) > 5 else ''}); use open/high/low of these days with caution")

    return ValidatedSeries(spec=spec, frame=frame, rows=rows, file_rows=n,
                           carried=pd.DatetimeIndex(sorted(carried), name="date"))


# --------------------------------------------------------------------------------------------------
# VX futures
# --------------------------------------------------------------------------------------------------
_VX_KEEP = ("trade_date", "contract_month", "expiry", "open", "high", "low", "close", "settle",
            "total_volume", "open_interest")


def _read_vx_files(data_dir: Path, spec: S.VXSpec, files: list[Path], sink: Sink) -> pd.DataFrame | None:
    """All contract files as one string frame with _file, _month, _line columns.

    Files whose header is exactly the standard layout are concatenated and parsed in a single read_csv
    (267 separate parses cost ~0.6 s); any other file is read on its own and checked column by column."""
    std_header = ",".join(spec.columns)
    bodies: list[str] = []
    counts: list[int] = []
    std_files: list[Path] = []
    frames: list[pd.DataFrame] = []
    for f in files:
        rel = f"{spec.directory}/{f.name}"
        try:
            text = f.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            sink.error(rel, None, f"cannot be read ({exc})")
            continue
        head, _, body = text.partition("\n")
        if head.strip() != std_header:
            df = _read_text_csv(data_dir, rel, sink)
            if df is None or not _check_header(df, spec.columns, rel, sink):
                continue
            if len(df) == 0:
                sink.error(rel, None, "file has a header but no data rows")
                continue
            df = df[list(_VX_KEEP)].copy()
            df["_file"], df["_month"], df["_line"] = rel, f.stem[3:], np.arange(2, len(df) + 2)
            frames.append(df)
            continue
        body = body.rstrip("\n")
        if not body.strip():
            sink.error(rel, None, "file has a header but no data rows")
            continue
        bodies.append(body)
        counts.append(body.count("\n") + 1)
        std_files.append(f)
    if bodies:
        try:
            big = pd.read_csv(io.StringIO("\n".join(bodies)), header=None, names=list(spec.columns), dtype=str,
                              keep_default_na=False, na_filter=False, skip_blank_lines=False)
        except pd.errors.ParserError as exc:
            m = _LINE_RE.search(str(exc))
            if m:  # map the global line back to (file, line)
                g = int(m.group(1))
                cum = np.cumsum(counts)
                k = int(np.searchsorted(cum, g))
                local = g - (int(cum[k - 1]) if k else 0) + 1
                sink.error(f"{spec.directory}/{std_files[k].name}", local, f"cannot be read as CSV ({str(exc).strip()})")
            else:
                sink.error(spec.directory, None, f"cannot be read as CSV ({str(exc).strip()})")
            return None
        if len(big) != sum(counts):
            sink.error(spec.directory, None, f"parsed {len(big)} rows but the files hold {sum(counts)} lines")
            return None
        big = big[list(_VX_KEEP)]
        cnt = np.asarray(counts)
        big["_file"] = np.repeat([f"{spec.directory}/{f.name}" for f in std_files], cnt)
        big["_month"] = np.repeat([f.stem[3:] for f in std_files], cnt)
        offsets = np.repeat(np.cumsum(cnt) - cnt, cnt)
        big["_line"] = np.arange(len(big)) - offsets + 2
        frames.insert(0, big)
    if not frames:
        return None
    raw = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return raw.sort_values(["_file", "_line"], kind="stable", ignore_index=True)



def validate_vx(data_dir: Path, spec: S.VXSpec, sink: Sink) -> ValidatedVX | None:
    vdir = data_dir / spec.directory
    if not vdir.is_dir():
        sink.error(spec.directory, None, f"VX futures directory not found (expected at {vdir})")
        return None
    files = sorted(vdir.glob(spec.glob))
    by_month = {f.stem[3:]: f for f in files}
    expected = pd.period_range(spec.first_contract, spec.last_contract, freq="M").strftime("%Y-%m")
    allowed = {g.date: g for g in spec.missing_contracts}
    for m in expected:
        if m not in by_month and m not in allowed:
            sink.error(f"{spec.directory}/VX_{m}.csv", None,
                       f"contract file for VX {m} is missing and not in the known-missing list")
    absent_known = [m for m in allowed if m not in by_month]
    if absent_known:
        sink.notes.append(f"{spec.directory}: contract months without a file (known): "
                          + "; ".join(f"{m} ({allowed[m].reason})" for m in absent_known))
    stale = [m for m in allowed if m in by_month]
    if stale:
        sink.warnings.append(f"{spec.directory}: contracts {', '.join(stale)} are in the known-missing list "
                             "but a file exists; the allowlist in adapters/data/sources.py is stale")

    before = sink.n_errors
    raw = _read_vx_files(data_dir, spec, files, sink)
    if raw is None:
        if sink.n_errors == before:
            sink.error(spec.directory, None, f"no files matching {spec.glob}")
        return None
    file_ = raw["_file"].to_numpy()
    line = raw["_line"].to_numpy()

    tdates = _parse_dates(raw["trade_date"])
    if not _check_dates(tdates, raw["trade_date"], line, spec.directory, sink, group=file_):
        return None
    expiry = _parse_dates(raw["expiry"])
    bad = expiry.isna().to_numpy()
    for i in np.nonzero(bad)[0][:_LIMIT]:
        sink.error(file_[i], int(line[i]), f"expiry {raw['expiry'].iloc[i]!r} is not a YYYY-MM-DD date")
    cm = raw["contract_month"].astype(str).str.strip().to_numpy()
    badcm = cm != raw["_month"].to_numpy()
    for i in np.nonzero(badcm)[0][:_LIMIT]:
        sink.error(file_[i], int(line[i]), f"contract_month {cm[i]!r} does not match the file name")
    if bad.any() or badcm.any():
        return None
    ev = expiry.to_numpy()
    changed = (ev[1:] != ev[:-1]) & (file_[1:] == file_[:-1])
    for i in (np.nonzero(changed)[0] + 1)[:_LIMIT]:
        sink.error(file_[i], int(line[i]), f"expiry changes within the file (was {_d(ev[i - 1])}, now {_d(ev[i])})")

    num = {}
    for col in ("open", "high", "low", "close", "settle", "total_volume", "open_interest"):
        v, empty, unparse = _numeric(raw[col])
        for i in np.nonzero(unparse)[0][:_LIMIT]:
            sink.error(file_[i], int(line[i]), f"{col} {raw[col].iloc[i]!r} is not a number", _d(tdates.iloc[i]))
        with np.errstate(invalid="ignore"):
            neg = v < 0
        for i in np.nonzero(neg)[0][:_LIMIT]:
            sink.error(file_[i], int(line[i]), f"{col} is {v[i]:g}; must be >= 0", _d(tdates.iloc[i]))
        if col == "settle":
            for i in np.nonzero(empty)[0][:_LIMIT]:
                sink.error(file_[i], int(line[i]), "settle is NaN", _d(tdates.iloc[i]))
        num[col] = v
    n_empty_ohlc = int(np.isnan(num["close"]).sum())
    if sink.n_errors > before:
        return None

    td_all = _trading_days(tdates.min(), tdates.max())
    on_td = tdates.isin(td_all).to_numpy()
    data_end = tdates.max()

    # ---- per-contract checks: expiry vs last trade date, gaps in the traded life --------------
    df = pd.DataFrame({
        "file": file_, "line": line, "date": tdates.to_numpy(), "expiry": ev, "contract_month": cm,
        "open": num["open"], "high": num["high"], "low": num["low"], "close": num["close"],
        "settle": num["settle"], "volume": num["total_volume"], "open_interest": num["open_interest"],
        "on_td": on_td,
    })
    grp = df.groupby("file", sort=False)
    last_idx = grp["date"].idxmax().to_numpy()
    for i in last_idx:
        f, last_d, exp_d = file_[i], df.at[i, "date"], df.at[i, "expiry"]
        if last_d == exp_d:
            continue
        if last_d < exp_d and last_d == data_end:
            continue  # still trading when the data ends
        sink.error(f, int(line[i]),
                   f"expiry column says {_d(exp_d)} but the last row is {_d(last_d)}"
                   + ("; rows after expiry" if last_d > exp_d else "; the final-settlement row is missing"),
                   _d(last_d))
    live_contracts = sorted({cm[i] for i in last_idx if df.at[i, "date"] < df.at[i, "expiry"]})

    traded = (df["open_interest"].fillna(0).to_numpy() > 0) | (df["volume"].fillna(0).to_numpy() > 0)
    known_gaps = {(fn, pd.Timestamp(g.date)): g for fn, g in spec.known_gaps}
    gap_carry: list[tuple[str, pd.Timestamp]] = []
    first_traded = df.loc[traded].groupby("file", sort=False)["date"].min()
    tdv = td_all.to_numpy()
    gaps_found = 0
    for f, sub in df[df["on_td"]].groupby("file", sort=False):
        if f not in first_traded.index:
            continue
        w0, w1 = first_traded[f], sub["date"].iloc[-1]
        lo, hi = np.searchsorted(tdv, w0.to_datetime64()), np.searchsorted(tdv, w1.to_datetime64(), side="right")
        have = sub["date"].to_numpy()
        miss_mask = ~np.isin(tdv[lo:hi], have)
        if not miss_mask.any():
            continue
        miss_pos = np.nonzero(miss_mask)[0] + lo
        name = f.rsplit("/", 1)[-1]
        unknown = [p for p in miss_pos if (name, pd.Timestamp(tdv[p])) not in known_gaps]
        gap_carry += [(f, pd.Timestamp(tdv[p])) for p in miss_pos if (name, pd.Timestamp(tdv[p])) in known_gaps]
        for a, b in _runs(np.array(unknown, dtype=int)):
            gaps_found += 1
            if gaps_found > _LIMIT:
                break
            nxt = np.searchsorted(have, tdv[b], side="right")
            row = int(sub["line"].iloc[nxt]) if nxt < len(have) else None
            what = (f"NYSE trading day {_d(tdv[a])} is missing" if a == b
                    else f"NYSE trading days {_d(tdv[a])}..{_d(tdv[b])} ({b - a + 1} days) are missing")
            sink.error(f, row, what + " while the contract has open interest (gap before this row)",
                       None if nxt >= len(have) else _d(have[nxt]))
    if sink.n_errors > before:
        return None

    notes = sink.notes
    # ---- rows on NYSE-closed days (CFE-only sessions) -----------------------------------------
    closed = ~df["on_td"].to_numpy()
    if closed.any():
        days = pd.DatetimeIndex(df.loc[closed, "date"].unique()).sort_values()
        notes.append(f"{spec.directory}: {int(closed.sum())} rows on {len(days)} CFE sessions when NYSE was "
                     f"closed dropped: {_list_dates(days)}")
    df = df[~closed]

    # ---- known bad values: replace by the contract's previous settle (as-of) or drop ---------
    bad_mask = np.zeros(len(df), dtype=bool)
    for kb in spec.known_bad_values:
        f = f"{spec.directory}/{kb.file}"
        hit = (df["file"].to_numpy() == f) & (df["date"].to_numpy() == np.datetime64(pd.Timestamp(kb.date)))
        if not hit.any():
            sink.warnings.append(f"{f}: known bad value on {kb.date} not found; the allowlist in "
                                 "adapters/data/sources.py is stale")
            continue
        bad_mask |= hit
        i = np.nonzero(hit)[0][0]
        notes.append(f"{f} row {int(df['line'].iloc[i])} ({kb.date}): {kb.column} {df[kb.column].iloc[i]:g} "
                     f"treated as missing and carried from the previous settle if any, else dropped ({kb.reason})")
    # ---- placeholders: settle == 0 rows are not settlements ----------------------------------
    zero = (df["settle"].to_numpy() == 0) & ~bad_mask
    if zero.any():
        notes.append(f"{spec.directory}: {int(zero.sum())} placeholder rows with settle = 0 dropped "
                     "(CFE placeholders before a contract traded, and no-trade days)")
    df = df[~zero].copy()
    bad_mask = bad_mask[~zero]
    if bad_mask.any():
        s = df["settle"].where(~bad_mask)
        df["settle"] = s.groupby(df["file"], sort=False).ffill()
        df = df[df["settle"].notna().to_numpy()]

    # ---- allowlisted gaps inside a contract's traded life: carry the previous settle ----------
    if gap_carry:
        add = []
        for f, d in gap_carry:
            prev = df[(df["file"] == f) & (df["date"] < d)].tail(1)
            if prev.empty:
                continue
            r = prev.iloc[0].copy()
            r["date"] = d
            r[["open", "high", "low", "close"]] = np.nan
            r["volume"] = 0.0
            r["line"] = 0
            add.append(r)
        if add:
            df = pd.concat([df, pd.DataFrame(add)], ignore_index=True)
            notes.append(f"{spec.directory}: {len(add)} allowlisted missing contract-days carried from the "
                         "previous settle (as-of rule)")

    # ---- prices: no-trade quirks, the 10x rescale -------------------------------------------
    px = ["open", "high", "low", "close"]
    for c in px:
        df.loc[df[c].to_numpy() == 0, c] = np.nan
    no_trade = df["close"].isna() & (df["volume"].fillna(0) == 0)
    hl_quirk = no_trade & (df["high"].notna() | df["low"].notna())
    if hl_quirk.any():
        df.loc[no_trade, ["open", "high", "low"]] = np.nan
        notes.append(f"{spec.directory}: {int(hl_quirk.sum())} no-trade rows (close 0, volume 0) carried non-zero "
                     "high/low (not trades; often high < low in the CBOE files); open/high/low/close set to NaN")
    if n_empty_ohlc:
        notes.append(f"{spec.directory}: {n_empty_ohlc} rows have empty open/high/low/close but a settle; kept with NaN prices")
    pre = df["date"].to_numpy() < np.datetime64(pd.Timestamp(spec.rescale_before))
    if pre.any():
        for c in px + ["settle"]:
            df.loc[pre, c] = df.loc[pre, c] / spec.rescale_factor
        notes.append(f"{spec.directory}: {int(pre.sum())} rows before {spec.rescale_before} divided by "
                     f"{spec.rescale_factor:g} (CFE quoted VX at 10 x VIX until then)")
    if live_contracts:
        notes.append(f"{spec.directory}: contracts still trading at the data end {_d(data_end)}: "
                     f"{', '.join(live_contracts)}")

    df = df.sort_values(["file", "date"], kind="stable")
    # ---- jumps in settle (warnings) ---------------------------------------------------------
    with np.errstate(divide="ignore", invalid="ignore"):
        lr = np.log(df["settle"]).groupby(df["file"], sort=False).diff().to_numpy()
    j = np.nonzero(np.abs(lr) > spec.jump_threshold)[0]
    if len(j):
        st = df["settle"].to_numpy()
        prev = df["settle"].groupby(df["file"], sort=False).shift(1).to_numpy()
        for k in j[:_LIMIT]:
            sink.warnings.append(str(DataError(df["file"].iloc[k], int(df["line"].iloc[k]),
                                               f"implausible jump: settle {prev[k]:g} -> {st[k]:g} "
                                               f"(log change {lr[k]:+.2f}, threshold {spec.jump_threshold:g})",
                                               date=_d(df["date"].iloc[k]))))
        if len(j) > _LIMIT:
            sink.warnings.append(f"{spec.directory}: {len(j) - _LIMIT} more implausible settle jumps")
    hl = (df["high"] < df["low"]).to_numpy()
    if hl.any():
        sink.warnings.append(f"{spec.directory}: {int(hl.sum())} traded rows have high < low "
                             f"(first: {df['file'][hl].iloc[0]} row {int(df['line'][hl].iloc[0])})")

    out = pd.DataFrame({
        "date": df["date"].to_numpy(),
        "expiry": df["expiry"].to_numpy(),
        "contract_month": df["contract_month"].astype(str).to_numpy(),
        "open": df["open"].to_numpy(dtype="float64"),
        "high": df["high"].to_numpy(dtype="float64"),
        "low": df["low"].to_numpy(dtype="float64"),
        "close": df["close"].to_numpy(dtype="float64"),
        "settle": df["settle"].to_numpy(dtype="float64"),
        "volume": df["volume"].fillna(0).to_numpy().astype("int64"),
        "open_interest": df["open_interest"].fillna(0).to_numpy().astype("int64"),
    })
    out = out.sort_values(["date", "expiry"], kind="stable", ignore_index=True)
    return ValidatedVX(frame=out, files=[f"{spec.directory}/{f.name}" for f in files], file_rows=len(raw))


# --------------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------------
def validate_events(data_dir: Path, spec: S.EventSpec, sink: Sink) -> pd.DatetimeIndex | None:
    df = _read_text_csv(data_dir, spec.path, sink)
    if df is None or not _check_header(df, (spec.date_column, *spec.columns), spec.path, sink):
        return None
    lines = np.arange(2, len(df) + 2)
    dates = _parse_dates(df[spec.date_column])
    if not _check_dates(dates, df[spec.date_column], lines, spec.path, sink):
        return None
    return pd.DatetimeIndex(dates, name="date")


# --------------------------------------------------------------------------------------------------
# Cross-checks between sources (warnings / notes only)
# --------------------------------------------------------------------------------------------------
def cross_checks(series: dict[str, ValidatedSeries], sink: Sink) -> None:
    def pair(a: str, b: str, col_a: str, col_b: str):
        if a not in series or b not in series:
            return None
        x, y = series[a].frame[col_a], series[b].frame[col_b]
        common = x.index.intersection(y.index).difference(series[a].carried).difference(series[b].carried)
        return x.reindex(common), y.reindex(common)

    p = pair("spx", "spx_ext", "close", "close")
    if p is not None:
        x, y = p
        rel = (x - y).abs() / y
        bad = rel > S.SPX_OVERLAP_TOLERANCE
        if bad.any():
            r = series["spx"].rows
            sink.warn_at(S.SPX.path, r.reindex(x.index[bad]).to_numpy(), x.index[bad],
                         [f"close {a:g} differs from {S.SPX_EXT.path} close {b:g} by {d:.3%}"
                          for a, b, d in zip(x[bad], y[bad], rel[bad])])
        sink.notes.append(f"{S.SPX.path} vs {S.SPX_EXT.path}: {len(x)} common days, max close difference "
                          f"{(rel.max() if len(rel) else 0):.4%}")
    p = pair("vix", "vix_fred", "close", "vixcls")
    if p is not None:
        x, y = p
        ok = y.notna()
        diff = (x[ok] - y[ok]).abs()
        bad = diff > 0.005
        if bad.any():
            sink.warn_at(S.VIX.path, series["vix"].rows.reindex(diff.index[bad]).to_numpy(), diff.index[bad],
                         [f"close {a:g} differs from FRED VIXCLS {b:g}" for a, b in zip(x[ok][bad], y[ok][bad])])
        sink.notes.append(f"{S.VIX.path} vs FRED VIXCLS: {int(ok.sum())} common days, {int(bad.sum())} differ by > 0.005")
    p = pair("dtb3", "dtb3_ext", "dtb3", "dtb3")
    if p is not None:
        x, y = p
        diff = (x - y).abs()
        bad = diff > 1e-9
        if bad.any():
            sink.warn_at(S.DTB3.path, series["dtb3"].rows.reindex(diff.index[bad]).to_numpy(), diff.index[bad],
                         [f"dtb3 {a:g} differs from {S.DTB3_EXT.path} {b:g}" for a, b in zip(x[bad], y[bad])])
    p = pair("vix3m", "vxv", "close", "close")
    if p is not None:
        x, y = p
        diff = (x - y).abs()
        if len(diff):
            sink.notes.append(f"{S.VIX3M.path} vs {S.VXV.path}: {len(diff)} common days, {int((diff > 0.01).sum())} "
                              f"differ by > 0.01, max {diff.max():.2f} on {_d(diff.idxmax())}")


# --------------------------------------------------------------------------------------------------
# Everything
# --------------------------------------------------------------------------------------------------
def validate_all(data_dir: Path | str, *, collect: bool) -> Validated:
    data_dir = Path(data_dir)
    sink = Sink(collect)
    series: dict[str, ValidatedSeries] = {}
    for spec in S.DAILY_SPECS:
        v = validate_daily(data_dir, spec, sink)
        if v is not None:
            series[spec.key] = v
    vx = validate_vx(data_dir, S.VX, sink)
    events: dict[str, pd.DatetimeIndex] = {}
    for es in S.EVENT_SPECS:
        e = validate_events(data_dir, es, sink)
        if e is not None:
            events[es.key] = e
    cross_checks(series, sink)
    return Validated(series=series, vx=vx, events=events, sink=sink)


def coverage_table(v: Validated) -> pd.DataFrame:
    recs = []
    for spec in S.DAILY_SPECS:
        s = v.series.get(spec.key)
        recs.append({
            "series": spec.key, "file": spec.path,
            "first": s.first if s is not None else pd.NaT,
            "last": s.last if s is not None else pd.NaT,
            "rows": int((s.rows > 0).sum()) if s is not None else 0,
            "missing_trading_days": len(s.carried) if s is not None else np.nan,
        })
    if v.vx is not None and len(v.vx.frame):
        f = v.vx.frame
        recs.append({"series": "vx", "file": f"{S.VX.directory}/{S.VX.glob}", "first": f["date"].min(),
                     "last": f["date"].max(), "rows": len(f), "missing_trading_days": 0})
    for es in S.EVENT_SPECS:
        e = v.events.get(es.key)
        recs.append({"series": es.key, "file": es.path,
                     "first": e.min() if e is not None and len(e) else pd.NaT,
                     "last": e.max() if e is not None and len(e) else pd.NaT,
                     "rows": len(e) if e is not None else 0, "missing_trading_days": np.nan})
    return pd.DataFrame.from_records(recs, columns=["series", "file", "first", "last", "rows", "missing_trading_days"])


def check_option_files(data_dir: Path, sink: Sink) -> pd.DataFrame:
    """Load every option-quote file (every layout of SOURCES.md section 10) with the same checks the analyses use;
    a file that fails is an error naming file and line. One coverage row per file: first/last quote date, quotes."""
    from .chain_layouts import (  # lazy: load_panel never reads option files
        list_option_files,
        load_option_file,
    )

    recs = []
    for path in list_option_files(data_dir):
        rel = str(path.relative_to(data_dir))
        try:
            snaps = load_option_file(path)
        except DataError as exc:
            sink.error(rel, exc.row, exc.message)
            continue
        sink.notes.extend(n for s in snaps for n in s.notes)
        recs.append({"series": f"options:{snaps[0].underlying}:{snaps[0].layout}", "file": rel,
                     "first": snaps[0].trade_date, "last": snaps[-1].trade_date,
                     "rows": sum(len(s.quotes) for s in snaps), "missing_trading_days": np.nan})
    return pd.DataFrame.from_records(recs, columns=["series", "file", "first", "last", "rows", "missing_trading_days"])


def check_data(data_dir: Path | str) -> DataReport:
    """Validate every series and every option-quote file without stopping at the first error."""
    data_dir = Path(data_dir)
    v = validate_all(data_dir, collect=True)
    options = check_option_files(data_dir, v.sink)
    coverage = pd.concat([coverage_table(v), options], ignore_index=True) if len(options) else coverage_table(v)
    return DataReport(errors=list(v.sink.errors), warnings=list(v.sink.warnings), coverage=coverage,
                      notes=list(v.sink.notes))


__all__ = ["DataReport", "Sink", "Validated", "ValidatedSeries", "ValidatedVX", "check_data", "check_option_files",
           "validate_all"]

