"""Loader for Cboe "delayed quotes" SPX option-chain snapshots (``spx_quotedata.csv`` from cboe.com).

File layout (kept raw in shared/data/spx_option_chains)::

    line 1: (blank)
    line 2: Standard & Poors 500 Index,Last: 4500.5298,Change:  23.0898
    line 3: "Date: February 5 2022, 8:09 PM EST",Bid: ...,Ask: ...,Size: 1*1,Volume: 0
    line 4: Expiration Date,Calls,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest,Strike,Puts,Last Sale,...
    line 5+: one row per (expiry, strike) with the call on the left and the put on the right

``load_chain`` returns one row per option (calls and puts stacked). The root (SPX = monthly AM-settled,
SPXW = weeklies/PM-settled) comes from the OCC symbol; the symbol's expiry, right and strike are checked
against the row. ``trade_date`` is the last NYSE session on or before the snapshot's date (the files were
saved after the close, some at the weekend).
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
_NAMES = ["expiry", "c_sym", "c_last", "c_net", "c_bid", "c_ask", "c_vol", "c_iv", "c_delta", "c_gamma", "c_oi",
          "strike", "p_sym", "p_last", "p_net", "p_bid", "p_ask", "p_vol", "p_iv", "p_delta", "p_gamma", "p_oi"]
_LAST_RE = re.compile(r"Last:\s*([-+]?\d+(?:\.\d+)?)")
_DATE_RE = re.compile(
    r"Date:\s*([A-Za-z]+)\s+(\d{1,2}),?\s+(\d{4})(?:,|\s+at)?\s+(\d{1,2}):(\d{2})\s*([AP]M)\s*([A-Z]{2,4})?")
_OCC_RE = r"^(?P<root>[A-Z]+)(?P<ymd>\d{6})(?P<right>[CP])(?P<strike>\d{8})$"
_NAME_DATE_RE = re.compile(r"(\d{4}-\d{2}-\d{2})")

QUOTE_COLUMNS = ("expiry", "root", "strike", "right", "bid", "ask", "mid", "volume", "open_interest",
                 "iv_vendor", "delta_vendor", "gamma_vendor", "last", "symbol")


@dataclass(frozen=True, eq=False)
class ChainSnapshot:
    trade_date: pd.Timestamp
    underlying_last: float
    quotes: pd.DataFrame  # QUOTE_COLUMNS, one row per option, sorted by (expiry, root, right, strike)
    snapshot_time: pd.Timestamp | None = None  # as printed in the file, tz-aware America/New_York
    path: Path | None = None
    notes: tuple[str, ...] = field(default=())

    def __repr__(self) -> str:
        return (f"ChainSnapshot({self.trade_date.date()}, last={self.underlying_last}, {len(self.quotes)} quotes, "
                f"{self.quotes['expiry'].nunique()} expiries)")


def list_chains(data_dir) -> list[Path]:
    """Chain snapshot files under ``data_dir/spx_option_chains`` (or in ``data_dir`` itself), sorted by name."""
    d = Path(data_dir)
    sub = d / S.CHAINS.directory
    base = sub if sub.is_dir() else d
    return sorted(base.glob(S.CHAINS.glob))


def _last_session_on_or_before(day: pd.Timestamp) -> pd.Timestamp:
    from .validation import _trading_days

    td = _trading_days(day - pd.Timedelta(days=10), day)
    if not len(td):
        raise ValueError(f"no NYSE session on or before {day.date()}")
    return td[-1]


def load_chain(path) -> ChainSnapshot:
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise DataError(name, None, f"file not found (expected at {path})")
    text = path.read_text(encoding="utf-8-sig", errors="strict")
    lines = text.splitlines()

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
    snapshot = naive.tz_localize("America/New_York")
    trade_date = _last_session_on_or_before(naive.normalize())
    nd = _NAME_DATE_RE.search(name)
    if nd and pd.Timestamp(nd.group(1)) != trade_date:
        raise DataError(name, date_i + 1, f"snapshot {naive:%Y-%m-%d %H:%M} maps to trading day {trade_date.date()} "
                                          f"but the file name says {nd.group(1)}")

    hdr = [h.strip() for h in lines[header_i].split(",")]
    if hdr != _HEADER:
        raise DataError(name, header_i + 1, f"unexpected column layout {hdr}")
    body = "\n".join(lines[header_i + 1:])
    try:
        raw = pd.read_csv(io.StringIO(body), header=None, names=_NAMES, dtype=str, keep_default_na=False,
                          skip_blank_lines=True)
    except pd.errors.ParserError as exc:
        m2 = re.search(r"line (\d+)", str(exc))
        raise DataError(name, int(m2.group(1)) + header_i + 1 if m2 else None, f"malformed row ({exc})") from None
    first_line = header_i + 2  # 1-based line of the first data row
    file_line = np.arange(first_line, first_line + len(raw))

    expiry = pd.to_datetime(raw["expiry"].str.strip(), format="%a %b %d %Y", errors="coerce")
    strike = pd.to_numeric(raw["strike"].str.strip(), errors="coerce")
    for what, bad in (("expiration date", expiry.isna()), ("strike", strike.isna() | (strike <= 0))):
        if bad.any():
            i = int(np.nonzero(bad.to_numpy())[0][0])
            raise DataError(name, int(file_line[i]), f"{what} {raw.iloc[i][['expiry', 'strike']].tolist()} is invalid")

    parts = []
    for side, right in (("c", "C"), ("p", "P")):
        sym = raw[f"{side}_sym"].str.strip()
        occ = sym.str.extract(_OCC_RE)
        bad = occ["root"].isna()
        if bad.any():
            i = int(np.nonzero(bad.to_numpy())[0][0])
            raise DataError(name, int(file_line[i]), f"{sym.iloc[i]!r} is not an OCC option symbol")
        sym_exp = pd.to_datetime(occ["ymd"], format="%y%m%d")
        sym_strike = occ["strike"].astype("int64") / 1000.0
        for what, bad in (("expiry", sym_exp != expiry), ("right", occ["right"] != right),
                          ("strike", (sym_strike - strike).abs() > 1e-6)):
            if bad.any():
                i = int(np.nonzero(bad.to_numpy())[0][0])
                raise DataError(name, int(file_line[i]), f"OCC symbol {sym.iloc[i]} disagrees with the row's {what}")
        num = {k: pd.to_numeric(raw[f"{side}_{k}"].str.strip(), errors="coerce").to_numpy("float64")
               for k in ("last", "bid", "ask", "vol", "iv", "delta", "gamma", "oi")}
        for k in ("bid", "ask", "vol", "oi"):
            bad = np.isnan(num[k]) | (num[k] < 0)
            if bad.any():
                i = int(np.nonzero(bad)[0][0])
                raise DataError(name, int(file_line[i]), f"{'call' if side == 'c' else 'put'} {k} "
                                                         f"{raw[f'{side}_{k}'].iloc[i]!r} is not a number >= 0")
        bid, ask = num["bid"], num["ask"]
        with np.errstate(invalid="ignore"):
            mid = np.where((ask > 0) & (ask >= bid), (bid + ask) / 2.0, np.nan)
        parts.append(pd.DataFrame({
            "expiry": expiry.to_numpy().astype("datetime64[ns]"),
            "root": occ["root"].to_numpy(),
            "strike": strike.to_numpy("float64"),
            "right": right,
            "bid": bid, "ask": ask, "mid": mid,
            "volume": num["vol"].astype("int64"), "open_interest": num["oi"].astype("int64"),
            "iv_vendor": num["iv"], "delta_vendor": num["delta"], "gamma_vendor": num["gamma"],
            "last": num["last"],
            "symbol": sym.to_numpy(),
        }))
    quotes = pd.concat(parts, ignore_index=True)
    roots = set(quotes["root"].unique())
    if not roots <= {"SPX", "SPXW"}:
        raise DataError(name, None, f"unexpected option roots {sorted(roots - {'SPX', 'SPXW'})}; expected SPX/SPXW")
    quotes = quotes.sort_values(["expiry", "root", "right", "strike"], kind="stable", ignore_index=True)

    notes = []
    crossed = int(((quotes["ask"] > 0) & (quotes["ask"] < quotes["bid"])).sum())
    if crossed:
        notes.append(f"{name}: {crossed} crossed quotes (ask < bid); mid is NaN for them")
    no_ask = int((quotes["ask"] <= 0).sum())
    if no_ask:
        notes.append(f"{name}: {no_ask} quotes without an ask (ask = 0); mid is NaN for them")
    expired = int((quotes["expiry"] < trade_date).sum())
    if expired:
        notes.append(f"{name}: {expired} quotes expire before the trade date")
    if naive.normalize() != trade_date or naive.hour < 16:
        notes.append(f"{name}: snapshot taken {naive:%a %Y-%m-%d %H:%M} ET, used as the close of {trade_date.date()}"
                     " (weekend/after-hours snapshots may carry GTH quotes)")
    return ChainSnapshot(trade_date=trade_date, underlying_last=underlying, quotes=quotes, snapshot_time=snapshot,
                         path=path, notes=tuple(notes))
