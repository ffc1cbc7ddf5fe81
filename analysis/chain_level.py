"""Each real option chain's own volatility level against the index close its model is pinned to: SPX chains against
the VIX family, VIX option chains against VVIX.

The regime surface (engine.regime_surface) reproduces the day's VIX9D, VIX, VIX3M and VIX6M closes by construction
(issue #9, acceptance 2). A chain's quotes carry a level of their own: each expiry's model-free variance swap, the
VIX formula applied to that expiry's quotes. Where a chain's level differs from the index closes (its quotes were
taken at another moment than the 4:15 pm index prints, or its mids sit elsewhere in wide markets), the surface
cannot agree with both, and its error against that chain is partly this level gap, not its shape.

Reported per date (`alvh validate`, docs/fidelity.md sections 2 and 2b): the chain's level minus the index level at the
same expiries, and the surface's errors recomputed with the surface's level scaled to the chain's own
("level-matched": pricing.spx_surface.level_scale = the date's factor, the same fitted shape, no refit; what
config/surface_chain_level.toml does for a whole replay). A diagnostic of where the errors come from, never an input to
replay: a replay knows the index closes, not a chain it does not have.

The variance swap per expiry follows the Cboe VIX white paper on one expiry: forward F from put-call parity
(analysis.chain_iv.chain_forwards), K0 the highest strike at or below F quoted on both sides, out-of-the-money mids
away from K0 (the mean of the put and call mids at K0), each side stopping after two consecutive zero bids;
sigma^2 = 2/T sum dK/K^2 e^{rT} Q(K) - (F/K0 - 1)^2 / T. A line with no quote at all (bid and ask both zero or
missing: the vendor file's gaps) is skipped rather than read as a zero bid. Vol tables (no prices) have no level.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from engine.regime_surface import index_term_points, index_variance

DTE_RANGE = (7, 60)        # expiries whose level is compared (the surface's errors are measured at 7-90 DTE)


def _side(strikes: np.ndarray, bid: np.ndarray, mid: np.ndarray) -> tuple[list[float], list[float]]:
    """Strikes and mids of one side, walking away from K0, to the Cboe truncation."""
    ks, qs, zeros = [], [], 0
    for k, b, m in zip(strikes, bid, mid):
        if not b > 0:
            zeros += 1
            if zeros >= 2:
                break
            continue
        zeros = 0
        ks.append(float(k))
        qs.append(float(m))
    return ks, qs


def expiry_variance(quotes: pd.DataFrame, F: float, T: float, r: float) -> float:
    """Model-free variance-swap vol of one expiry's quotes (one root), or NaN without a two-sided K0."""
    q = quotes[(quotes["ask"] > 0) & quotes["bid"].notna()]
    sides = q[q["strike"] <= F].groupby("strike")["right"].nunique()
    two_sided = sides.index[sides.to_numpy() == 2]
    if len(two_sided) == 0:
        return math.nan
    k0 = float(two_sided.max())
    at = q[q["strike"] == k0]
    puts = q[(q["right"] == "P") & (q["strike"] < k0)].sort_values("strike", ascending=False)
    calls = q[(q["right"] == "C") & (q["strike"] > k0)].sort_values("strike")
    kp, qp = _side(puts["strike"].to_numpy(), puts["bid"].to_numpy(), puts["mid"].to_numpy())
    kc, qc = _side(calls["strike"].to_numpy(), calls["bid"].to_numpy(), calls["mid"].to_numpy())
    K = np.array(kp[::-1] + [k0] + kc)
    Q = np.array(qp[::-1] + [float(at["mid"].mean())] + qc)
    if len(K) < 3:
        return math.nan
    dK = np.empty(len(K))
    dK[1:-1] = (K[2:] - K[:-2]) / 2.0
    dK[0], dK[-1] = K[1] - K[0], K[-1] - K[-2]
    var = 2.0 / T * float(np.sum(dK / K**2 * Q)) * math.exp(r * T) - (F / k0 - 1.0) ** 2 / T
    return math.sqrt(var) if var > 0 else math.nan


def expiry_levels(snap, keep=lambda f: True) -> list[tuple]:
    """(forward row of analysis.chain_iv.chain_forwards, variance-swap vol) of each expiry (and root) of a priced
    snapshot that `keep` accepts and that has a level; none for a vol table."""
    from analysis.chain_iv import chain_forwards

    q = snap.quotes
    if "bid" not in q or q["bid"].isna().all():
        return []
    out = []
    for f in chain_forwards(snap).itertuples(index=False):
        if not math.isfinite(f.F) or not keep(f):
            continue
        vs = expiry_variance(q[(q["expiry"] == f.expiry) & (q["root"] == f.root)], float(f.F), float(f.T),
                             float(f.r_impl))
        if math.isfinite(vs):
            out.append((f, vs))
    return out


def snapshot_levels(snap, state) -> pd.DataFrame:
    """Per expiry (and root) of one SPX snapshot with DTE_RANGE days to go: the chain's variance-swap vol and the
    index level at the same T (total variance linear between the index tenors, engine.regime_surface), in vol pts."""
    pts = index_term_points(state)
    return pd.DataFrame([{"expiry": f.expiry, "root": f.root, "dte": int(f.dte), "chain_vol": vs * 100.0,
                          "index_vol": math.sqrt(index_variance(pts, float(f.T)) / float(f.T)) * 100.0}
                         for f, vs in expiry_levels(snap, lambda f: DTE_RANGE[0] <= f.dte <= DTE_RANGE[1])])


def chain_levels(data_dir, panel) -> pd.DataFrame:
    """Per SPX chain date: expiries compared, the chain's level minus the index level (median over expiries, vol
    pts, with the range) and `factor`, the median ratio chain / index that level-matching scales the indices by."""
    from adapters.data.chain_layouts import list_option_files, load_option_file
    from analysis.surface_fit import state_on

    rows = []
    for path in list_option_files(data_dir):
        for snap in load_option_file(path):
            if snap.underlying != "SPX":
                continue
            if snap.trade_date not in panel.daily.index:
                raise ValueError(f"{path}: chain date {snap.trade_date.date()} has no index closes in the market panel")
            lv = snapshot_levels(snap, state_on(panel, snap.trade_date))
            if lv.empty:
                continue
            gap = lv["chain_vol"] - lv["index_vol"]
            rows.append({"date": snap.trade_date, "expiries": len(lv), "gap": float(gap.median()),
                         "gap_min": float(gap.min()), "gap_max": float(gap.max()),
                         "factor": float((lv["chain_vol"] / lv["index_vol"]).median())})
    return pd.DataFrame(rows).sort_values("date", ignore_index=True)


def inside_quote(err: pd.DataFrame) -> pd.Series:
    """Whether the model's price of each option (its IV at matched moneyness on the market forward: the
    price_model of analysis.spx_surface.surface_errors) lies within the quoted bid and ask; on a vol table (no
    prices) whether the model IV lies within the bid and ask IVs."""
    by_price = (err["price_model"] >= err["bid"]) & (err["price_model"] <= err["ask"])
    if "iv_bid" not in err:
        return by_price
    table = err["bid"].isna() & err["iv_bid"].notna()
    by_vol = (err["iv_model"] >= err["iv_bid"]) & (err["iv_model"] <= err["iv_ask"])
    return by_price.where(~table, by_vol)


def level_table(levels: pd.DataFrame, errors: pd.DataFrame, matched: pd.DataFrame) -> pd.DataFrame:
    """Per SPX chain date: the surface's per-date figures (analysis.spx_surface.per_date) as replay prices, the chain's
    level gap, the same figures level-matched (`matched`: the errors recomputed with each date's surface level scaled
    by its factor) and the share of 3-10 delta puts the model prices within the quoted bid and ask."""
    from analysis.spx_surface import DELTA_RANGE, per_date

    base = per_date(errors)[["date", "sample", "vix", "median_abs", "put_3_10_abs", "target", "met"]]
    lm = per_date(matched)[["date", "median_abs", "put_3_10_abs"]].rename(
        columns={"median_abs": "median_abs_matched", "put_3_10_abs": "put_3_10_matched"})
    e = errors[errors["abs_delta"].between(*DELTA_RANGE) & (errors["side"] == "put") & (errors["delta_bucket"] == "3-10d")]
    inside = inside_quote(e).groupby(e["date"]).mean().rename("put_3_10_inside_quote").reset_index()
    inside["date"] = [str(pd.Timestamp(d).date()) for d in inside["date"]]
    lv = levels[["date", "expiries", "gap", "factor"]].assign(date=[str(pd.Timestamp(d).date()) for d in levels["date"]])
    out = base.merge(lv, on="date", how="left").merge(lm, on="date", how="left").merge(inside, on="date", how="left")
    out["expiries"] = out["expiries"].astype("Int64")
    out["met_matched"] = [None if math.isnan(t) or math.isnan(f) else m <= t
                          for t, f, m in zip(out["target"], out["factor"], out["median_abs_matched"])]
    return out


VVIX_ROOT = "VIX"        # VVIX is built from the standard (monthly) VIX options, not the weeklies


def vix_chain_level(snap) -> float:
    """A VIX option chain's own 30-day level in vol pts, built as VVIX is: the variance swap of the two standard
    monthly expiries around 30 days (each on its own VX forward), total variance interpolated to 30 days. NaN for
    a vol table (no prices) or without an expiry on each side of 30 days."""
    pts = sorted((float(f.T), vs * vs * float(f.T)) for f, vs in expiry_levels(snap, lambda f: f.root == VVIX_ROOT))
    t30 = 30.0 / 365.0
    near = [p for p in pts if p[0] <= t30]
    far = [p for p in pts if p[0] > t30]
    if not near or not far:
        return math.nan
    (t1, w1), (t2, w2) = near[-1], far[0]
    return 100.0 * math.sqrt((w1 + (w2 - w1) * (t30 - t1) / (t2 - t1)) / t30)


def vix_levels(data_dir, panel) -> pd.DataFrame:
    """Per VIX option chain of analysis.vix_options: the VVIX close its quotes are scored with, the chain's own
    30-day level (vix_chain_level) and `factor` = chain / VVIX (NaN where the chain has no prices)."""
    from pathlib import Path

    from adapters.data.chain_layouts import load_option_file
    from analysis.vix_options import CHAINS

    rows = []
    for date, (name, which, vvix_day) in CHAINS.items():
        snap = load_option_file(Path(data_dir) / "vix_option_chains" / name)[which]
        vvix = float(panel.daily.loc[pd.Timestamp(vvix_day), "vvix_close"])
        level = vix_chain_level(snap)
        rows.append({"date": date, "vvix": vvix, "chain_level": level, "factor": level / vvix})
    return pd.DataFrame(rows)
