"""The validated market panel: one daily frame on NYSE trading days, VX futures in long format,
event calendars, and the notes explaining every adjustment.

``load_panel`` validates every source file (``validation/``), assembles the panel and caches it as
Parquet (``cache.py``); the cache is reused only while the content fingerprint of the source files
matches.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import sources as S
from .errors import DataError
from .open_prints import usable_vx_opens

DAILY_COLUMNS: tuple[str, ...] = (
    "spx_open", "spx_high", "spx_low", "spx_close",
    "vix_open", "vix_high", "vix_low", "vix_close",
    "vix9d_open", "vix9d_close", "vix3m_open", "vix3m_close", "vix6m_open", "vix6m_close",
    "vvix_close", "skew_close",
    "rate_tbill", "dff",
    "vixy_close", "vixm_close", "vxx_close", "vxx_a_close", "uvxy_close", "svxy_close",
    # additions beyond the original brief (same conventions): newer VIX ETPs and CBOE regime indices
    "svix_close", "uvix_close", "cor1m_close", "dspx_close", "vixeq_close",
)
VX_COLUMNS: tuple[str, ...] = (
    "date", "expiry", "contract_month", "open", "high", "low", "close", "settle", "volume", "open_interest",
)


@dataclass(frozen=True, eq=False)
class MarketPanel:
    daily: pd.DataFrame
    vx: pd.DataFrame
    events: dict[str, pd.DatetimeIndex]
    notes: tuple[str, ...]
    fingerprint: str
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    def vx_expiries(self) -> np.ndarray:
        """The VX contracts' expiries, datetime64[D] sorted: the columns of vx_matrix() and of the VX cells."""
        hit = self._memo.get("vx_expiries")
        if hit is None:
            hit = self._memo["vx_expiries"] = np.unique(self.vx["expiry"].to_numpy().astype("datetime64[D]"))
            hit.setflags(write=False)
        return hit

    def _vx_cells(self, name: str, values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row in daily, column in the sorted expiries, value) of each finite ``values`` entry of the VX frame,
        ordered by row then column; of two rows for one (date, contract) the later wins, as in a dense fill.
        Computed once per panel: ~50k cells where a dense [n_dates, n_contracts] matrix holds 2.5M (2% filled)."""
        hit = self._memo.get(name)
        if hit is not None:
            return hit
        vx = self.vx
        v = np.asarray(values(vx), dtype="float64")
        r = self.daily.index.get_indexer(pd.DatetimeIndex(vx["date"]))
        c = np.searchsorted(self.vx_expiries(), vx["expiry"].to_numpy().astype("datetime64[D]"))
        order = np.lexsort((np.arange(len(r)), c, r))   # by row, column, then file order
        r, c, v = r[order], c[order], v[order]
        last = np.ones(len(r), dtype=bool)
        last[:-1] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
        keep = last & (r >= 0) & np.isfinite(v)
        out = (r[keep], c[keep], v[keep])
        for a in out:
            a.setflags(write=False)
        self._memo[name] = out
        return out

    def vx_settle_cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The finite VX settlements as (row, column, settle) cells of vx_matrix(), by row then column."""
        return self._vx_cells("vx_settle_cells", lambda vx: vx["settle"])

    def vx_open_cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The usable VX opening trades (see usable_vx_opens) as (row, column, open) cells of vx_matrix(), by row
        then column; none for a settle-only frame."""
        def opens(vx: pd.DataFrame) -> np.ndarray:
            if {"open", "high", "low", "volume"} <= set(vx.columns):
                return usable_vx_opens(vx)
            return np.full(len(vx), np.nan)
        return self._vx_cells("vx_open_cells", opens)

    def vx_matrix(self) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
        """(dates = daily.index, expiries datetime64[D] sorted, settle float64 [n_dates, n_contracts], NaN where
        the contract has no settlement that day). Computed once per panel; the replay reads vx_settle_cells."""
        hit = self._memo.get("vx_matrix")
        if hit is None:
            r, c, v = self.vx_settle_cells()
            settle = np.full((len(self.daily.index), len(self.vx_expiries())), np.nan, dtype="float64")
            settle[r, c] = v
            settle.setflags(write=False)
            hit = self._memo["vx_matrix"] = (self.daily.index, self.vx_expiries(), settle)
        return hit

    def slice(self, start=None, end=None) -> MarketPanel:
        """Rows with start <= date <= end (either may be None). Events and notes are kept whole
        (event calendars are published in advance)."""
        s = pd.Timestamp(start) if start is not None else None
        e = pd.Timestamp(end) if end is not None else None
        daily = self.daily.loc[s:e]
        d = self.vx["date"]
        m = np.ones(len(d), dtype=bool)
        if s is not None:
            m &= (d >= s).to_numpy()
        if e is not None:
            m &= (d <= e).to_numpy()
        vx = self.vx[m].reset_index(drop=True)
        return MarketPanel(daily=daily, vx=vx, events=dict(self.events), notes=self.notes,
                           fingerprint=self.fingerprint)

    def __repr__(self) -> str:
        idx = self.daily.index
        span = f"{idx[0].date()}..{idx[-1].date()}" if len(idx) else "empty"
        return (f"MarketPanel({span}, {len(idx)} days, {self.daily.shape[1]} columns, {len(self.vx)} VX rows, "
                f"{len(self.notes)} notes, fingerprint={self.fingerprint[:12]})")


def tbill_discount_to_cc(dtb3_percent: pd.Series | np.ndarray, days: int = S.TBILL_DAYS):
    """DTB3 discount yield (percent, 360-day basis) -> continuously compounded annual rate (decimal, 365-day).

    price = 1 - d * days / 360;  r = -ln(price) * 365 / days.
    """
    d = np.asarray(dtb3_percent, dtype="float64") / 100.0
    r = -np.log1p(-d * days / 360.0) * 365.0 / days
    return pd.Series(r, index=dtb3_percent.index) if isinstance(dtb3_percent, pd.Series) else r


# --------------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------------
def _extend(primary: pd.Series, extension: pd.Series) -> pd.Series:
    """primary, then extension strictly after primary's last date."""
    last = primary.last_valid_index()
    if last is None:
        return extension
    return pd.concat([primary.loc[:last], extension.loc[extension.index > last]])


def _empty_series(idx: pd.DatetimeIndex) -> pd.Series:
    return pd.Series(np.nan, index=idx, dtype="float64")


def build_panel(data_dir: Path | str, start: str | None, end: str | None, fingerprint: str) -> MarketPanel:
    from .validation import trading_days_between, validate_all

    v = validate_all(Path(data_dir), collect=False)
    ser = v.series  # optional files that are absent have no entry; their columns stay NaN
    notes: list[str] = list(v.sink.notes)
    warnings = list(v.sink.warnings)

    spx = ser["spx"].frame
    spx_all = spx
    if "spx_ext" in ser:
        spx_ext = ser["spx_ext"].frame
        ext_part = spx_ext.loc[spx_ext.index > spx.index[-1]]
        spx_all = pd.concat([spx, ext_part[spx.columns]])
        if len(ext_part):
            notes.append(f"SPX: {S.SPX_EXT.path} extends {S.SPX.path} from {ext_part.index[0].date()} to "
                         f"{ext_part.index[-1].date()} ({len(ext_part)} days)")

    first = pd.Timestamp(start) if start else pd.Timestamp(S.CALENDAR_START)
    last = pd.Timestamp(end) if end else spx_all.index[-1]
    idx = trading_days_between(first, last)
    if len(idx) == 0:
        raise DataError(str(data_dir), None, f"no NYSE trading days between start={start} and end={last.date()}")
    daily = pd.DataFrame(index=idx)

    for c in ("open", "high", "low", "close"):
        daily[f"spx_{c}"] = spx_all[c].reindex(idx)
    for spec in S.DAILY_SPECS:
        if spec.role != "panel" or spec.key in ("spx", "dtb3", "dff"):
            continue
        vs = ser.get(spec.key)
        for src, dst in spec.panel_columns:
            daily[dst] = vs.frame[src].reindex(idx) if vs is not None else np.nan

    # VIX3M before CBOE's history starts: VXV (same index) from Yahoo.
    if "vxv" in ser:
        vxv = ser["vxv"].frame
        back = vxv.loc[vxv.index < pd.Timestamp(S.VIX3M_BACKFILL_BEFORE)]
        if len(back):
            for c in ("open", "close"):
                col = daily[f"vix3m_{c}"]
                fill = back[c].reindex(idx)
                daily[f"vix3m_{c}"] = col.where(col.notna() | (idx >= pd.Timestamp(S.VIX3M_BACKFILL_BEFORE)), fill)
            notes.append(f"vix3m_open/close before {S.VIX3M_BACKFILL_BEFORE} back-filled from {S.VXV.path} "
                         f"(VXV is the same index; {back.index[0].date()}..{back.index[-1].date()}, {len(back)} days)")

    # Rates: DTB3 discount yield -> continuously compounded; DFF percent -> decimal.
    dtb3 = ser["dtb3"].frame["dtb3"]
    if "dtb3_ext" in ser:
        dtb3 = _extend(dtb3, ser["dtb3_ext"].frame["dtb3"])
        ext_days = int((dtb3.index > ser["dtb3"].frame.index[-1]).sum())
        if ext_days:
            notes.append(f"rate_tbill: {S.DTB3_EXT.path} extends {S.DTB3.path} after "
                         f"{ser['dtb3'].frame.index[-1].date()} ({ext_days} days)")
    daily["rate_tbill"] = tbill_discount_to_cc(dtb3.reindex(idx))
    notes.append("rate_tbill = -ln(1 - d*91/360)*365/91 with d = DTB3/100 (discount yield of a 91-day bill "
                 "converted to a continuously compounded annual rate)")
    daily["dff"] = ser["dff"].frame["dff"].reindex(idx) / 100.0 if "dff" in ser else _empty_series(idx)

    vvix_from = pd.Timestamp(S.VVIX.coverage_start)
    notes.append(f"vvix_close is NaN before {vvix_from.date()} (2006 VVIX values are unreliable, SOURCES.md section 4)")

    daily = daily[list(DAILY_COLUMNS)].astype("float64")
    daily.index.name = "date"

    vx = v.vx.frame
    vx = vx[(vx["date"] >= idx[0]) & (vx["date"] <= idx[-1])].reset_index(drop=True) if len(idx) else vx.iloc[:0]
    vx = vx[list(VX_COLUMNS)]

    events = _events(v.events, notes)
    notes += [f"WARNING {w}" for w in warnings]
    return MarketPanel(daily=daily, vx=vx, events=events, notes=tuple(notes), fingerprint=fingerprint)


def _events(ev: dict[str, pd.DatetimeIndex], notes: list[str]) -> dict[str, pd.DatetimeIndex]:
    """fomc / cpi from the two lists each (older list before the switch date); empty when absent."""
    none = pd.DatetimeIndex([], dtype="datetime64[ns]")

    def merge(old_key: str, new_key: str, switch: str) -> pd.DatetimeIndex:
        old = ev.get(old_key, none)
        return old[old < pd.Timestamp(switch)].union(ev.get(new_key, none))

    fomc = merge(S.FOMC_2000.key, S.FOMC_2015.key, S.FOMC_SWITCH)
    cpi = merge(S.CPI_FULLSACK.key, S.CPI_2015.key, S.CPI_SWITCH)
    notes.append(f"events['fomc']: {S.FOMC_2000.path} before {S.FOMC_SWITCH[:4]}, {S.FOMC_2015.path} from then "
                 f"({len(fomc)} dates; unscheduled meetings included; 2020-03-15 was a Sunday)")
    notes.append(f"events['cpi']: {S.CPI_FULLSACK.path} before {S.CPI_SWITCH[:4]}, {S.CPI_2015.path} from then "
                 f"({len(cpi)} dates; no CPI dates exist for 2011-02..2014)")
    return {"fomc": pd.DatetimeIndex(fomc, name="date"), "cpi": pd.DatetimeIndex(cpi, name="date")}


# --------------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------------
def load_panel(data_dir: Path | str, *, cache_dir: Path | None = None, start: str | None = "1990-01-01",
               end: str | None = None) -> MarketPanel:
    """Validate every file, build the panel, cache it as Parquet in cache_dir (default: $ALVH_CACHE_DIR or
    ~/.cache/alvh/panel); the cache is reused only while the source fingerprint matches. Raises DataError
    on the first hard error."""
    from . import cache

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(str(data_dir), None, "data directory does not exist: pass --data-dir, set ALVH_DATA_DIR, "
                                             "or run `alvh data fetch`")
    cdir = Path(cache_dir) if cache_dir is not None else cache.default_cache_dir()
    fp = cache.fingerprint(data_dir, cdir)
    key = cache.panel_key(fp, start, end)
    hit = cache.read_panel(cdir, key)
    if hit is not None:
        daily, vx, events, notes = hit
        return MarketPanel(daily=daily, vx=vx, events=events, notes=notes, fingerprint=fp)
    panel = build_panel(data_dir, start, end, fp)
    cache.write_panel(cdir, key, panel, data_dir)
    return panel


def resolve_data_dir(cli_value: str | None) -> Path:
    """--data-dir, then $ALVH_DATA_DIR, then the user cache (~/.cache/alvh/data, where `alvh data fetch` writes).

    An explicitly given directory (flag or environment variable) must hold the data; it is never silently
    replaced by a fallback."""
    hint = "pass --data-dir, set ALVH_DATA_DIR, or run `alvh data fetch` to fill ~/.cache/alvh/data"
    for origin, value in (("--data-dir", cli_value), ("ALVH_DATA_DIR", os.environ.get("ALVH_DATA_DIR"))):
        if value:
            p = Path(value).expanduser()
            if (p / S.MARKER_FILE).is_file():
                return p
            raise DataError(str(p), None, f"{origin} points here but there is no {S.MARKER_FILE}: {hint}")
    p = Path.home() / ".cache" / "alvh" / "data"
    if (p / S.MARKER_FILE).is_file():
        return p
    raise DataError(str(p), None, f"no market data found ({S.MARKER_FILE} is missing): {hint}")


def check_data(data_dir: Path | str):
    """Validate every series without stopping at the first error (see validation.DataReport)."""
    from .validation import check_data as _check

    return _check(data_dir)
