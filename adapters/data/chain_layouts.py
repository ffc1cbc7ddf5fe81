"""Readers for every option-quote layout in shared/data other than the cboe.com 2021+ download (chains.py).

SOURCES.md section 10 documents each layout; the letters are its names. Every reader returns ChainSnapshots built
by ``chains.build_snapshot`` (same checks, file and line in every error):

* A  cboe.com ``quotedata.dat`` (2019-20): SPX/SPXW, SPY, VIX/VIXW; the 2019-05-17 workbook conversion has 1,103
     Excel-mangled expiries (serial numbers with day and month swapped): each is checked to be exactly that
     damage of the OCC symbol's expiry and the symbol's expiry is used; anything else is an error.
* C  Cboe 2018 quote table: expiry and strike only inside the description ``2018 Oct 19 1000.00 (SPX1819J1000)``
     (month letters A-L calls, M-X puts); a blank bid or ask (a single space) is no quote on that side, read as 0.
* D  DataShop Option EOD Summary (2004): 14 legacy roots of the one AM-settled SPX product, all read as root SPX;
     end-of-day bid/ask; Saturday expiration dates -> the Friday whose opening print settles them.
* E  DataShop Option Intervals with calcs (VIX, 2021-04-26): one snapshot per time stamp; the file's
     ``implied_underlying_price`` (the forward of each expiry) is kept in ``forward``.
* G  Gatheral implied-vol tables (converted): vols, not prices: ``iv_bid``/``iv_ask``, ``forward`` = Fwd, the
     call mid as ``mid``; no roots in the file (VIX: the standard monthly expiry is VIX, others VIXW; SPX: PM).
* R  ifrogs R extract (2010-09-17): maturities in years -> Saturday expirations -> Friday settlement.
* V  vendor end-of-day daily file (SPXW, Jan-Feb 2018): one snapshot per quote date.
"""
from __future__ import annotations

import io
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from .chains import (
    ChainSnapshot,
    build_snapshot,
    check_name_date,
    first_bad,
    last_session_on_or_before,
    load_chain,
    numbers,
    occ_symbol,
    parse_occ,
    read_side_by_side,
    split_sides,
)
from .errors import DataError

OPTION_DIRS = ("spx_option_chains", "spy_option_chains", "vix_option_chains")
_A_HEADER = ["Expiration Date", "Calls", "Last Sale", "Net", "Bid", "Ask", "Vol", "IV", "Delta", "Gamma", "Open Int",
             "Strike", "Puts", "Last Sale", "Net", "Bid", "Ask", "Vol", "IV", "Delta", "Gamma", "Open Int"]
_C_HEADER = ["Calls", "Last Sale", "Net", "Bid", "Ask", "Vol", "Open Int", "Puts", "Last Sale", "Net", "Bid", "Ask",
             "Vol", "Open Int"]
_STAMP_RE = re.compile(r"^([A-Z][a-z]{2} \d{2} \d{4}) @ (\d{1,2}:\d{2}) ET")
_C_DESC_RE = (r"^(?P<y>\d{4}) (?P<mon>[A-Z][a-z]{2}) (?P<d>\d{1,2}) (?P<k>\d+(?:\.\d+)?) "
              r"\((?P<root>[A-Z]+?)(?P<yy>\d{2})(?P<dd>\d{2})(?P<m>[A-X])(?P<ks>\d+(?:\.\d+)?)\)$")
_EXCEL_EPOCH = pd.Timestamp("1899-12-30")


def _underlying_of(label: str) -> str:
    for u in ("SPX", "SPY", "VIX"):
        if u in label.upper():
            return u
    raise ValueError(label)


def _text(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(path.name, None, f"file not found (expected at {path})")
    return path.read_text(encoding="utf-8-sig", errors="strict").splitlines()


def _stamp(name: str, line: str, lineno: int) -> pd.Timestamp:
    m = _STAMP_RE.match(line.strip())
    if not m:
        raise DataError(name, lineno, f"cannot read the download time ('Mon DD YYYY @ HH:MM ET') from {line[:40]!r}")
    return pd.to_datetime(f"{m.group(1)} {m.group(2)}", format="%b %d %Y %H:%M")


def _head_last(name: str, line: str) -> tuple[str, float]:
    parts = [p.strip() for p in line.split(",")]
    try:
        return _underlying_of(parts[0]), round(float(parts[1]), 2)
    except (ValueError, IndexError):
        raise DataError(name, 1, f"line 1 should be '<underlying name>,<last>,<change>', got {line[:60]!r}") from None


def _quote_table_head(name: str, lines: list[str], header: list[str], what: str) -> tuple[str, float, pd.Timestamp, pd.Timestamp]:
    """Layouts A and C: line 1 '<underlying name>,<last>,...', line 2 the download time, line 3 the column header.
    Returns (underlying, last, download time, trade date) after checking each and the file name's date."""
    if len(lines) < 4:
        raise DataError(name, None, f"fewer than 4 lines; not a {what}")
    underlying, last = _head_last(name, lines[0])
    stamp = _stamp(name, lines[1], 2)
    hdr = [h.strip() for h in lines[2].split(",")]
    if hdr != header:
        raise DataError(name, 3, f"unexpected column layout {hdr}")
    trade_date = last_session_on_or_before(stamp.normalize())
    check_name_date(name, 2, trade_date, f"download time {stamp:%Y-%m-%d %H:%M}")
    return underlying, last, stamp, trade_date


def _session_notes(name: str, stamp: pd.Timestamp, trade_date: pd.Timestamp) -> list[str]:
    if stamp.normalize() != trade_date or stamp.hour < 16:
        return [(f"{name}: downloaded {stamp:%a %Y-%m-%d %H:%M} ET, read as the quotes of {trade_date.date()}"
                 f"{' (before the open: prior-close or early GTH quotes)' if stamp.hour < 10 else ''}")]
    return []


# ---- A: quotedata.dat ----------------------------------------------------------------------------------------
def load_layout_a(path: Path) -> ChainSnapshot:
    name = path.name
    lines = _text(path)
    underlying, last, stamp, trade_date = _quote_table_head(name, lines, _A_HEADER, "Cboe quotedata file")
    raw, file_line = read_side_by_side(name, lines, 2)
    exp_txt = raw["expiry"].str.strip()
    expiry = pd.to_datetime(exp_txt, format="%m/%d/%Y", errors="coerce")
    strike = numbers(name, file_line, raw["strike"], "strike")
    notes = _session_notes(name, stamp, trade_date)
    serial = exp_txt.str.fullmatch(r"\d{5}")
    if serial.any():
        # Excel read MM/DD/YYYY as DD/MM/YYYY where that made a valid date and stored the serial number: undo the
        # swap and require it to reproduce the OCC symbol's expiry on every such row.
        as_date = _EXCEL_EPOCH + pd.to_timedelta(pd.to_numeric(exp_txt.where(serial)), unit="D")
        swapped = pd.to_datetime({"year": as_date.dt.year, "month": as_date.dt.day, "day": as_date.dt.month}, errors="coerce")
        sym = parse_occ(name, file_line, raw["c_sym"])
        ok = serial.to_numpy() & (swapped.to_numpy() == sym["expiry"].to_numpy())
        first_bad(name, file_line, serial.to_numpy() & ~ok,
                  lambda i: f"expiration {exp_txt.iloc[i]!r} is an Excel serial date that is not the day/month swap of "
                            f"the symbol's expiry {sym['expiry'].iloc[i]:%Y-%m-%d}")
        expiry = expiry.where(~serial, sym["expiry"])
        notes.append(f"{name}: {int(serial.sum())} rows had the expiry stored as an Excel serial number with day and "
                     "month swapped (workbook damage, SOURCES.md section 10); the OCC symbol's expiry is used")
    first_bad(name, file_line, expiry.isna(), lambda i: f"expiration date {exp_txt.iloc[i]!r} is invalid")
    rows = split_sides(name, raw, file_line, expiry, strike)
    same_day = int((rows["expiry"] == trade_date).sum())
    if same_day:
        notes.append(f"{name}: {same_day} quotes expire on the quote date itself")
    return build_snapshot(name, path, underlying, "A", trade_date, last, rows,
                          snapshot_time=stamp.tz_localize("America/New_York"), notes=notes)


# ---- C: Cboe 2018 quote table ---------------------------------------------------------------------------------
def _c_side(name: str, raw: pd.DataFrame, lines: np.ndarray, cols: list[str], right: str) -> pd.DataFrame:
    desc = raw[cols[0]].astype(str).str.strip()
    m = desc.str.extract(_C_DESC_RE)
    first_bad(name, lines, m["y"].isna(), lambda i: f"{desc.iloc[i]!r} is not a 'YYYY Mon DD strike (SYMBOL)' description")
    expiry = pd.to_datetime(m["y"] + " " + m["mon"] + " " + m["d"], format="%Y %b %d", errors="coerce")
    letter = m["m"].map(ord) - ord("A")
    is_put = letter >= 12
    month = letter % 12 + 1
    k = m["k"].astype(float).to_numpy()
    checks = (
        ("expiry date", expiry.isna().to_numpy()),
        ("symbol year/day/month", ((m["yy"].astype(int) != expiry.dt.year % 100) | (m["dd"].astype(int) != expiry.dt.day)
                                   | (month != expiry.dt.month)).to_numpy()),
        ("right (month letter)", (is_put != (right == "P")).to_numpy()),
        ("strike", np.abs(m["ks"].astype(float).to_numpy() - k) > 1e-6),
    )
    for what, bad in checks:
        first_bad(name, lines, bad, lambda i, what=what: f"{desc.iloc[i]!r}: the symbol disagrees with the description's {what}")
    who = "call" if right == "C" else "put"
    bid = numbers(name, lines, raw[cols[3]], f"{who} bid", blank_as=0.0)
    ask = numbers(name, lines, raw[cols[4]], f"{who} ask", blank_as=0.0)
    vol = numbers(name, lines, raw[cols[5]], f"{who} volume")
    oi = numbers(name, lines, raw[cols[6]], f"{who} open interest")
    lastp = pd.to_numeric(raw[cols[1]].astype(str).str.strip(), errors="coerce").to_numpy("float64")
    roots = m["root"].to_numpy()
    return pd.DataFrame({
        "expiry": expiry.to_numpy(), "root": roots, "strike": k, "right": right, "bid": bid, "ask": ask,
        "volume": vol, "open_interest": oi, "iv_vendor": np.nan, "delta_vendor": np.nan, "gamma_vendor": np.nan,
        "last": lastp, "symbol": [occ_symbol(r, e, right, s) for r, e, s in zip(roots, expiry, k)], "_line": lines})


def load_layout_c(path: Path) -> ChainSnapshot:
    name = path.name
    lines = _text(path)
    underlying, last, stamp, trade_date = _quote_table_head(name, lines, _C_HEADER, "Cboe 2018 quote table")
    cols = [f"c{i}" for i in range(14)]
    raw = pd.read_csv(io.StringIO("\n".join(lines[3:])), header=None, names=cols, dtype=str, keep_default_na=False,
                      skip_blank_lines=False)
    file_line = np.arange(4, 4 + len(raw))
    keep = (raw.apply(lambda c: c.str.strip()) != "").any(axis=1).to_numpy()
    raw, file_line = raw[keep].reset_index(drop=True), file_line[keep]
    blank_bids = int(sum((raw[c] == " ").sum() for c in ("c3", "c10")))
    blank_asks = int(sum((raw[c] == " ").sum() for c in ("c4", "c11")))
    rows = pd.concat([_c_side(name, raw, file_line, cols[:7], "C"), _c_side(name, raw, file_line, cols[7:], "P")],
                     ignore_index=True)
    notes = _session_notes(name, stamp, trade_date)
    if blank_bids:
        notes.append(f"{name}: {blank_bids} blank bids and {blank_asks} blank asks (a single space in the file) read "
                     "as no quote on that side (0)")
    settled = int(((rows["expiry"] == trade_date) & (rows["root"] == "SPX") & (rows["ask"] == 0)).sum())
    if settled:
        notes.append(f"{name}: {settled} AM-settled SPX quotes of the quote date are 0/0 (settled at that morning's open)")
    return build_snapshot(name, path, underlying, "C", trade_date, last, rows,
                          snapshot_time=stamp.tz_localize("America/New_York"), notes=notes)


# ---- D / E: Cboe DataShop ----------------------------------------------------------------------------------------
_D_COLS = ["underlying_symbol", "quote_date", "root", "expiration", "strike", "option_type", "open", "high", "low", "close", "trade_volume", "bid_size_1545", "bid_1545", "ask_size_1545", "ask_1545", "underlying_bid_1545", "underlying_ask_1545", "bid_size_eod", "bid_eod", "ask_size_eod", "ask_eod", "underlying_bid_eod", "underlying_ask_eod", "vwap", "open_interest", "delivery_code"]
_E_COLS = ["underlying_symbol", "quote_datetime", "root", "expiration", "strike", "option_type", "open", "high", "low", "close", "trade_volume", "bid_size", "bid", "ask_size", "ask", "underlying_bid", "underlying_ask", "implied_underlying_price", "active_underlying_price", "implied_volatility", "delta", "gamma", "theta", "vega", "rho", "open_interest"]


def _read_table(name: str, path: Path, columns: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    raw.columns = [c.strip() for c in raw.columns]
    if list(raw.columns) != columns:
        raise DataError(name, 1, f"unexpected column layout {list(raw.columns)}")
    return raw, np.arange(2, 2 + len(raw))


def _vendor_fields(raw: pd.DataFrame, sel, iv: str, delta: str, gamma: str, last: str) -> dict[str, np.ndarray]:
    """The file's own IV, delta, gamma and last trade for the selected rows (informational: never used to price)."""
    col = lambda c: pd.to_numeric(raw.loc[sel, c], errors="coerce").to_numpy()
    return {"iv_vendor": col(iv), "delta_vendor": col(delta), "gamma_vendor": col(gamma), "last": col(last)}


def _saturday_to_friday(expiry: pd.Series) -> tuple[pd.Series, int]:
    """Before 2015 standard SPX options carried a Saturday expiration date; they settled on the Friday's SOQ, which
    is the engine's expiry date for AM series."""
    sat = expiry.dt.day_of_week == 5
    return expiry.where(~sat, expiry - pd.Timedelta(days=1)), int(sat.sum())


def load_layout_d(path: Path) -> list[ChainSnapshot]:
    name = path.name
    raw, lines = _read_table(name, path, _D_COLS)
    qd = pd.to_datetime(raw["quote_date"], format="%Y-%m-%d", errors="coerce")
    first_bad(name, lines, qd.isna(), lambda i: f"quote_date {raw['quote_date'].iloc[i]!r} is invalid")
    first_bad(name, lines, ~raw["underlying_symbol"].isin(["^SPX"]), lambda i: f"underlying {raw['underlying_symbol'].iloc[i]!r} is not ^SPX")
    expiry = pd.to_datetime(raw["expiration"], format="%Y-%m-%d", errors="coerce")
    first_bad(name, lines, expiry.isna(), lambda i: f"expiration {raw['expiration'].iloc[i]!r} is invalid")
    expiry, n_sat = _saturday_to_friday(expiry)
    right = raw["option_type"].str.upper()
    first_bad(name, lines, ~right.isin(["C", "P"]), lambda i: f"option_type {raw['option_type'].iloc[i]!r} is not c/p")
    strike = numbers(name, lines, raw["strike"], "strike")
    und = (numbers(name, lines, raw["underlying_bid_eod"], "underlying_bid_eod")
           + numbers(name, lines, raw["underlying_ask_eod"], "underlying_ask_eod")) / 2.0
    out = []
    for day in sorted(qd.unique()):
        sel = (qd == day).to_numpy()
        legacy = raw.loc[sel, "root"].to_numpy()
        rows = pd.DataFrame({
            "expiry": expiry[sel].to_numpy(), "root": "SPX", "strike": strike[sel], "right": right[sel].to_numpy(),
            "bid": numbers(name, lines[sel], raw.loc[sel, "bid_eod"], "bid_eod"),
            "ask": numbers(name, lines[sel], raw.loc[sel, "ask_eod"], "ask_eod"),
            "volume": numbers(name, lines[sel], raw.loc[sel, "trade_volume"], "trade_volume"),
            "open_interest": numbers(name, lines[sel], raw.loc[sel, "open_interest"], "open_interest"),
            "iv_vendor": np.nan, "delta_vendor": np.nan, "gamma_vendor": np.nan,
            "last": pd.to_numeric(raw.loc[sel, "close"], errors="coerce").to_numpy(),
            "symbol": [occ_symbol(r, e, c, k) for r, e, c, k in zip(legacy, expiry[sel], right[sel], strike[sel])],
            "_line": lines[sel]})
        td = pd.Timestamp(day)
        check_name_date(name, int(lines[sel][0]), td, "quote_date")
        notes = [(f"{name}: {len(set(legacy))} legacy roots ({', '.join(sorted(set(legacy)))}) of the AM-settled SPX "
                  "product read as root SPX")]
        if n_sat:
            notes.append(f"{name}: {n_sat} Saturday expiration dates read as the Friday whose opening print settles them")
        u = und[sel]
        first_bad(name, lines[sel], np.abs(u - u[0]) > 1e-6, lambda i: "underlying_bid/ask_eod differ within one quote date")
        out.append(build_snapshot(name, path, "SPX", "D", td, float(u[0]), rows, notes=notes,
                                  snapshot_time=pd.Timestamp(td.date()).replace(hour=16, minute=15).tz_localize("America/New_York")))
    return out


def load_layout_e(path: Path) -> list[ChainSnapshot]:
    name = path.name
    raw, lines = _read_table(name, path, _E_COLS)
    ts = pd.to_datetime(raw["quote_datetime"], format="%Y-%m-%d %H:%M:%S", errors="coerce")
    first_bad(name, lines, ts.isna(), lambda i: f"quote_datetime {raw['quote_datetime'].iloc[i]!r} is invalid")
    under = raw["underlying_symbol"].iloc[0]
    first_bad(name, lines, raw["underlying_symbol"] != under, lambda i: "more than one underlying_symbol in the file")
    try:
        underlying = _underlying_of(under)
    except ValueError:
        raise DataError(name, 2, f"underlying {under!r} is not SPX, SPY or VIX") from None
    expiry = pd.to_datetime(raw["expiration"], format="%Y-%m-%d", errors="coerce")
    first_bad(name, lines, expiry.isna(), lambda i: f"expiration {raw['expiration'].iloc[i]!r} is invalid")
    right = raw["option_type"].str.upper()
    first_bad(name, lines, ~right.isin(["C", "P"]), lambda i: f"option_type {raw['option_type'].iloc[i]!r} is not C/P")
    strike = numbers(name, lines, raw["strike"], "strike")
    num = {c: numbers(name, lines, raw[c], c) for c in ("bid", "ask", "trade_volume", "open_interest",
                                                        "underlying_bid", "underlying_ask", "implied_underlying_price")}
    out = []
    for stamp in sorted(ts.unique()):
        sel = (ts == stamp).to_numpy()
        rows = pd.DataFrame({
            "expiry": expiry[sel].to_numpy(), "root": raw.loc[sel, "root"].to_numpy(), "strike": strike[sel],
            "right": right[sel].to_numpy(), "bid": num["bid"][sel], "ask": num["ask"][sel],
            "volume": num["trade_volume"][sel], "open_interest": num["open_interest"][sel],
            **_vendor_fields(raw, sel, "implied_volatility", "delta", "gamma", "close"),
            "symbol": [occ_symbol(r, e, c, k) for r, e, c, k in
                       zip(raw.loc[sel, "root"], expiry[sel], right[sel], strike[sel])],
            "forward": np.where(num["implied_underlying_price"][sel] > 0, num["implied_underlying_price"][sel], np.nan),
            "_line": lines[sel]})
        st = pd.Timestamp(stamp)
        td = last_session_on_or_before(st.normalize())
        check_name_date(name, int(lines[sel][0]), td, "quote_datetime")
        spot = (num["underlying_bid"][sel][0] + num["underlying_ask"][sel][0]) / 2.0
        notes = [(f"{name}: underlying_bid/ask is spot {underlying} (the 'last' here), not the options' underlying; "
                  "the forward column holds implied_underlying_price")] if underlying == "VIX" else []
        out.append(build_snapshot(name, path, underlying, "E", td, spot, rows, notes=notes,
                                  snapshot_time=st.tz_localize("America/New_York")))
    return out


# ---- G: Gatheral implied-vol tables --------------------------------------------------------------------------------
def load_layout_g(path: Path) -> ChainSnapshot:
    from engine.calendar import vix_expiry

    name = path.name
    raw, lines = _read_table(name, path, ["Expiry", "Texp", "Strike", "Bid", "Ask", "Fwd", "CallMid"])
    nd = re.search(r"(\d{4}-\d{2}-\d{2})", name)
    if not nd:
        raise DataError(name, None, "the quote date is not in the file, so the file name must carry it (YYYY-MM-DD)")
    td = pd.Timestamp(nd.group(1))
    underlying = _underlying_of(name.split("_")[0])
    expiry = pd.to_datetime(raw["Expiry"], format="%Y%m%d", errors="coerce")
    first_bad(name, lines, expiry.isna(), lambda i: f"Expiry {raw['Expiry'].iloc[i]!r} is invalid")
    texp = numbers(name, lines, raw["Texp"], "Texp")
    first_bad(name, lines, np.abs(texp * 365.25 - (expiry - td).dt.days.to_numpy()) > 1e-6,
              lambda i: f"Texp {texp[i]:.6f} is not (Expiry - {td.date()}) / 365.25: the quote date is wrong")
    strike = numbers(name, lines, raw["Strike"], "Strike")
    fwd = numbers(name, lines, raw["Fwd"], "Fwd")
    ivb = pd.to_numeric(raw["Bid"], errors="coerce").to_numpy()
    iva = numbers(name, lines, raw["Ask"], "Ask (implied vol)")
    first_bad(name, lines, ivb < 0, lambda i: f"Bid (implied vol) {raw['Bid'].iloc[i]!r} is negative")
    mid = pd.to_numeric(raw["CallMid"], errors="coerce").to_numpy()
    notes = [f"{name}: implied vols, not prices (iv_bid/iv_ask); {int(np.isnan(ivb).sum())} rows without a bid vol"]
    if underlying == "VIX":
        std = np.array([e == vix_expiry(e.year, e.month) for e in expiry])
        root = np.where(std, "VIX", "VIXW")
        notes.append(f"{name}: no roots in the file: the standard monthly VIX expiries read as VIX, the rest as VIXW")
        odd = sorted({f"{e:%Y-%m-%d}" for e in expiry[expiry.dt.day_of_week != 2]})
        if odd:
            notes.append(f"{name}: non-Wednesday expiry label(s) {', '.join(odd)} kept as labelled (Texp follows them)")
    else:
        root = np.full(len(raw), "SPXW")
        notes.append(f"{name}: no roots in the file: every expiry read as PM-settled (SPXW)")
    rows = pd.DataFrame({
        "expiry": expiry.to_numpy(), "root": root, "strike": strike, "right": "C", "bid": np.nan, "ask": np.nan,
        "volume": 0, "open_interest": 0, "iv_vendor": np.nan, "delta_vendor": np.nan, "gamma_vendor": np.nan,
        "last": np.nan, "symbol": [occ_symbol(r, e, "C", k) for r, e, k in zip(root, expiry, strike)],
        "forward": fwd, "iv_bid": ivb, "iv_ask": iva, "mid": mid, "_line": lines})
    first = float(fwd[np.argmin(expiry.to_numpy())])
    notes.append(f"{name}: no spot in the file; 'last' is the nearest expiry's forward {first:.2f}")
    return build_snapshot(name, path, underlying, "G", td, first, rows, notes=notes)


# ---- R: ifrogs extract ---------------------------------------------------------------------------------------------
def load_layout_r(path: Path) -> ChainSnapshot:
    name = path.name
    raw, lines = _read_table(name, path, ["quote_date", "term", "maturity_years", "riskfree", "type", "strike",
                                          "underlying", "bid", "ask"])
    qd = pd.to_datetime(raw["quote_date"], format="%Y-%m-%d", errors="coerce")
    first_bad(name, lines, qd.isna() | (qd != qd.iloc[0]), lambda i: f"quote_date {raw['quote_date'].iloc[i]!r} is invalid or differs")
    td = pd.Timestamp(qd.iloc[0])
    days = numbers(name, lines, raw["maturity_years"], "maturity_years") * 365.0
    first_bad(name, lines, np.abs(days - np.round(days)) > 1e-6, lambda i: f"maturity {days[i] / 365:.6f} y is not a whole number of days")
    expiry, n_sat = _saturday_to_friday(pd.Series(td + pd.to_timedelta(np.round(days), unit="D")))
    right = raw["type"].str.upper()
    first_bad(name, lines, ~right.isin(["C", "P"]), lambda i: f"type {raw['type'].iloc[i]!r} is not c/p")
    strike = numbers(name, lines, raw["strike"], "strike")
    und = numbers(name, lines, raw["underlying"], "underlying")
    first_bad(name, lines, und != und[0], lambda i: "underlying differs between rows")
    rows = pd.DataFrame({
        "expiry": expiry.to_numpy(), "root": "SPX", "strike": strike, "right": right.to_numpy(),
        "bid": numbers(name, lines, raw["bid"], "bid"), "ask": numbers(name, lines, raw["ask"], "ask"),
        "volume": 0, "open_interest": 0, "iv_vendor": np.nan, "delta_vendor": np.nan, "gamma_vendor": np.nan,
        "last": np.nan, "symbol": [occ_symbol("SPX", e, c, k) for e, c, k in zip(expiry, right, strike)], "_line": lines})
    notes = [(f"{name}: maturities given in years ({', '.join(sorted(raw['term'].unique()))}); {n_sat} Saturday "
              "expiration dates read as the Friday whose opening print settles them")]
    return build_snapshot(name, path, "SPX", "R", td, float(und[0]), rows, notes=notes)


# ---- V: vendor end-of-day daily file -------------------------------------------------------------------------------
_V_COLS = ["underlying", "underlying_last", "exchange", "optionroot", "optionext", "type", "expiration", "quotedate",
           "strike", "last", "bid", "ask", "volume", "openinterest", "impliedvol", "delta", "gamma", "theta", "vega",
           "optionalias"]


def load_layout_v(path: Path) -> list[ChainSnapshot]:
    name = path.name
    raw, lines = _read_table(name, path, _V_COLS)
    qd = pd.to_datetime(raw["quotedate"], format="%m/%d/%Y", errors="coerce")
    first_bad(name, lines, qd.isna(), lambda i: f"quotedate {raw['quotedate'].iloc[i]!r} is invalid")
    expiry = pd.to_datetime(raw["expiration"], format="%m/%d/%Y", errors="coerce")
    first_bad(name, lines, expiry.isna(), lambda i: f"expiration {raw['expiration'].iloc[i]!r} is invalid")
    right = raw["type"].map({"call": "C", "put": "P"})
    first_bad(name, lines, right.isna(), lambda i: f"type {raw['type'].iloc[i]!r} is not call/put")
    strike = numbers(name, lines, raw["strike"], "strike")
    occ = parse_occ(name, lines, raw["optionroot"])
    for what, bad in (("expiry", occ["expiry"].to_numpy() != expiry.to_numpy()),
                      ("right", occ["right"].to_numpy() != right.to_numpy()),
                      ("strike", np.abs(occ["strike"].to_numpy() - strike) > 1e-6)):
        first_bad(name, lines, bad, lambda i, what=what: f"option symbol {occ['symbol'].iloc[i]} disagrees with the row's {what}")
    last = numbers(name, lines, raw["underlying_last"], "underlying_last")
    num = {c: numbers(name, lines, raw[c], c) for c in ("bid", "ask", "volume", "openinterest")}
    out = []
    for day in sorted(qd.unique()):
        sel = (qd == day).to_numpy()
        u = last[sel]
        first_bad(name, lines[sel], u != u[0], lambda i: "underlying_last differs within one quote date")
        rows = pd.DataFrame({
            "expiry": expiry[sel].to_numpy(), "root": occ.loc[sel, "root"].to_numpy(), "strike": strike[sel],
            "right": right[sel].to_numpy(), "bid": num["bid"][sel], "ask": num["ask"][sel],
            "volume": num["volume"][sel], "open_interest": num["openinterest"][sel],
            **_vendor_fields(raw, sel, "impliedvol", "delta", "gamma", "last"),
            "symbol": occ.loc[sel, "symbol"].to_numpy(), "_line": lines[sel]})
        td = pd.Timestamp(day)
        out.append(build_snapshot(name, path, "SPX", "V", td, float(u[0]), rows,
                                  snapshot_time=td.replace(hour=16, minute=15).tz_localize("America/New_York")))
    return out


# ---- discovery ------------------------------------------------------------------------------------------------------
def detect_layout(path: Path) -> str:
    """Layout letter from the first lines of the file (SOURCES.md section 10)."""
    name = path.name
    head = _text(path)[:4]
    first = head[0] if head else ""
    if first.startswith("underlying,underlying_last"):
        return "V"
    if first.startswith("underlying_symbol,quote_date,"):
        return "D"
    if first.startswith("underlying_symbol,quote_datetime,"):
        return "E"
    if first.startswith("Expiry,Texp,Strike"):
        return "G"
    if first.startswith("quote_date,term,maturity_years"):
        return "R"
    if len(head) >= 3 and head[2].startswith("Calls,Last Sale"):
        return "C"
    if len(head) >= 3 and head[2].startswith("Expiration Date,Calls") and " @ " in head[1]:
        return "A"
    if any(ln.startswith("Expiration Date,") for ln in head) and any("Last:" in ln for ln in head):
        return "B"
    raise DataError(name, None, "not an option-quote file of any known layout (SOURCES.md section 10)")


_READERS = {"A": load_layout_a, "B": load_chain, "C": load_layout_c, "D": load_layout_d, "E": load_layout_e,
            "G": load_layout_g, "R": load_layout_r, "V": load_layout_v}


def load_option_file(path) -> list[ChainSnapshot]:
    """Every snapshot in one option file, whatever its layout (multi-day and intraday files hold several). Parsed
    once per process and file version (path, size, mtime): `alvh validate` and the tests read the same files from
    several analyses. The snapshots are shared: callers must not modify their quotes."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        raise DataError(path.name, None, f"file not found (expected at {path})") from None
    return _load_cached(path.resolve(), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def _load_cached(path: Path, size: int, mtime_ns: int) -> list[ChainSnapshot]:
    got = _READERS[detect_layout(path)](path)
    return got if isinstance(got, list) else [got]


def list_option_files(data_dir) -> list[Path]:
    """Every option-quote file under data_dir's option folders (spx_option_chains and its more/, spy_option_chains,
    vix_option_chains), sorted by path."""
    d = Path(data_dir)
    out = []
    for sub in OPTION_DIRS:
        base = d / sub
        if base.is_dir():
            out += [p for p in base.rglob("*") if p.is_file() and p.suffix in (".csv", ".dat")]
    return sorted(out)
