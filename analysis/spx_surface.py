"""Fidelity 2: the SPX implied-vol surface (engine.volsurface via engine.marketmodel, exactly as replay builds it
at the close) against real Cboe end-of-day SPX chain snapshots.

Implied-vol error in vol points and price error as a % of mid, by delta and days-to-expiry bucket. Market IVs are
computed here from bid/ask mids with a forward and discount factor implied by put-call parity near the money (the
snapshot's 'Last' and vendor IV are not used: option quotes are from 4:15 pm ET, the index close from 4:00 pm).
analysis.calibration fits the surface on the early chains with these same measurements.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from engine.marketmodel import MarketModel, PricingParams
from engine.pricing import black76_price, implied_vol

CHAIN_QUOTE_TIME = dt.time(16, 15)   # option quotes in the end-of-day snapshots are 4:15 pm ET quotes
DELTA_BUCKETS = ((0.05, 0.10), (0.10, 0.15), (0.15, 0.20), (0.20, 0.25), (0.25, 0.30))
DTE_BUCKETS = ((7, 14), (14, 20), (20, 30), (30, 45), (45, 60), (60, 90))
ACCEPT_DELTA = (0.10, 0.30)
ACCEPT_DTE = (20, 60)
CALIBRATION_CHAINS = ("2022-02-04", "2022-06-10", "2023-02-07")   # in-sample for `alvh calibrate`


def _settle_dt(expiry: pd.Timestamp, root: str) -> dt.datetime:
    from engine.clock import ET

    h, m = (9, 30) if root == "SPX" else (16, 0)
    return dt.datetime(expiry.year, expiry.month, expiry.day, h, m, tzinfo=ET)


def chain_forwards(chain, *, near: float = 0.04, min_pairs: int = 4) -> pd.DataFrame:
    """Forward F and discount factor D for each (expiry, root) from put-call parity near the money:
    C - P = D * (F - K), fitted by least squares on strikes within `near` of the spot where both sides have a
    two-sided quote, weighted by the inverse of the combined bid/ask width. D is kept in [0.9, 1.0]; when the
    fit is unstable (few strikes, very short expiry) D comes from the fitted slope's neighbours."""
    from engine.clock import ET

    q = chain.quotes
    spot = chain.underlying_last
    td = chain.trade_date
    t0 = dt.datetime(td.year, td.month, td.day, CHAIN_QUOTE_TIME.hour, CHAIN_QUOTE_TIME.minute, tzinfo=ET)
    c = q[q["right"] == "C"].set_index(["expiry", "root", "strike"])
    p = q[q["right"] == "P"].set_index(["expiry", "root", "strike"])
    both = c[["bid", "ask", "mid"]].merge(p[["bid", "ask", "mid"]], left_index=True, right_index=True, suffixes=("_c", "_p"))
    ok = (both["bid_c"] > 0) & (both["bid_p"] > 0) & both["mid_c"].notna() & both["mid_p"].notna()
    both = both[ok].reset_index()
    rows = []
    for (expiry, root), g in both.groupby(["expiry", "root"]):
        T = (_settle_dt(expiry, root) - t0).total_seconds() / (365.0 * 86400.0)
        if T <= 0:
            continue
        g = g[(g["strike"] / spot - 1.0).abs() <= near * max(1.0, math.sqrt(T / (30 / 365)))]
        if len(g) < min_pairs:
            continue
        # keep the strikes closest to the money (smallest |C - P|)
        g = g.assign(cp=g["mid_c"] - g["mid_p"]).sort_values("cp", key=lambda s: s.abs()).head(12)
        w = 1.0 / np.maximum((g["ask_c"] - g["bid_c"]) + (g["ask_p"] - g["bid_p"]), 0.05)
        X = np.column_stack([np.ones(len(g)), g["strike"].to_numpy()])
        W = np.sqrt(w.to_numpy())
        coef, *_ = np.linalg.lstsq(X * W[:, None], g["cp"].to_numpy() * W, rcond=None)
        a, b = coef
        D = -b
        if not (0.9 < D <= 1.0005):
            D = math.nan
        F = a / D if math.isfinite(D) else math.nan
        rows.append({"expiry": expiry, "root": root, "T": T, "dte": (expiry - td).days, "F": F, "D": D,
                     "pairs": len(g)})
    fw = pd.DataFrame(rows)
    if len(fw):
        # short expiries: D is noisy; use the implied rate of the nearest stable expiry beyond 20 days
        fw["r_impl"] = -np.log(fw["D"]) / fw["T"]
        stable = fw[(fw["dte"] >= 20) & fw["r_impl"].between(-0.01, 0.15)]
        r_ref = float(stable["r_impl"].median()) if len(stable) else 0.0
        bad = (fw["dte"] < 20) | ~fw["r_impl"].between(-0.01, 0.15)
        fw.loc[bad, "r_impl"] = r_ref
        fw.loc[bad, "D"] = np.exp(-r_ref * fw.loc[bad, "T"])
        # refit F with D fixed where it was replaced
        for i in fw.index[bad]:
            e, root = fw.at[i, "expiry"], fw.at[i, "root"]
            g = both[(both["expiry"] == e) & (both["root"] == root)]
            g = g.assign(cp=g["mid_c"] - g["mid_p"]).sort_values("cp", key=lambda s: s.abs()).head(8)
            fw.at[i, "F"] = float(np.median(g["strike"] + g["cp"] / fw.at[i, "D"]))
        fw["q_impl"] = fw["r_impl"] - np.log(fw["F"] / spot) / fw["T"]
    return fw


def chain_market_iv(chain, *, min_mid: float = 0.05) -> pd.DataFrame:
    """One row per out-of-the-money option with a two-sided quote: market IV (Black-76 on the parity forward),
    forward delta, and the quote."""
    fw = chain_forwards(chain)
    if fw.empty:
        return pd.DataFrame()
    q = chain.quotes.merge(fw, on=["expiry", "root"], how="inner")
    q = q[(q["bid"] > 0) & q["mid"].notna() & (q["mid"] >= min_mid) & np.isfinite(q["F"])]
    otm = ((q["right"] == "P") & (q["strike"] < q["F"])) | ((q["right"] == "C") & (q["strike"] >= q["F"]))
    q = q[otm].copy()
    r = q["r_impl"].to_numpy()
    iv = implied_vol(q["mid"].to_numpy(), q["F"].to_numpy(), q["strike"].to_numpy(), q["T"].to_numpy(), r,
                     is_call=(q["right"] == "C").to_numpy(), model="black76")
    q["iv_mkt"] = iv
    from scipy.special import ndtr

    sd = iv * np.sqrt(q["T"].to_numpy())
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = np.log(q["F"].to_numpy() / q["strike"].to_numpy()) / sd + 0.5 * sd
    call = (q["right"] == "C").to_numpy()
    q["delta_mkt"] = np.where(call, ndtr(d1), ndtr(d1) - 1.0)
    q["abs_delta"] = np.abs(q["delta_mkt"])
    q["half_spread_pct"] = (q["ask"] - q["bid"]) / 2.0 / q["mid"]
    return q[np.isfinite(q["iv_mkt"])].reset_index(drop=True)


def close_snapshot_model(panel, date, pricing: PricingParams) -> MarketModel:
    """The MarketModel replay builds at the close of `date` (same quotes, same pricing code)."""
    from adapters.sim.replay import HistoricalReplay

    day = pd.Timestamp(date)
    replay = HistoricalReplay(panel, day, day)
    i = replay._first
    snaps = list(replay.snapshots_for(i))
    return MarketModel(snaps[-1], pricing)


def surface_errors(chain, panel, pricing: PricingParams | None = None, market: pd.DataFrame | None = None) -> pd.DataFrame:
    """Model vs market for every OTM option of the chain with 7-90 days to expiry.

    iv_err: model vol at the market's log-moneyness ln(K/F) (the surface evaluated at the strike whose moneyness
    against the model's own forward equals the market's) minus market IV, in vol points; this isolates the surface
    shape from the 4:00/4:15 pm spot mismatch and the dividend assumption.
    iv_err_strike: model vol at the same strike minus market IV (what the simulator quotes for that strike).
    price_err_pct: (model mid as the simulator prices it at the close - market mid) / market mid.
    price_err_fwd_pct: the model vol at matched moneyness priced on the market forward and discount factor,
    vs market mid (the surface error in price terms)."""
    from engine.instruments import spx_option

    pricing = pricing or PricingParams()
    mk = market if market is not None else chain_market_iv(chain)
    mk = mk[(mk["dte"] >= 7) & (mk["dte"] <= 90)].copy()
    if mk.empty:
        return mk
    m = close_snapshot_model(panel, chain.trade_date, pricing)
    s = m.surface
    opts = [spx_option(e.date(), k, r, root) for e, k, r, root in
            zip(mk["expiry"], mk["strike"], mk["right"], mk["root"])]
    Tm = np.array([m.years_to(o) for o in opts])
    Fm = s.forward(Tm)
    K_equiv = Fm * mk["strike"].to_numpy() / mk["F"].to_numpy()
    iv_model = s.vol(K_equiv, Tm)
    iv_model_strike = s.vol(mk["strike"].to_numpy(), Tm)
    price_model = m.mids(opts)
    call = (mk["right"] == "C").to_numpy()
    price_fwd = black76_price(mk["F"].to_numpy(), mk["strike"].to_numpy(), mk["T"].to_numpy(), mk["r_impl"].to_numpy(),
                              iv_model, call)
    mk["iv_model"] = iv_model
    mk["iv_model_strike"] = iv_model_strike
    mk["iv_err"] = (iv_model - mk["iv_mkt"].to_numpy()) * 100.0
    mk["iv_err_strike"] = (iv_model_strike - mk["iv_mkt"].to_numpy()) * 100.0
    mk["price_model"] = price_model
    mk["price_err_pct"] = (price_model - mk["mid"].to_numpy()) / mk["mid"].to_numpy() * 100.0
    mk["price_err_fwd_pct"] = (price_fwd - mk["mid"].to_numpy()) / mk["mid"].to_numpy() * 100.0
    mk["F_model"] = Fm
    mk["fwd_gap_pct"] = (Fm / mk["F"].to_numpy() - 1.0) * 100.0
    mk["trade_date"] = chain.trade_date
    mk["spot_close"] = m.spot
    return mk


def _bucket(x: pd.Series, edges: Sequence[tuple[float, float]], fmt) -> pd.Series:
    out = pd.Series(pd.NA, index=x.index, dtype="object")
    for lo, hi in edges:
        out[(x >= lo) & (x < hi)] = fmt(lo, hi)
    return out


def bucket_errors(err: pd.DataFrame) -> pd.DataFrame:
    """Median |IV error| (vol points), median IV error (bias), median |price error| and median price error
    (% of mid), by side, delta bucket and DTE bucket (5-30 delta, 7-90 days)."""
    e = err[(err["abs_delta"] >= 0.05) & (err["abs_delta"] < 0.30)].copy()
    e["delta_bucket"] = _bucket(e["abs_delta"], DELTA_BUCKETS, lambda a, b: f"{a * 100:.0f}-{b * 100:.0f}d")
    e["dte_bucket"] = _bucket(e["dte"], DTE_BUCKETS, lambda a, b: f"{a:.0f}-{b:.0f}")
    e["side"] = np.where(e["right"] == "P", "put", "call")
    g = e.dropna(subset=["delta_bucket", "dte_bucket"]).groupby(["side", "delta_bucket", "dte_bucket"])
    t = g.agg(n=("iv_err", "size"), iv_abs=("iv_err", lambda s: s.abs().median()), iv_bias=("iv_err", "median"),
              price_abs=("price_err_fwd_pct", lambda s: s.abs().median()), price_bias=("price_err_fwd_pct", "median"),
              price_sim_abs=("price_err_pct", lambda s: s.abs().median()))
    return t.reset_index()


def acceptance_subset(err: pd.DataFrame) -> pd.DataFrame:
    lo, hi = ACCEPT_DELTA
    a, b = ACCEPT_DTE
    return err[(err["abs_delta"] >= lo) & (err["abs_delta"] <= hi) & (err["dte"] >= a) & (err["dte"] <= b)]


def surface_summary(errs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per chain date: median |IV error| on the acceptance subset (10-30 delta, 20-60 DTE), bias, count, and
    the same for all 5-30 delta options at 7-90 DTE."""
    rows = []
    for date, err in errs.items():
        a = acceptance_subset(err)
        full = err[(err["abs_delta"] >= 0.05) & (err["abs_delta"] <= 0.30)]
        rows.append({
            "date": date, "sample": "in" if date in CALIBRATION_CHAINS else "out",
            "n_accept": len(a), "median_abs_iv_err": float(a["iv_err"].abs().median()),
            "median_iv_err": float(a["iv_err"].median()),
            "median_abs_iv_err_same_strike": float(a["iv_err_strike"].abs().median()),
            "median_abs_price_err_pct": float(a["price_err_fwd_pct"].abs().median()),
            "median_abs_price_err_sim_pct": float(a["price_err_pct"].abs().median()),
            "n_5_30d": len(full), "median_abs_iv_err_5_30d": float(full["iv_err"].abs().median()),
            "fwd_gap_pct": float(err.groupby("expiry")["fwd_gap_pct"].median().median()),
        })
    return pd.DataFrame(rows)


def pooled_median(errs: dict[str, pd.DataFrame], dates: Iterable[str]) -> float:
    parts = [acceptance_subset(errs[d])["iv_err"].abs() for d in dates if d in errs]
    return float(pd.concat(parts).median()) if parts else math.nan
