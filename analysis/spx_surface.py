"""Fidelity 2: the SPX implied-vol surface (engine.volsurface via engine.marketmodel, exactly as replay builds it
at the close) against real Cboe end-of-day SPX chain snapshots.

Implied-vol error in vol points and price error as a % of mid, by delta and days-to-expiry bucket. Market IVs come
from analysis.chain_iv: bid/ask mids on a forward and discount factor implied by put-call parity near the money (the
snapshot's 'Last' and vendor IV are not used: option quotes are from 4:15 pm ET, the index close from 4:00 pm).
analysis.calibration fits the surface on the early chains with these same measurements.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from analysis.chain_iv import chain_market_iv
from engine.marketmodel import MarketModel, PricingParams
from engine.pricing import black76_price

DELTA_BUCKETS = ((0.05, 0.10), (0.10, 0.15), (0.15, 0.20), (0.20, 0.25), (0.25, 0.30))
DTE_BUCKETS = ((7, 14), (14, 20), (20, 30), (30, 45), (45, 60), (60, 90))
ACCEPT_DELTA = (0.10, 0.30)
ACCEPT_DTE = (20, 60)
CALIBRATION_CHAINS = ("2022-02-04", "2022-06-10", "2023-02-07")   # in-sample for `alvh calibrate`


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
