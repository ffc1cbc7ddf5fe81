"""Catalogue of the public market-data sources that ``alvh data fetch`` downloads.

Each :class:`Source` names a URL template, the path it is written to inside the data
directory, and a normalizer that turns the vendor's raw CSV into the layout documented in
``shared/data/SOURCES.md``:

* ISO ``YYYY-MM-DD`` dates, lower-case snake_case column names;
* values are the vendor's text, unchanged (no rounding, no re-scaling; FRED's ``.`` placeholder
  for a missing value becomes an empty cell, as in the shared copies);
* rows ascending by date with no duplicate dates.

Only the standard library is used here, so the catalogue can be imported (and the
normalizers unit-tested) without pandas.
"""
from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from itertools import pairwise
from urllib.parse import urlsplit

__all__ = [
    "CATALOGUE",
    "DEFAULT_BASES",
    "ENV_BASE",
    "VX_COLUMNS",
    "VX_SOURCE_TAG",
    "Download",
    "NormalizeContext",
    "NormalizeError",
    "Normalized",
    "Source",
    "parse_base_overrides",
    "redact_url",
    "resolve_base",
    "select_sources",
]

# --------------------------------------------------------------------------- base URLs

#: Default base URL of each host group. A URL template is ``{base}`` plus a fixed suffix.
DEFAULT_BASES: dict[str, str] = {
    "cboe_index": "https://cdn.cboe.com/api/global/us_indices/daily_prices",
    "cboe_vx": "https://cdn.cboe.com/data/us/futures/market_statistics/historical_data/VX",
    "fred": "https://fred.stlouisfed.org/graph/fredgraph.csv",
    "stooq": "https://stooq.com/q/d/l/",
}

#: Environment variable: either one mirror root URL (every default base keeps its path and
#: is re-rooted there) or comma-separated ``name=url`` pairs like ``--base-url-override``.
ENV_BASE = "ALVH_FETCH_BASE"

_PAIR_RE = re.compile(r"^\s*([A-Za-z0-9_*.-]+)\s*=\s*(\S.*?)\s*$")


def parse_base_overrides(items: Iterable[str] | str | None) -> dict[str, str]:
    """Parse ``name=url`` strings (or one comma-separated string) into a dict.

    A bare URL without ``name=`` is a mirror root for every source (key ``"*"``).
    ``name`` is a source name (``vix``, ``vx``, ``dtb3`` ...), a host group
    (``cboe_index``, ``cboe_vx``, ``fred``, ``stooq``) or ``*``.
    """
    if items is None:
        return {}
    if isinstance(items, str):
        items = [items]
    out: dict[str, str] = {}
    for item in items:
        for part in _split_pairs(item):
            m = _PAIR_RE.match(part)
            if m and "://" not in m.group(1):
                out[m.group(1)] = m.group(2)
            elif "://" in part:
                out["*"] = part.strip()
            else:
                raise ValueError(f"bad base-URL override {part!r}: expected NAME=URL or a mirror root URL")
    return out


def _split_pairs(item: str) -> list[str]:
    # "a=http://x,b=http://y" -> two pairs; a lone URL (which may itself contain commas
    # in its query) is kept whole.
    pieces = [p for p in item.split(",") if p.strip()]
    if len(pieces) > 1 and all(_PAIR_RE.match(p) and "://" not in p.split("=", 1)[0] for p in pieces):
        return pieces
    return [item] if item.strip() else []


def resolve_base(source: Source, overrides: Mapping[str, str] | None = None,
                 env: Mapping[str, str] | None = None) -> str:
    """Base URL for ``source``: explicit override by source name, then by group, then a
    ``*`` mirror root, then ``$ALVH_FETCH_BASE``, then the public default."""
    default = DEFAULT_BASES[source.group]
    merged: dict[str, str] = {}
    env = os.environ if env is None else env
    if env.get(ENV_BASE):
        merged.update(parse_base_overrides(env[ENV_BASE]))
    merged.update(overrides or {})
    for key in (source.name, source.group):
        if key in merged:
            return merged[key]
    if "*" in merged:
        root = merged["*"].rstrip("/")
        return root + urlsplit(default).path
    return default


_SECRET_PARAM = re.compile(r"(?i)^(api_?key|key|token|access_?token|auth)$")


def redact_url(url: str) -> str:
    """``url`` with the values of key/token query parameters replaced by ``***`` (for logs,
    error messages, sidecars and SOURCES.md)."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    q = "&".join(
        f"{k}=***" if _SECRET_PARAM.match(k) else (f"{k}={v}" if sep else k)
        for k, sep, v in (p.partition("=") for p in parts.query.split("&"))
    )
    return parts._replace(query=q).geturl()


# --------------------------------------------------------------------------- normalization


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


def cboe_index_normalizer(value_cols: list[str]) -> Callable[[str, NormalizeContext], Normalized]:
    """Cboe ``*_History.csv``: ``DATE,<value_cols>`` with ``MM/DD/YYYY`` dates."""
    expected = ["DATE", *value_cols]

    def normalize(text: str, ctx: NormalizeContext) -> Normalized:
        what = f"{ctx.source} ({ctx.url})"
        header, data = _table(text, expected, what=what)
        records, notes = [], []
        for n, row in enumerate(data, start=2):
            vals = _pick(header, row, expected)
            try:
                d = iso_date(vals[0])
            except NormalizeError as exc:
                raise NormalizeError(f"{what} line {n}: {exc}") from None
            records.append((d, [d, *vals[1:]]))
        return _finish([c.lower() for c in expected], records, notes, what)

    return normalize


def fred_normalizer(series_id: str) -> Callable[[str, NormalizeContext], Normalized]:
    """FRED ``fredgraph.csv``: ``observation_date,<ID>`` (current) or ``DATE,<ID>`` (older);
    ``.`` or empty for a missing observation (written as an empty cell)."""
    sid = series_id.upper()

    def normalize(text: str, ctx: NormalizeContext) -> Normalized:
        what = f"{ctx.source} ({ctx.url})"
        header, data = _table(text, ["DATE", sid], what=what, aliases={"observation_date": "DATE"})
        records = []
        for n, row in enumerate(data, start=2):
            d_raw, v = _pick(header, row, ["DATE", sid])
            try:
                d = iso_date(d_raw)
            except NormalizeError as exc:
                raise NormalizeError(f"{what} line {n}: {exc}") from None
            records.append((d, [d, "" if v == "." else v]))
        return _finish(["date", sid.lower()], records, [], what)

    return normalize


_NY_CLOSE_SETTLED = time(17, 15)


def stooq_normalizer(text: str, ctx: NormalizeContext) -> Normalized:
    """Stooq daily CSV ``Date,Open,High,Low,Close,Volume``.

    Stooq serves a live, partial row for the current session while the US market is open
    (shared/data dropped one such row). A row dated today (New York time) fetched before
    17:15 New York time is therefore dropped.
    """
    what = f"{ctx.source} ({ctx.url})"
    cols = ["DATE", "OPEN", "HIGH", "LOW", "CLOSE", "VOLUME"]
    header, data = _table(text, cols[:5], what=what)
    records, notes = [], []
    for n, row in enumerate(data, start=2):
        vals = _pick(header, row, cols)
        try:
            d = iso_date(vals[0])
        except NormalizeError as exc:
            raise NormalizeError(f"{what} line {n}: {exc}") from None
        records.append((d, [d, *vals[1:]]))
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


#: Columns of ``vx_futures/VX_YYYY-MM.csv`` (same as shared/data).
VX_COLUMNS = ["trade_date", "contract_month", "expiry", "futures_label", "open", "high", "low",
              "close", "settle", "change", "total_volume", "efp", "open_interest", "source"]
#: Value of the ``source`` column (and of ``contracts_index.csv``'s source) for fetched contracts.
VX_SOURCE_TAG = "cboe_cdn"
_VX_RAW = ["TRADE DATE", "FUTURES", "OPEN", "HIGH", "LOW", "CLOSE", "SETTLE", "CHANGE",
           "TOTAL VOLUME", "EFP", "OPEN INTEREST"]


def vx_normalizer(text: str, ctx: NormalizeContext) -> Normalized:
    """CFE per-contract settlement file (``VX_<expiry>.csv``). A disclaimer line before the
    header (seen in some Cboe files) is skipped."""
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
    month, exp = ctx.expiry.strftime("%Y-%m"), ctx.expiry.isoformat()
    records = []
    for n, row in enumerate(data, start=start + 2):
        vals = _pick(header, row, _VX_RAW)
        try:
            d = iso_date(vals[0])
        except NormalizeError as exc:
            raise NormalizeError(f"{what} line {n}: {exc}") from None
        records.append((d, [d, month, exp, *vals[1:], VX_SOURCE_TAG]))
    return _finish(VX_COLUMNS, records, [], what)


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class Download:
    """One URL -> one file in the data directory."""

    source: str
    url: str
    target: str                              # posix path relative to the data directory
    normalize: Callable[[str, NormalizeContext], Normalized]
    expiry: date | None = None               # VX contracts
    optional: bool = False                   # a 404 means "not listed yet", not a failure
    immutable_after: date | None = None      # once fetched after this date, never re-fetched
    hint: str = ""                           # added to the error when the body is not the expected CSV


@dataclass(frozen=True)
class Source:
    """A catalogue entry.

    ``url_template`` is formatted with ``base`` (see :func:`resolve_base`) and, for
    per-contract sources, ``expiry`` (a ``date``); so is ``target``.
    """

    name: str
    group: str
    url_template: str
    target: str
    normalizer: Callable[[str, NormalizeContext], Normalized]
    description: str
    homepage: str = ""
    hint: str = ""                           # added to the error when the body is not the expected CSV
    per_contract: bool = False
    # per-contract (VX) options
    start: str = "2013-01"                   # first contract month requested
    end: str | None = None                   # last contract month; None = months_ahead past today
    months_ahead: int = 9
    expiry_fn: Callable[[int, int], object] | None = None   # default engine.calendar.vix_expiry
    settle_days: int = 3                     # contract files are final this many days after expiry
    listed_days: int = 150                   # contracts expiring within this many days must exist;
    #                                          later ones may not be listed yet (404 = "unlisted")

    def months(self, today: date) -> list[tuple[int, int]]:
        y, m = (int(x) for x in self.start.split("-"))
        if self.end:
            ey, em = (int(x) for x in self.end.split("-"))
        else:
            k = today.year * 12 + today.month - 1 + self.months_ahead
            ey, em = divmod(k, 12)
            em += 1
        out = []
        while (y, m) <= (ey, em):
            out.append((y, m))
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out

    def downloads(self, base: str, today: date) -> list[Download]:
        template = self.url_template
        if template.startswith("{base}/"):
            base = base.rstrip("/")
        elif template.startswith("{base}?") and "?" in base:
            # an override that carries its own query (e.g. an API key): append ours with '&'
            template = "{base}&" + template[len("{base}?"):]
            base = base.rstrip("&")
        if not self.per_contract:
            return [Download(self.name, template.format(base=base), self.target, self.normalizer, hint=self.hint)]
        fn = self.expiry_fn or _engine_vix_expiry()
        out = []
        for y, m in self.months(today):
            exp = _as_date(fn(y, m))
            out.append(Download(
                self.name,
                template.format(base=base, expiry=exp),
                self.target.format(expiry=exp),
                self.normalizer,
                expiry=exp,
                optional=(exp - today).days > self.listed_days,
                immutable_after=date.fromordinal(exp.toordinal() + self.settle_days),
                hint=self.hint,
            ))
        return out


def _engine_vix_expiry() -> Callable[[int, int], object]:
    try:
        from engine.calendar import vix_expiry
    except ImportError as exc:  # engine.calendar.vix_expiry not available
        raise RuntimeError(f"VX expiries need engine.calendar.vix_expiry, which could not be imported ({exc})") \
            from exc
    return vix_expiry


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    to_date = getattr(value, "date", None)   # pandas.Timestamp
    if callable(to_date):
        return to_date()
    return date.fromisoformat(str(value)[:10])


_CBOE_HOME = "https://www.cboe.com/tradable_products/vix/vix_historical_data/"

CATALOGUE: dict[str, Source] = {
    s.name: s
    for s in [
        Source("vix", "cboe_index", "{base}/VIX_History.csv", "vix_daily.csv",
               cboe_index_normalizer(["OPEN", "HIGH", "LOW", "CLOSE"]),
               "Cboe VIX index, daily OHLC", _CBOE_HOME),
        Source("vix9d", "cboe_index", "{base}/VIX9D_History.csv", "vix9d_daily.csv",
               cboe_index_normalizer(["OPEN", "HIGH", "LOW", "CLOSE"]),
               "Cboe VIX9D index, daily OHLC", _CBOE_HOME),
        Source("vix3m", "cboe_index", "{base}/VIX3M_History.csv", "vix3m_daily.csv",
               cboe_index_normalizer(["OPEN", "HIGH", "LOW", "CLOSE"]),
               "Cboe VIX3M index (formerly VXV), daily OHLC", _CBOE_HOME),
        Source("vix6m", "cboe_index", "{base}/VIX6M_History.csv", "vix6m_daily.csv",
               cboe_index_normalizer(["OPEN", "HIGH", "LOW", "CLOSE"]),
               "Cboe VIX6M index (formerly VXMT), daily OHLC", _CBOE_HOME),
        Source("vvix", "cboe_index", "{base}/VVIX_History.csv", "vvix_daily.csv",
               cboe_index_normalizer(["VVIX"]), "Cboe VVIX index, daily close", _CBOE_HOME),
        Source("skew", "cboe_index", "{base}/SKEW_History.csv", "skew_daily.csv",
               cboe_index_normalizer(["SKEW"]), "Cboe SKEW index, daily close", _CBOE_HOME),
        Source("vx", "cboe_vx", "{base}/VX_{expiry:%Y-%m-%d}.csv", "vx_futures/VX_{expiry:%Y-%m}.csv",
               vx_normalizer, "CFE VX futures daily settlements, one file per monthly contract",
               "https://www.cboe.com/us/futures/market_statistics/historical_data/", per_contract=True),
        Source("dtb3", "fred", "{base}?id=DTB3", "rates/dtb3_daily.csv", fred_normalizer("DTB3"),
               "FRED DTB3, 3-month T-bill secondary market rate (discount basis, %)",
               "https://fred.stlouisfed.org/series/DTB3"),
        Source("dff", "fred", "{base}?id=DFF", "rates/dff_daily.csv", fred_normalizer("DFF"),
               "FRED DFF, effective federal funds rate (%), daily incl. weekends",
               "https://fred.stlouisfed.org/series/DFF"),
        Source("spx", "stooq", "{base}?s=^spx&i=d", "spx_daily.csv", stooq_normalizer,
               "S&P 500 index (^SPX) daily OHLC + Stooq volume", "https://stooq.com/q/d/?s=^spx",
               hint="Stooq has answered scripts with an HTML page asking for an API key since 2026; "
                    "see docs/fetch.md for --base-url-override 'spx=https://stooq.com/q/d/l/?<key param>'"),
    ]
}


def select_sources(names: Iterable[str | Source] | str | None) -> list[Source]:
    """Resolve ``--only`` style names (or Source objects) against :data:`CATALOGUE`."""
    if names is None:
        return list(CATALOGUE.values())
    if isinstance(names, str):
        names = [n for n in names.split(",")]
    out: list[Source] = []
    for n in names:
        if isinstance(n, Source):
            out.append(n)
            continue
        key = n.strip().lower()
        if not key:
            continue
        if key not in CATALOGUE:
            raise KeyError(f"unknown data source {n!r}; known: {', '.join(CATALOGUE)}")
        out.append(CATALOGUE[key])
    seen: set[str] = set()
    return [s for s in out if not (s.name in seen or seen.add(s.name))]


def with_options(source: Source, **changes) -> Source:
    """``dataclasses.replace`` for a catalogue entry (e.g. a narrower VX month range)."""
    return replace(source, **changes)


def utcnow() -> datetime:
    return datetime.now(UTC)
