"""Fidelity 2: the SPX implied-vol surface (engine.marketmodel, exactly as replay builds it at the close) against every
real SPX chain in the data, and the tables of issue #9: per date and per bucket (3-10, 10-30, 30-50 delta; puts and
calls; 7-20, 20-60, 60-90 days to expiry), in and out of sample (analysis.surface_fit.FIT_DATES).

Market IVs come from analysis.chain_iv: bid/ask mids on a forward and discount factor implied by put-call parity
near the money (the snapshot's 'Last' and vendor IV are not used: option quotes are from 4:15 pm ET, the index close
from 4:00 pm). The error is the model vol at the market's log-moneyness minus the market IV, in vol points. SPY
chains (American, ETF dividends) are compared on smile shape only (shape_errors).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from engine.marketmodel import MarketModel, PricingParams
from engine.pricing import black76_price

DELTA_BUCKETS = ((0.03, 0.10), (0.10, 0.30), (0.30, 0.50))
DTE_BUCKETS = ((7, 20), (20, 60), (60, 91))
DELTA_RANGE = (0.03, 0.50)
DTE_RANGE = (7, 90)
STRESS_VIX, CALM_VIX = 25.0, 20.0
CALM_SUBSET_DATES = ("2023-08-18", "2023-09-14", "2024-01-05")   # issue #4's acceptance subset


def close_snapshot_model(panel, date, pricing: PricingParams, spx: float | None = None) -> MarketModel:
    """The MarketModel replay builds at the close of `date` (same quotes, same pricing code); `spx` replaces the
    4:00 pm SPX close (analysis.condor_check's quote-instant marks; None: as replay)."""
    from dataclasses import replace

    from adapters.sim.replay import HistoricalReplay

    day = pd.Timestamp(date)
    replay = HistoricalReplay(panel, day, day)
    i = replay._first
    close = list(replay.snapshots_for(i))[-1]
    if spx is not None:
        close = replace(close, quotes=replace(close.quotes, spx=float(spx)))
    return MarketModel(close, pricing)


def at_level(pricing: PricingParams, factor: float) -> PricingParams:
    """`pricing` with the regime surface's level times `factor` and its fitted shape unchanged (RegimeParams
    level_scale, what config/surface_chain_level.toml sets for replay); analysis.chain_level's level-matched
    diagnostic."""
    if factor == 1.0:
        return pricing
    scale = pricing.spx_surface.get("level_scale", 1.0) * factor
    return pricing.model_copy(update={"spx_surface": {**pricing.spx_surface, "level_scale": scale}})


def surface_errors(market: pd.DataFrame, panel, pricing: PricingParams | None = None, level: float = 1.0) -> pd.DataFrame:
    """Model vs market for one date's OTM options with 7-90 days to expiry (`market`: chain_iv rows of one date).

    iv_err: model vol at the market's log-moneyness ln(K/F) (the surface evaluated at the strike whose moneyness
    against the model's own forward equals the market's) minus market IV, in vol points; this isolates the surface
    shape from the 4:00/4:15 pm spot mismatch and the dividend assumption.
    iv_err_strike: model vol at the same strike minus market IV (what the simulator quotes for that strike; SPX only).
    price_err_fwd_pct: the model vol at matched moneyness priced on the market forward and discount factor, vs the
    market mid (the surface error in price terms; the price itself is price_model). `level`: at_level."""
    pricing = at_level(pricing or PricingParams(), level)
    mk = market[(market["dte"] >= DTE_RANGE[0]) & (market["dte"] <= DTE_RANGE[1])].copy()
    if mk.empty:
        return mk
    m = close_snapshot_model(panel, mk["date"].iloc[0], pricing)
    s = m.surface
    # time to the settlement as the simulator measures it from its 4:00 pm close snapshot
    from engine.instruments import spx_option

    T_of = {(e, r): m.years_to(spx_option(e.date(), 1.0, "C", r)) for e, r in mk[["expiry", "root"]].drop_duplicates().itertuples(index=False)}
    Tm = np.maximum(np.array([T_of[(e, r)] for e, r in zip(mk["expiry"], mk["root"])]), 1e-6)
    Fm = s.forward(Tm)
    K_equiv = Fm * np.exp(mk["k"].to_numpy())
    iv_model = s.vol(K_equiv, Tm)
    call = (mk["right"] == "C").to_numpy()
    price_fwd = black76_price(mk["F"].to_numpy(), mk["strike"].to_numpy(), mk["T"].to_numpy(), mk["r_impl"].to_numpy(),
                              iv_model, call)
    mk["iv_model"] = iv_model
    mk["price_model"] = price_fwd
    mk["iv_err"] = (iv_model - mk["iv_mkt"].to_numpy()) * 100.0
    spx = (mk["und"] == "SPX").to_numpy() if "und" in mk else np.ones(len(mk), dtype=bool)
    mk["iv_err_strike"] = np.where(spx, (s.vol(mk["strike"].to_numpy(), Tm) - mk["iv_mkt"].to_numpy()) * 100.0, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        mk["price_err_fwd_pct"] = (price_fwd - mk["mid"].to_numpy()) / mk["mid"].to_numpy() * 100.0
    mk["fwd_gap_pct"] = np.where(spx, (Fm / mk["F"].to_numpy() - 1.0) * 100.0, np.nan)
    return mk


def _bucket(x: pd.Series, edges: Sequence[tuple[float, float]], fmt) -> pd.Series:
    out = pd.Series(pd.NA, index=x.index, dtype="object")
    for lo, hi in edges:
        out[(x >= lo) & (x < hi)] = fmt(lo, hi)
    return out


def annotate(err: pd.DataFrame, vix: pd.Series, fit_dates: Sequence[str]) -> pd.DataFrame:
    """Side, delta and DTE buckets, the day's VIX close and the sample tag (in = a fit date)."""
    e = err.copy()
    e["delta_bucket"] = _bucket(e["abs_delta"], DELTA_BUCKETS, lambda a, b: f"{a * 100:.0f}-{b * 100:.0f}d")
    e["dte_bucket"] = _bucket(e["dte"], DTE_BUCKETS, lambda a, b: f"{a}-{b - 1 if b == 91 else b}")
    e["side"] = np.where(e["right"] == "P", "put", "call")
    e["vix"] = e["date"].map(vix)
    e["sample"] = np.where(e["date"].isin(pd.to_datetime(list(fit_dates))), "in", "out")
    return e


def all_errors(market: pd.DataFrame, panel, pricing: PricingParams | None = None, fit_dates: Sequence[str] = (),
               levels: dict | None = None) -> pd.DataFrame:
    """surface_errors for every date of `market` (chain_iv.market_table rows), annotated; `levels` (date -> factor)
    scales that date's surface level (at_level; analysis.chain_level)."""
    levels = levels or {}
    parts = [surface_errors(g, panel, pricing, levels.get(d, 1.0)) for d, g in market.groupby("date")]
    return annotate(pd.concat([p for p in parts if len(p)], ignore_index=True), panel.daily["vix_close"], fit_dates)


def target_for(vix: float) -> float:
    """Issue #9's target for a date's median |IV error|: 1.0 below VIX 20, 2.0 from VIX 25 (none in between)."""
    return 1.0 if vix < CALM_VIX else (2.0 if vix >= STRESS_VIX else math.nan)


def per_date(err: pd.DataFrame) -> pd.DataFrame:
    """Per SPX date: median |IV error| of OTM 3-50 delta options at 7-90 DTE, bias, count, the 3-10 delta put bucket,
    the target that applies at that VIX and whether it is met."""
    e = err[err["abs_delta"].between(*DELTA_RANGE)]
    if "und" in e:
        e = e[e["und"] == "SPX"]
    rows = []
    for d, g in e.groupby("date"):
        p310 = g.loc[(g["side"] == "put") & (g["delta_bucket"] == "3-10d"), "iv_err"]
        vix = float(g["vix"].iloc[0])
        med = float(g["iv_err"].abs().median())
        tgt = target_for(vix)
        rows.append({"date": str(pd.Timestamp(d).date()), "sample": g["sample"].iloc[0], "vix": vix, "n": len(g),
                     "median_abs": med, "bias": float(g["iv_err"].median()),
                     "put_3_10_abs": float(p310.abs().median()) if len(p310) else math.nan,
                     "target": tgt, "met": None if math.isnan(tgt) else med <= tgt})
    return pd.DataFrame(rows)


def bucket_table(err: pd.DataFrame, by: Sequence[str] = ("date", "side", "delta_bucket", "dte_bucket")) -> pd.DataFrame:
    """Median |IV error| and median error (bias) in vol points, with counts, by the given keys."""
    e = err.dropna(subset=["delta_bucket", "dte_bucket"])
    return (e.groupby(list(by)).agg(n=("iv_err", "size"), median_abs=("iv_err", lambda s: s.abs().median()),
                                    bias=("iv_err", "median")).reset_index())


def calm_subset_median(err: pd.DataFrame, dates: Sequence[str] = CALM_SUBSET_DATES) -> float:
    """Issue #4's calm figure: 10-30 delta, 20-60 DTE, pooled over the three 2023-24 chains."""
    e = err[err["date"].isin(pd.to_datetime(list(dates))) & err["abs_delta"].between(0.10, 0.30)
            & err["dte"].between(20, 60)]
    return float(e["iv_err"].abs().median())


def shape_errors(err: pd.DataFrame) -> pd.DataFrame:
    """SPY (American, ETF dividends, 4:00/8:00 pm close): smile *shape* only. Per slice, model and market IVs each
    minus their own value at the money (interpolated at k = 0), so the level, which SPY does not share with SPX,
    drops out; the error left is skew and curvature. Early exercise is immaterial here: only OTM options are used and
    an OTM put's early-exercise premium at these rates and maturities is a few hundredths of a vol point."""
    out = []
    for _, g in err.groupby(["date", "expiry"]):
        g = g.sort_values("k")
        if g["k"].min() >= 0 or g["k"].max() <= 0:
            continue
        atm_m = np.interp(0.0, g["k"], g["iv_mkt"])
        atm_s = np.interp(0.0, g["k"], g["iv_model"])
        out.append(g.assign(iv_err=((g["iv_model"] - atm_s) - (g["iv_mkt"] - atm_m)) * 100.0))
    return pd.concat(out, ignore_index=True) if out else err.iloc[:0]
