"""Market implied vols from any ChainSnapshot: forwards from put-call parity, Black-76 IVs of OTM mids.

Option quotes of the end-of-day files are 4:15 pm ET quotes and the index close is a 4:00 pm print, so the
snapshot's 'last' is never used for moneyness: each expiry's forward F and discount factor D come from put-call
parity near the money (C - P = D (F - K)), or from the file itself where it states the forward (DataShop
``implied_underlying_price``, the Gatheral tables' ``Fwd``). IVs are Black-76 on that forward, so they do not depend
on a dividend or rate assumption.

SPY options are American. For the out-of-the-money options used here the early-exercise premium is small at
7-90 days (a put's premium is a few hundredths of a vol point at these rates), so their Black IVs on the parity
forward are used for smile *shape* only (skew and curvature relative to the ATM vol), never for the level, which
for SPY also carries the ETF's dividends and its 4:00/8:00 pm close.
"""
from __future__ import annotations

import datetime as dt
import math
import weakref
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.special import ndtr

from engine.clock import ET
from engine.pricing import implied_vol

YEAR_SECONDS = 365.0 * 86400.0
EOD_QUOTE_TIME = dt.time(16, 15)    # end-of-day option quotes are 4:15 pm ET quotes
_PM_ROOTS = ("SPXW", "SPY")


def settle_dt(expiry: pd.Timestamp, root: str) -> dt.datetime:
    """SPX monthlies and VIX options settle on an opening print (09:30 ET); SPXW and SPY at the 16:00 close."""
    h, m = (16, 0) if root in _PM_ROOTS else (9, 30)
    return dt.datetime(expiry.year, expiry.month, expiry.day, h, m, tzinfo=ET)


def quote_instant(chain) -> dt.datetime:
    """When the quotes are from: the stamp of intraday files, 4:15 pm ET of the trade date for end-of-day files
    (files saved after the close or at the weekend hold that session's last quotes)."""
    st = chain.snapshot_time
    td = chain.trade_date
    if st is not None and st.normalize().tz_localize(None) == td and st.hour < 16:
        return st.to_pydatetime()
    return dt.datetime(td.year, td.month, td.day, EOD_QUOTE_TIME.hour, EOD_QUOTE_TIME.minute, tzinfo=ET)


# strikes used for parity: within this fraction of the underlying's last (x sqrt(T / 30 d) beyond 30 days). VIX
# options list 0.5-1 point strikes around a level near 20 and move ~25x as much as SPX's, so they need a wider band.
NEAR = {"SPX": 0.04, "SPY": 0.04, "VIX": 0.3}


# chain -> {(near, min_pairs): forwards}. Snapshots are immutable and shared (adapters.data.chain_layouts parses
# each file once per process); `alvh validate` asks for the same snapshot's forwards from four analyses.
_FORWARDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def chain_forwards(chain, *, near: float | None = None, min_pairs: int = 4) -> pd.DataFrame:
    """chain's parity forwards (_parity_forwards), computed once per snapshot and arguments; each call returns its
    own copy."""
    memo = _FORWARDS.setdefault(chain, {})
    key = (near, min_pairs)
    if key not in memo:
        memo[key] = _parity_forwards(chain, near=near, min_pairs=min_pairs)
    return memo[key].copy()


def _parity_forwards(chain, *, near: float | None = None, min_pairs: int = 4) -> pd.DataFrame:
    """Forward F and discount factor D for each (expiry, root) with at least one day to expiry.

    Files that state a forward: F is that forward, D = exp(-r T) with r from the nearest parity fit (or 0).
    Otherwise parity near the money: C - P = D (F - K), least squares on the strikes within `near` (scaled by
    sqrt(T / 30 d)) of the spot where both sides have a two-sided quote, weighted by the inverse combined width.
    D must lie in [0.9, 1.0]; for expiries under 20 days or unstable fits the implied rate of the stable expiries
    is used and F refitted with D fixed."""
    q = chain.quotes
    spot = chain.underlying_last
    near = NEAR[chain.underlying] if near is None else near
    t0 = quote_instant(chain)
    td = chain.trade_date
    rows = []
    if "forward" in q and q["forward"].notna().any():
        for (expiry, root), g in q.groupby(["expiry", "root"]):
            T = (settle_dt(expiry, root) - t0).total_seconds() / YEAR_SECONDS
            F = g["forward"].dropna()
            if T > 1.0 / 365 and len(F):
                rows.append({"expiry": expiry, "root": root, "T": T, "dte": (expiry - td).days, "F": float(F.median()),
                             "D": 1.0, "pairs": 0, "source": "file"})
        fw = pd.DataFrame(rows)
        if len(fw):
            fw["r_impl"] = 0.0
        return fw
    c = q[q["right"] == "C"].set_index(["expiry", "root", "strike"])
    p = q[q["right"] == "P"].set_index(["expiry", "root", "strike"])
    both = c[["bid", "ask", "mid"]].merge(p[["bid", "ask", "mid"]], left_index=True, right_index=True, suffixes=("_c", "_p"))
    ok = (both["bid_c"] > 0) & (both["bid_p"] > 0) & both["mid_c"].notna() & both["mid_p"].notna()
    both = both[ok].reset_index()
    if both.empty:
        return pd.DataFrame()
    both["cp"] = both["mid_c"] - both["mid_p"]
    both["width"] = (both["ask_c"] - both["bid_c"]) + (both["ask_p"] - both["bid_p"])
    # numpy per group: a chain has up to ~40 expiries and the vendor file 40 days of one expiry
    both = both.sort_values(["expiry", "root", "cp"], key=lambda s: s.abs() if s.name == "cp" else s, ignore_index=True)
    K, cp, wd = both["strike"].to_numpy(), both["cp"].to_numpy(), both["width"].to_numpy()
    groups = both.groupby(["expiry", "root"], sort=False).indices
    for (expiry, root), idx in groups.items():
        T = (settle_dt(expiry, root) - t0).total_seconds() / YEAR_SECONDS
        if T <= 1.0 / 365:
            continue
        idx = idx[np.abs(K[idx] / spot - 1.0) <= near * max(1.0, math.sqrt(T / (30 / 365)))]
        if len(idx) < min_pairs:
            continue
        idx = idx[:12]   # sorted by |C - P|: the strikes closest to the money
        W = np.sqrt(1.0 / np.maximum(wd[idx], 0.05))
        X = np.column_stack([np.ones(len(idx)), K[idx]])
        (a, b), *_ = np.linalg.lstsq(X * W[:, None], cp[idx] * W, rcond=None)
        D = -b if 0.9 < -b <= 1.0005 else math.nan
        rows.append({"expiry": expiry, "root": root, "T": T, "dte": (expiry - td).days,
                     "F": a / D if math.isfinite(D) else math.nan, "D": D, "pairs": len(idx), "source": "parity",
                     "_idx": idx})
    fw = pd.DataFrame(rows)
    if fw.empty:
        return fw
    fw["r_impl"] = -np.log(fw["D"]) / fw["T"]
    stable = fw[(fw["dte"] >= 20) & fw["r_impl"].between(-0.01, 0.15)]
    r_ref = float(stable["r_impl"].median()) if len(stable) else 0.0
    bad = (fw["dte"] < 20) | ~fw["r_impl"].between(-0.01, 0.15)
    fw.loc[bad, "r_impl"] = r_ref
    fw.loc[bad, "D"] = np.exp(-r_ref * fw.loc[bad, "T"])
    for i in fw.index[bad]:
        idx = fw.at[i, "_idx"][:8]
        fw.at[i, "F"] = float(np.median(K[idx] + cp[idx] / fw.at[i, "D"]))
    return fw.drop(columns="_idx")


def chain_market_iv(chain, *, min_mid: float = 0.05) -> pd.DataFrame:
    """One row per out-of-the-money option with a two-sided quote (or a bid and ask vol): market IV (Black-76 on
    the expiry's forward), forward delta at that IV, and the quote."""
    fw = chain_forwards(chain)
    if fw.empty:
        return pd.DataFrame()
    q = chain.quotes.drop(columns=["forward"], errors="ignore").merge(fw, on=["expiry", "root"], how="inner")
    q = q[np.isfinite(q["F"])]
    vol_quoted = q["iv_ask"].notna().to_numpy() if "iv_ask" in q else np.zeros(len(q), dtype=bool)
    if vol_quoted.any():
        # vol tables: one row per strike; the OTM side is the put below the forward, the call above
        q = q[q["iv_bid"].notna() & (q["iv_bid"] > 0)].copy()
        q["right"] = np.where(q["strike"] < q["F"], "P", "C")
        q["iv_mkt"] = (q["iv_bid"] + q["iv_ask"]) / 2.0
    else:
        q = q[(q["bid"] > 0) & q["mid"].notna() & (q["mid"] >= min_mid)]
        otm = ((q["right"] == "P") & (q["strike"] < q["F"])) | ((q["right"] == "C") & (q["strike"] >= q["F"]))
        q = q[otm].copy()
        q["iv_mkt"] = implied_vol(q["mid"].to_numpy(), q["F"].to_numpy(), q["strike"].to_numpy(), q["T"].to_numpy(),
                                  q["r_impl"].to_numpy(), is_call=(q["right"] == "C").to_numpy(), model="black76")
    iv = q["iv_mkt"].to_numpy()
    sd = iv * np.sqrt(q["T"].to_numpy())
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = np.log(q["F"].to_numpy() / q["strike"].to_numpy()) / sd + 0.5 * sd
    call = (q["right"] == "C").to_numpy()
    q["delta_mkt"] = np.where(call, ndtr(d1), ndtr(d1) - 1.0)
    q["abs_delta"] = np.abs(q["delta_mkt"])
    q["k"] = np.log(q["strike"] / q["F"])
    with np.errstate(divide="ignore", invalid="ignore"):
        q["half_spread_pct"] = (q["ask"] - q["bid"]) / 2.0 / q["mid"]
    return q[np.isfinite(q["iv_mkt"]) & (q["iv_mkt"] > 0)].reset_index(drop=True)


def market_table(data_dir, underlyings: tuple[str, ...] = ("SPX", "SPY"), max_dte: int = 95) -> pd.DataFrame:
    """chain_market_iv rows of every snapshot of the given underlyings in every option file of `data_dir` (all
    layouts, SOURCES.md section 10), expiries up to `max_dte` days, with date, und, file and layout columns.
    Computed once per process and set of file versions; each call returns its own copy."""
    from adapters.data.chain_layouts import list_option_files

    files = tuple((p, p.stat().st_size, p.stat().st_mtime_ns) for p in list_option_files(data_dir))
    return _market_table(files, tuple(underlyings), max_dte).copy()


@lru_cache(maxsize=8)
def _market_table(files: tuple, underlyings: tuple[str, ...], max_dte: int) -> pd.DataFrame:
    from adapters.data.chain_layouts import load_option_file

    parts = []
    for path, _size, _mtime in files:
        for snap in load_option_file(path):
            if snap.underlying not in underlyings:
                continue
            cut = snap.quotes[(snap.quotes["expiry"] - snap.trade_date).dt.days <= max_dte]
            mk = chain_market_iv(_with_quotes(snap, cut))
            if mk.empty:
                continue
            parts.append(mk.assign(date=snap.trade_date, und=snap.underlying, file=path.name, layout=snap.layout))
    return pd.concat(parts, ignore_index=True)


def _with_quotes(snap, quotes: pd.DataFrame):
    from dataclasses import replace

    return replace(snap, quotes=quotes)
