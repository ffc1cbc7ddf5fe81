"""Catalogue of the public market-data sources that ``alvh data fetch`` downloads.

Each :class:`Source` names a URL template (or, for Yahoo, a library call), the path it is written
to inside the data directory, and a normalizer from ``vendor_formats.py`` that turns the vendor's
raw CSV into the layout documented in ``shared/data/SOURCES.md``. Base URLs, mirrors and key
redaction are in ``source_urls.py``.

The SPX daily bars have three providers (:func:`spx_source`): Stooq (needs an API key since 2026),
Yahoo through the optional ``yfinance`` library (``pip install 'alvh[fetch]'``), and Cboe's
key-free close-only history.

Only the standard library is used here (yfinance is imported when Yahoo is used), so the
catalogue can be imported without pandas.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from adapters.data.source_urls import DEFAULT_BASES, ENV_BASE, parse_base_overrides, redact_url, resolve_base
from adapters.data.vendor_formats import (
    VX_COLUMNS,
    VX_SOURCE_TAG,
    NormalizeContext,
    Normalized,
    NormalizeError,
    cboe_index_normalizer,
    cboe_spx_normalizer,
    fred_normalizer,
    stooq_normalizer,
    vx_archive_normalizer,
    vx_normalizer,
    yahoo_csv,
)

__all__ = [
    "CATALOGUE",
    "DEFAULT_BASES",
    "ENV_BASE",
    "SPX_PROVIDERS",
    "VX_COLUMNS",
    "VX_SOURCE_TAG",
    "Download",
    "NormalizeContext",
    "NormalizeError",
    "Normalized",
    "Source",
    "cboe_spx_normalizer",
    "parse_base_overrides",
    "redact_url",
    "resolve_base",
    "select_sources",
    "spx_source",
    "stooq_normalizer",
    "vx_normalizer",
]

_MONTH_CODES = "FGHJKMNQUVXZ"   # CFE futures month letters, January to December


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
    # a maintained library instead of a URL (Yahoo through yfinance): timeout -> the raw CSV text
    fetch: Callable[[float], str] | None = None
    notice: str = ""                         # one sentence shown with the result (a fallback provider)
    description: str = ""                    # the series, for SOURCES.md


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
    unlisted_months: tuple[str, ...] = ()    # months that were never listed (404 = "unlisted")
    fetch: Callable[[float], str] | None = None
    notice: str = ""

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
            url = self.url_template if self.fetch else template.format(base=base)
            return [Download(self.name, url, self.target, self.normalizer, hint=self.hint, fetch=self.fetch,
                             notice=self.notice, description=self.description)]
        fn = self.expiry_fn or _engine_vix_expiry()
        out = []
        for y, m in self.months(today):
            exp = _as_date(fn(y, m))
            out.append(Download(
                self.name,
                template.format(base=base, expiry=exp, code=f"{_MONTH_CODES[m - 1]}{y % 100:02d}"),
                self.target.format(expiry=exp),
                self.normalizer,
                expiry=exp,
                optional=(exp - today).days > self.listed_days or f"{y}-{m:02d}" in self.unlisted_months,
                immutable_after=date.fromordinal(exp.toordinal() + self.settle_days),
                hint=self.hint,
                description=self.description,
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
_CFE_HOME = "https://www.cboe.com/us/futures/market_statistics/historical_data/"
_NO_CFE_MONTHS = ("2004-12", "2005-04", "2005-07", "2005-09")   # early CFE listed only some serial months

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
               vx_normalizer, "CFE VX futures daily settlements, one file per monthly contract", _CFE_HOME,
               per_contract=True, start="2014-01"),
        Source("vx_cfe", "cboe_cfe", "{base}/CFE_{code}_VX.csv", "vx_futures/VX_{expiry:%Y-%m}.csv",
               vx_archive_normalizer, "CFE VX futures settlement archive, one file per monthly contract",
               _CFE_HOME, per_contract=True, start="2004-05", end="2013-12", unlisted_months=_NO_CFE_MONTHS),
        Source("dtb3", "fred", "{base}?id=DTB3", "rates/dtb3_daily.csv", fred_normalizer("DTB3"),
               "FRED DTB3, 3-month T-bill secondary market rate (discount basis, %)",
               "https://fred.stlouisfed.org/series/DTB3"),
        Source("dff", "fred", "{base}?id=DFF", "rates/dff_daily.csv", fred_normalizer("DFF"),
               "FRED DFF, effective federal funds rate (%), daily incl. weekends",
               "https://fred.stlouisfed.org/series/DFF"),
        Source("spx", "cboe_index", "{base}/SPX_History.csv", "spx_daily.csv", cboe_spx_normalizer,
               "S&P 500 index (SPX), Cboe's daily closes", _CBOE_HOME),
    ]
}


def _yahoo_history(symbol: str) -> Callable[[float], str]:
    """Yahoo's full daily history of ``symbol`` through yfinance, as CSV text."""

    def fetch(timeout: float) -> str:
        import yfinance

        # yfinance logs its own failures; the one error sentence of the fetch says what went wrong
        logging.getLogger("yfinance").setLevel(logging.CRITICAL)
        frame = yfinance.Ticker(symbol).history(period="max", interval="1d", auto_adjust=False, actions=False,
                                                timeout=timeout, raise_errors=True)
        if frame is None or frame.empty:
            raise RuntimeError(f"Yahoo returned no rows for {symbol}")
        return yahoo_csv(frame)

    return fetch


SPX_PROVIDERS = ("auto", "yahoo", "cboe", "stooq")
_STOOQ_SPX = Source(
    "spx", "stooq", "{base}?s=^spx&i=d", "spx_daily.csv", stooq_normalizer,
    "S&P 500 index (^SPX) daily OHLC + Stooq volume", "https://stooq.com/q/d/?s=^spx",
    hint="Stooq has answered scripts with an HTML page asking for an API key since 2026; "
         "pass the key with --base-url-override 'spx=https://stooq.com/q/d/l/?<key param>', or use "
         "--spx-source yahoo or cboe (docs/fetch.md)")
_YAHOO_SPX = Source(
    "spx", "yahoo", "yfinance:^GSPC", "spx_daily.csv", stooq_normalizer,
    "S&P 500 index (^GSPC) daily OHLC from Yahoo through yfinance", "https://finance.yahoo.com/quote/%5EGSPC",
    fetch=_yahoo_history("^GSPC"))


def _yfinance_installed() -> bool:
    return importlib.util.find_spec("yfinance") is not None


def spx_source(provider: str = "auto", overrides: Mapping[str, str] | None = None,
               env: Mapping[str, str] | None = None) -> Source:
    """The SPX provider: ``stooq`` (a key passed as an override), ``yahoo`` (yfinance), ``cboe``
    (closes only). ``auto`` takes Stooq when an override names ``spx`` or ``stooq``, else Yahoo when
    yfinance is installed, else Cboe, with a notice naming the way to daily bars."""
    if provider not in SPX_PROVIDERS:
        raise KeyError(f"unknown SPX provider {provider!r}; known: {', '.join(SPX_PROVIDERS)}")
    if provider == "auto":
        env = os.environ if env is None else env
        named = set(overrides or {}) | set(parse_base_overrides(env.get(ENV_BASE)))
        if named & {"spx", "stooq"}:
            provider = "stooq"
        elif _yfinance_installed():
            provider = "yahoo"
        else:
            return replace(CATALOGUE["spx"], notice=(
                "spx_daily.csv: Stooq needs an API key and yfinance is not installed, so SPX comes from "
                "Cboe's close-only history (the replay then uses the prior close as each day's open); "
                "`pip install 'alvh[fetch]'` gives Yahoo's daily bars (docs/fetch.md)"))
    return {"stooq": _STOOQ_SPX, "yahoo": _YAHOO_SPX, "cboe": CATALOGUE["spx"]}[provider]


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
