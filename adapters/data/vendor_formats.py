"""The vendors' raw formats and their normalizers into the layout of ``shared/data/SOURCES.md``:

* ISO ``YYYY-MM-DD`` dates, lower-case snake_case column names;
* values are the vendor's text, unchanged (no rounding, no re-scaling; FRED's ``.`` placeholder
  for a missing value becomes an empty cell, as in the shared copies);
* rows ascending by date with no duplicate dates.

A body that does not have the expected columns (an HTML error or bot-check page, say) raises
:class:`NormalizeError` quoting its first line. Standard library only.
"""
from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from itertools import pairwise


class NormalizeError(ValueError):
    """The downloaded body is not in the expected vendor format."""


@dataclass(frozen=True)
class NormalizeContext:
    source: str
    url: str
    expiry: date | None = None          # VX contract expiry
    now: datetime | None = None         # aware UTC time of the fetch (for intraday-row logic)


@dataclass
class Normalized:
    text: str
    rows: int
    first_date: str | None
    last_date: str | None
    notes: list[str] = field(default_factory=list)


_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_US = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


def iso_date(text: str) -> str:
    """``MM/DD/YYYY``, ``M/D/YYYY`` or ``YYYY-MM-DD`` (optionally with a time part) -> ISO."""
    s = text.strip().split(" ")[0].split("T")[0]
    m = _ISO.match(s)
    if m:
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    else:
        m = _US.match(s)
        if not m:
            raise NormalizeError(f"unparseable date {text!r}")
        mo, d, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
    try:
        return date(y, mo, d).isoformat()
    except ValueError as exc:
        raise NormalizeError(f"invalid date {text!r}") from exc


def _rows(text: str) -> list[list[str]]:
    """CSV rows with cells stripped, blank lines dropped and trailing empty cells trimmed."""
    out = []
    for row in csv.reader(io.StringIO(text.replace("\r\n", "\n").replace("\r", "\n"))):
        cells = [c.strip() for c in row]
        while cells and cells[-1] == "":
            cells.pop()
        if cells:
            out.append(cells)
    return out


def _excerpt(text: str, n: int = 60) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return repr(first[:n] + ("..." if len(first) > n else ""))


def _finish(header: list[str], records: list[tuple[str, list[str]]], notes: list[str],
            what: str) -> Normalized:
    """Sort ascending (stable), drop duplicate dates (keep last), render CSV text."""
    if not records:
        raise NormalizeError(f"{what} has a header but no data rows")
    dates = [d for d, _ in records]
    if any(b <= a for a, b in pairwise(dates)):
        by_date: dict[str, list[str]] = {}
        dupes = 0
        for d, row in records:
            if d in by_date:
                dupes += 1
            by_date[d] = row
        if dupes:
            notes.append(f"{dupes} duplicate date row(s) collapsed (last kept)")
        if dates != sorted(dates):
            notes.append("rows were not in date order and were sorted")
        records = sorted(by_date.items())
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(row for _, row in records)
    return Normalized(buf.getvalue(), len(records), records[0][0], records[-1][0], notes)


def _table(text: str, expected: list[str], *, what: str,
           aliases: Mapping[str, str] | None = None) -> tuple[list[str], list[list[str]]]:
    """Find the header row, check it has ``expected`` columns (case-insensitive, aliases
    allowed), and return (upper-case header, data rows)."""
    rows = _rows(text)
    if not rows:
        raise NormalizeError(f"{what} is empty")
    aliases = {k.upper(): v.upper() for k, v in (aliases or {}).items()}
    header = [aliases.get(h.upper().lstrip("\ufeff"), h.upper().lstrip("\ufeff")) for h in rows[0]]
    missing = [c for c in expected if c.upper() not in header]
    if missing:
        raise NormalizeError(
            f"{what} is not in the expected format (first line {_excerpt(text)}; "
            f"expected columns {','.join(expected)})"
        )
    return header, rows[1:]


def _pick(header: list[str], row: list[str], cols: list[str]) -> list[str]:
    out = []
    for c in cols:
        i = header.index(c.upper()) if c.upper() in header else None
        out.append(row[i] if i is not None and i < len(row) else "")
    return out


def _dated(header: list[str], data: list[list[str]], cols: list[str], what: str,
           first_line: int = 2) -> list[tuple[str, list[str]]]:
    """(ISO date, the other ``cols`` values) per data row; an unparseable date names its line."""
    out = []
    for n, row in enumerate(data, start=first_line):
        vals = _pick(header, row, cols)
        try:
            out.append((iso_date(vals[0]), vals[1:]))
        except NormalizeError as exc:
            raise NormalizeError(f"{what} line {n}: {exc}") from None
    return out


def cboe_index_normalizer(value_cols: list[str]) -> Callable[[str, NormalizeContext], Normalized]:
    """Cboe ``*_History.csv``: ``DATE,<value_cols>`` with ``MM/DD/YYYY`` dates."""
    expected = ["DATE", *value_cols]

    def normalize(text: str, ctx: NormalizeContext) -> Normalized:
        what = f"{ctx.source} ({ctx.url})"
        header, data = _table(text, expected, what=what)
        records = [(d, [d, *vals]) for d, vals in _dated(header, data, expected, what)]
        return _finish([c.lower() for c in expected], records, [], what)

    return normalize


def fred_normalizer(series_id: str) -> Callable[[str, NormalizeContext], Normalized]:
    """FRED ``fredgraph.csv``: ``observation_date,<ID>`` (current) or ``DATE,<ID>`` (older);
    ``.`` or empty for a missing observation (written as an empty cell)."""
    sid = series_id.upper()

    def normalize(text: str, ctx: NormalizeContext) -> Normalized:
        what = f"{ctx.source} ({ctx.url})"
        header, data = _table(text, ["DATE", sid], what=what, aliases={"observation_date": "DATE"})
        records = [(d, [d, "" if v == "." else v]) for d, (v,) in _dated(header, data, ["DATE", sid], what)]
        return _finish(["date", sid.lower()], records, [], what)

    return normalize


_NY_CLOSE_SETTLED = time(17, 15)


def stooq_normalizer(text: str, ctx: NormalizeContext) -> Normalized:
    """Daily CSV ``Date,Open,High,Low,Close,Volume`` (Stooq's export, and the CSV rendered from
    Yahoo's history by :func:`yahoo_csv`).

    Both serve a live, partial row for the current session while the US market is open
    (shared/data dropped one such row). A row dated today (New York time) fetched before
    17:15 New York time is therefore dropped.
    """
    what = f"{ctx.source} ({ctx.url})"
    cols = ["DATE", "OPEN", "HIGH", "LOW", "CLOSE", "VOLUME"]
    header, data = _table(text, cols[:5], what=what)
    records = [(d, [d, *vals]) for d, vals in _dated(header, data, cols, what)]
    notes: list[str] = []
    if "VOLUME" not in header:
        notes.append("no Volume column in the source; volume left empty")
    if records and ctx.now is not None:
        from zoneinfo import ZoneInfo

        now_ny = ctx.now.astimezone(ZoneInfo("America/New_York"))
        last = max(d for d, _ in records)
        if last == now_ny.date().isoformat() and now_ny.time() < _NY_CLOSE_SETTLED:
            records = [r for r in records if r[0] != last]
            notes.append(f"dropped the partial intraday row for {last}")
    return _finish([c.lower() for c in cols], records, notes, what)


def cboe_spx_normalizer(text: str, ctx: NormalizeContext) -> Normalized:
    """Cboe ``SPX_History.csv``: ``DATE,SPX`` (closes only, ``MM/DD/YYYY``), or ``DATE,OPEN,HIGH,LOW,CLOSE``
    should Cboe publish the full bar, into the columns of ``spx_daily.csv``. Columns the source does
    not publish are left empty (the panel reads an all-empty open/high/low as "not published")."""
    what = f"{ctx.source} ({ctx.url})"
    header = _table(text, ["DATE"], what=what)[0]
    value_cols = ["OPEN", "HIGH", "LOW", "CLOSE"] if "CLOSE" in header else ["SPX"]
    out = cboe_index_normalizer(value_cols)(text, ctx)
    rows = list(csv.reader(io.StringIO(out.text)))
    if value_cols == ["SPX"]:
        body = [[r[0], "", "", "", r[1], ""] for r in rows[1:]]
        out.notes.append("the source publishes closes only: open, high, low and volume are empty")
    else:
        body = [[*r, ""] for r in rows[1:]]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["date", "open", "high", "low", "close", "volume"])
    w.writerows(body)
    return Normalized(buf.getvalue(), out.rows, out.first_date, out.last_date, out.notes)


def yahoo_csv(frame) -> str:
    """Yahoo daily bars (a ``yfinance`` history frame: index of dates, Open/High/Low/Close/Volume) as
    the ``Date,Open,High,Low,Close,Volume`` CSV that :func:`stooq_normalizer` reads.

    Yahoo stores index levels as binary floats (4742.830078125); they are written to cents, the
    precision S&P publishes, so the file holds the published values."""
    rows = ["Date,Open,High,Low,Close,Volume"]

    def cell(x: float, fmt: str) -> str:
        return format(x, fmt) if math.isfinite(x) else ""

    for ts, o, h, lo, c, v in zip(frame.index, frame["Open"], frame["High"], frame["Low"], frame["Close"],
                                  frame["Volume"]):
        day = ts.date() if hasattr(ts, "date") else ts
        rows.append(f"{day.isoformat()},{cell(o, '.2f')},{cell(h, '.2f')},{cell(lo, '.2f')},{cell(c, '.2f')},"
                    f"{cell(v, '.0f')}")
    return "\n".join(rows) + "\n"


#: Columns of ``vx_futures/VX_YYYY-MM.csv`` (same as shared/data).
VX_COLUMNS = ["trade_date", "contract_month", "expiry", "futures_label", "open", "high", "low",
              "close", "settle", "change", "total_volume", "efp", "open_interest", "source"]
#: Value of the ``source`` column (and of ``contracts_index.csv``'s source) for fetched contracts:
#: Cboe's per-contract CDN files (2014 on) and CFE's settlement archive (2004-2013).
VX_SOURCE_TAG = "cboe_cdn"
VX_ARCHIVE_TAG = "cboe_cfe_archive"
VX_FETCHED_TAGS = (VX_SOURCE_TAG, VX_ARCHIVE_TAG)
_VX_RAW = ["TRADE DATE", "FUTURES", "OPEN", "HIGH", "LOW", "CLOSE", "SETTLE", "CHANGE",
           "TOTAL VOLUME", "EFP", "OPEN INTEREST"]


def vx_normalizer(text: str, ctx: NormalizeContext, *, tag: str = VX_SOURCE_TAG,
                  expiry_from_last_row: bool = False) -> Normalized:
    """CFE per-contract settlement file (``VX_<expiry>.csv`` on the CDN, ``CFE_<M><YY>_VX.csv`` in the
    archive). A disclaimer line before the header (seen in some Cboe files) is skipped."""
    what = f"{ctx.source} ({ctx.url})"
    if ctx.expiry is None:
        raise NormalizeError(f"{what}: VX normalizer needs the contract expiry")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    start = next((i for i, ln in enumerate(lines) if ln.strip().lstrip("\ufeff").upper().startswith("TRADE DATE")),
                 None)
    if start is None:
        raise NormalizeError(
            f"{what} is not in the expected format (first line {_excerpt(text)}; "
            f"expected columns {','.join(c.title() for c in _VX_RAW)})"
        )
    header, data = _table("\n".join(lines[start:]), _VX_RAW, what=what)
    parsed = _dated(header, data, _VX_RAW, what, first_line=start + 2)
    notes: list[str] = []
    exp = ctx.expiry.isoformat()
    if expiry_from_last_row and parsed:
        # a settled archive contract: its last row is the final-settlement day, as in shared/data
        # (CFE's first contracts did not all follow today's expiry rule: VX Jul-2004 expired 07-14)
        last = max(d for d, _ in parsed)
        if last != exp:
            notes.append(f"expiry {last} (last trade date) differs from the rule's {exp}")
        exp = last
    month = ctx.expiry.strftime("%Y-%m")
    records = [(d, [d, month, exp, *vals, tag]) for d, vals in parsed]
    return _finish(VX_COLUMNS, records, notes, what)


def vx_archive_normalizer(text: str, ctx: NormalizeContext) -> Normalized:
    """CFE's settlement archive ``CFE_<M><YY>_VX.csv`` (contracts 2004-05 to 2013-12, all settled)."""
    return vx_normalizer(text, ctx, tag=VX_ARCHIVE_TAG, expiry_from_last_row=True)
