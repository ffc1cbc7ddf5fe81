"""One chain-snapshot type for every option-quote file in shared/data, and the Cboe delayed-quotes loader.

``ChainSnapshot`` holds the quotes of one underlying (SPX, SPY or VIX) at one instant, one row per option
(calls and puts stacked), whatever layout the file had. This module reads layout B, the cboe.com
"delayed quotes" download of 2021 on (``spx_quotedata.csv``)::

    line 1: (blank, or a row of commas)
    line 2: Standard & Poors 500 Index,Last: 4500.5298,Change:  23.0898
    line 3: "Date: February 5 2022, 8:09 PM EST",Bid: ...,Ask: ...,Size: 1*1,Volume: 0
    line 4: Expiration Date,Calls,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest,Strike,Puts,...
    line 5+: one row per (expiry, strike) with the call on the left and the put on the right

The other layouts (Cboe 2018 quote table and 2019-20 quotedata.dat, DataShop EOD and interval files, the vendor
daily file, the converted implied-vol and R tables) are in ``chain_layouts``; every reader ends in
``build_snapshot`` here, so every file is checked to the same standard: file and line in every error.

Root (SPX = monthly AM-settled, SPXW = PM-settled weeklies, SPY, VIX, VIXW) comes from the OCC symbol where the
file has one; the symbol's expiry, right and strike are checked against the row. ``trade_date`` is the last NYSE
session on or before the snapshot's date (several files were saved after the close, some at the weekend).
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import sources as S
from .errors import DataError

_HEADER = ["Expiration Date", "Calls", "Last Sale", "Net", "Bid", "Ask", "Volume", "IV", "Delta", "Gamma",
           "Open Interest", "Strike", "Puts", "Last Sale", "Net", "Bid", "Ask", "Volume", "IV", "Delta", "Gamma",
           "Open Interest"]
SIDE_NAMES = ["expiry", "c_sym", "c_last", "c_net", "c_bid", "c_ask", "c_vol", "c_iv", "c_delta", "c_gamma", "c_oi",
              "strike", "p_sym", "p_last", "p_net", "p_bid", "p_ask", "p_vol", "p_iv", "p_delta", "p_gamma", "p_oi"]
_LAST_RE = re.compile(r"Last:\s*([-+]?\d+(?:\.\d+)?)")
_DATE_RE = re.compile(
    r"Date:\s*([A-Za-z]+)\s+(\d{1,2}),?\s+(\d{4})(?:,|\s+at)?\s+(\d{1,2}):(\d{2})\s*([AP]M)\s*([A-Z]{2,4})?")
OCC_RE = r"^(?P<root>[A-Z]+)(?P<ymd>\d{6})(?P<right>[CP])(?P<strike>\d{8})$"
NAME_DATE_RE = re.compile(r"(\d{4}-\d{2}-\d{2})")

# forward: the underlying forward the file itself states for the expiry (DataShop implied_underlying_price, the
# Gatheral tables' Fwd), NaN otherwise. iv_bid / iv_ask: implied-vol quotes where the file holds vols, not prices.
QUOTE_COLUMNS = ("expiry", "root", "strike", "right", "bid", "ask", "mid", "volume", "open_interest",
                 "iv_vendor", "delta_vendor", "gamma_vendor", "last", "symbol", "forward", "iv_bid", "iv_ask")
ROOTS = {"SPX": ("SPX", "SPXW"), "SPY": ("SPY",), "VIX": ("VIX", "VIXW")}
EXERCISE = {"SPX": "European", "SPY": "American", "VIX": "European"}


@dataclass(frozen=True, eq=False)
class ChainSnapshot:
    trade_date: pd.Timestamp
    underlying_last: float
    quotes: pd.DataFrame  # QUOTE_COLUMNS, one row per option, sorted by (expiry, root, right, strike)
    snapshot_time: pd.Timestamp | None = None  # as printed in the file, tz-aware America/New_York
    path: Path | None = None
    notes: tuple[str, ...] = field(default=())
    underlying: str = "SPX"        # SPX, SPY or VIX (VIX options are quoted on the VX future of each expiry)
    layout: str = "B"              # SOURCES.md section 10 layout letter

    @property
    def exercise(self) -> str:
        """European for SPX and VIX; SPY options are American (docs/fidelity.md: used for smile shape only)."""
        return EXERCISE[self.underlying]

    def __repr__(self) -> str:
        return (f"ChainSnapshot({self.underlying} {self.trade_date.date()}, last={self.underlying_last}, "
                f"{len(self.quotes)} quotes, {self.quotes['expiry'].nunique()} expiries, layout {self.layout})")


def list_chains(data_dir) -> list[Path]:
    """The Cboe delayed-quotes snapshots at the top of ``data_dir/spx_option_chains`` (or in ``data_dir`` itself),
    sorted by name. ``chain_layouts.list_option_files`` lists every option file of every layout."""
    d = Path(data_dir)
    sub = d / S.CHAINS.directory
    base = sub if sub.is_dir() else d
    return sorted(base.glob(S.CHAINS.glob))


def last_session_on_or_before(day: pd.Timestamp) -> pd.Timestamp:
    from engine.calendar import trading_days

    td = trading_days(day - pd.Timedelta(days=10), day)
    if not len(td):
        raise ValueError(f"no NYSE session on or before {day.date()}")
    return pd.Timestamp(td[-1]).normalize()


def first_bad(name: str, lines: np.ndarray, bad, message) -> None:
    """Raise DataError at the first row flagged in `bad`; `message(i)` describes row i."""
    bad = np.asarray(bad, dtype=bool)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(name, int(lines[i]), message(i))


def numbers(name: str, lines: np.ndarray, raw: pd.Series, what: str, *, nonneg: bool = True,
            blank_as: float | None = None) -> np.ndarray:
    """Parse a text column to float; a blank cell becomes `blank_as` when given (a documented quirk), any other
    unparsable or (with `nonneg`) negative value is a DataError naming the row."""
    s = raw.astype(str).str.strip()
    x = pd.to_numeric(s, errors="coerce").to_numpy("float64")
    if blank_as is not None:
        x = np.where(s == "", blank_as, x)
    first_bad(name, lines, np.isnan(x) | ((x < 0) if nonneg else False),
              lambda i: f"{what} {raw.iloc[i]!r} is not a number{' >= 0' if nonneg else ''}")
    return x


def parse_occ(name: str, lines: np.ndarray, sym: pd.Series) -> pd.DataFrame:
    """root, expiry, right, strike from OCC symbols (ROOTyymmdd{C|P}<strike x 1000, 8 digits>)."""
    sym = sym.astype(str).str.strip()
    occ = sym.str.extract(OCC_RE)
    first_bad(name, lines, occ["root"].isna(), lambda i: f"{sym.iloc[i]!r} is not an OCC option symbol")
    return pd.DataFrame({"root": occ["root"].to_numpy(), "expiry": pd.to_datetime(occ["ymd"], format="%y%m%d").to_numpy(),
                         "right": occ["right"].to_numpy(), "strike": occ["strike"].astype("int64").to_numpy() / 1000.0,
                         "symbol": sym.to_numpy()})


def occ_symbol(root: str, expiry: pd.Timestamp, right: str, strike: float) -> str:
    return f"{root}{pd.Timestamp(expiry):%y%m%d}{right}{round(strike * 1000):08d}"


def split_sides(name: str, raw: pd.DataFrame, lines: np.ndarray, expiry: pd.Series, strike: np.ndarray,
                check_expiry: bool = True) -> pd.DataFrame:
    """Stack the call and put halves of a side-by-side row (layouts A and B) into one row per option, checking each
    OCC symbol against the row's expiry (unless the file's expiry column is known to be damaged), right and strike."""
    parts = []
    for side, right in (("c", "C"), ("p", "P")):
        occ = parse_occ(name, lines, raw[f"{side}_sym"])
        checks = [("right", occ["right"].to_numpy() != right), ("strike", np.abs(occ["strike"].to_numpy() - strike) > 1e-6)]
        if check_expiry:
            checks.insert(0, ("expiry", occ["expiry"].to_numpy() != expiry.to_numpy()))
        for what, bad in checks:
            first_bad(name, lines, bad, lambda i, what=what, occ=occ: f"OCC symbol {occ['symbol'].iloc[i]} disagrees with the row's {what}")
        who = "call" if side == "c" else "put"
        num = {k: numbers(name, lines, raw[f"{side}_{k}"], f"{who} {k}") for k in ("bid", "ask", "vol", "oi")}
        opt = {k: pd.to_numeric(raw[f"{side}_{k}"].astype(str).str.strip(), errors="coerce").to_numpy("float64")
               for k in ("last", "iv", "delta", "gamma")}
        parts.append(pd.DataFrame({
            "expiry": occ["expiry"].to_numpy(), "root": occ["root"].to_numpy(), "strike": strike, "right": right,
            "bid": num["bid"], "ask": num["ask"], "volume": num["vol"], "open_interest": num["oi"],
            "iv_vendor": opt["iv"], "delta_vendor": opt["delta"], "gamma_vendor": opt["gamma"], "last": opt["last"],
            "symbol": occ["symbol"].to_numpy(), "_line": lines}))
    return pd.concat(parts, ignore_index=True)


def build_snapshot(name: str, path: Path, underlying: str, layout: str, trade_date: pd.Timestamp, last: float,
                   rows: pd.DataFrame, *, snapshot_time: pd.Timestamp | None = None,
                   notes: list[str] | None = None) -> ChainSnapshot:
    """Common checks and shape for every layout. `rows` has QUOTE_COLUMNS except mid (forward/iv_* optional) and a
    `_line` column with the 1-based file line of each row."""
    notes = list(notes or [])
    if not (np.isfinite(last) and last > 0):
        raise DataError(name, None, f"underlying last is {last:g}; must be > 0")
    q = rows.copy()
    for col in ("forward", "iv_bid", "iv_ask"):
        if col not in q:
            q[col] = np.nan
    lines = q["_line"].to_numpy()
    first_bad(name, lines, ~np.isfinite(q["strike"].to_numpy(float)) | (q["strike"].to_numpy(float) <= 0),
              lambda i: f"strike {q['strike'].iloc[i]!r} is not a positive number")
    first_bad(name, lines, pd.isna(q["expiry"]).to_numpy(), lambda i: "expiration date is missing or invalid")
    roots = set(q["root"].unique())
    allowed = set(ROOTS[underlying])
    if not roots <= allowed:
        bad = ~q["root"].isin(allowed).to_numpy()
        first_bad(name, lines, bad, lambda i: f"root {q['root'].iloc[i]!r} is not one of {sorted(allowed)} ({underlying} options)")
    bid, ask = q["bid"].to_numpy(float), q["ask"].to_numpy(float)
    with np.errstate(invalid="ignore"):
        mid = np.where((ask > 0) & (ask >= bid), (bid + ask) / 2.0, np.nan)
    if "mid" in q:  # a file that quotes vols (layout G) states its mid price itself
        mid = np.where(np.isnan(bid) & np.isnan(ask), q["mid"].to_numpy(float), mid)
    q["mid"] = mid
    q["volume"] = q["volume"].fillna(0).astype("int64")
    q["open_interest"] = q["open_interest"].fillna(0).astype("int64")
    q["expiry"] = pd.to_datetime(q["expiry"]).astype("datetime64[ns]")
    dup = q.duplicated(["expiry", "root", "right", "strike"], keep="first").to_numpy()
    first_bad(name, lines, dup, lambda i: f"duplicate quote for {q['root'].iloc[i]} {q['expiry'].iloc[i].date()} "
                                          f"{q['strike'].iloc[i]:g} {q['right'].iloc[i]}")
    q = q.sort_values(["expiry", "root", "right", "strike"], kind="stable", ignore_index=True)
    crossed = int(((q["ask"] > 0) & (q["ask"] < q["bid"])).sum())
    if crossed:
        notes.append(f"{name}: {crossed} crossed quotes (ask < bid); mid is NaN for them")
    no_ask = int(((q["ask"] <= 0) & q["iv_ask"].isna()).sum())
    if no_ask:
        notes.append(f"{name}: {no_ask} quotes without an ask (ask = 0); mid is NaN for them")
    expired = int((q["expiry"] < trade_date).sum())
    if expired:
        notes.append(f"{name}: {expired} quotes expire before the trade date")
    return ChainSnapshot(trade_date=trade_date, underlying_last=float(last), quotes=q[list(QUOTE_COLUMNS)],
                         snapshot_time=snapshot_time, path=path, notes=tuple(notes), underlying=underlying, layout=layout)


def check_name_date(name: str, line: int | None, trade_date: pd.Timestamp, what: str) -> None:
    nd = NAME_DATE_RE.search(name)
    if nd and pd.Timestamp(nd.group(1)) != trade_date:
        raise DataError(name, line, f"{what} maps to trading day {trade_date.date()} but the file name says {nd.group(1)}")


def read_side_by_side(name: str, lines: list[str], header_i: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The data rows below a 22-column side-by-side header (layouts A and B), as text, with their file lines."""
    body = "\n".join(lines[header_i + 1:])
    try:
        raw = pd.read_csv(io.StringIO(body), header=None, names=SIDE_NAMES, usecols=range(22), dtype=str,
                          keep_default_na=False, skip_blank_lines=False)
    except (pd.errors.ParserError, ValueError) as exc:
        m2 = re.search(r"line (\d+)", str(exc))
        raise DataError(name, int(m2.group(1)) + header_i + 1 if m2 else None, f"malformed row ({exc})") from None
    file_line = np.arange(header_i + 2, header_i + 2 + len(raw))
    keep = (raw.apply(lambda c: c.str.strip()) != "").any(axis=1).to_numpy()
    return raw[keep].reset_index(drop=True), file_line[keep]


def load_chain(path) -> ChainSnapshot:
    """Layout B (cboe.com delayed quotes, 2021 on)."""
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise DataError(name, None, f"file not found (expected at {path})")
    lines = path.read_text(encoding="utf-8-sig", errors="strict").splitlines()

    header_i = next((i for i, ln in enumerate(lines[:20]) if ln.startswith("Expiration Date,")), None)
    if header_i is None:
        raise DataError(name, None, "no 'Expiration Date,...' header line in the first 20 lines; not a Cboe "
                                    "delayed-quotes chain file")
    head = lines[:header_i]
    last_i = next((i for i, ln in enumerate(head) if "Last:" in ln), None)
    if last_i is None:
        raise DataError(name, None, "no 'Last:' (underlying price) in the header lines")
    m = _LAST_RE.search(head[last_i])
    if not m:
        raise DataError(name, last_i + 1, "cannot read the underlying 'Last:' value")
    # Cboe prints a float32 rendering (4500.5298); the index is quoted to cents (4500.53).
    underlying = round(float(m.group(1)), 2)
    if not underlying > 0:
        raise DataError(name, last_i + 1, f"underlying last is {underlying:g}; must be > 0")
    date_i = next((i for i, ln in enumerate(head) if "Date:" in ln), None)
    if date_i is None:
        raise DataError(name, None, "no 'Date:' (snapshot time) in the header lines")
    m = _DATE_RE.search(head[date_i])
    if not m:
        raise DataError(name, date_i + 1, f"cannot read the snapshot date from {head[date_i]!r}")
    mon, day, year, hh, mm, ampm, _tz = m.groups()
    try:
        naive = pd.to_datetime(f"{mon} {day} {year} {hh}:{mm} {ampm}", format="%B %d %Y %I:%M %p")
    except ValueError:
        raise DataError(name, date_i + 1, f"cannot read the snapshot date from {head[date_i]!r}") from None
    trade_date = last_session_on_or_before(naive.normalize())
    check_name_date(name, date_i + 1, trade_date, f"snapshot {naive:%Y-%m-%d %H:%M}")

    hdr = [h.strip() for h in lines[header_i].split(",")]
    if hdr != _HEADER:
        raise DataError(name, header_i + 1, f"unexpected column layout {hdr}")
    raw, file_line = read_side_by_side(name, lines, header_i)
    expiry = pd.to_datetime(raw["expiry"].str.strip(), format="%a %b %d %Y", errors="coerce")
    first_bad(name, file_line, expiry.isna(), lambda i: f"expiration date {raw['expiry'].iloc[i]!r} is invalid")
    strike = numbers(name, file_line, raw["strike"], "strike")
    rows = split_sides(name, raw, file_line, expiry, strike)
    notes = []
    if naive.normalize() != trade_date or naive.hour < 16:
        notes.append(f"{name}: snapshot taken {naive:%a %Y-%m-%d %H:%M} ET, used as the close of {trade_date.date()}"
                     " (weekend/after-hours snapshots may carry GTH quotes)")
    return build_snapshot(name, path, "SPX", "B", trade_date, underlying, rows,
                          snapshot_time=naive.tz_localize("America/New_York"), notes=notes)
