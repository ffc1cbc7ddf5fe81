"""Fidelity checks: how close the simulator's prices and rule replicas come to everything real we have.

1. Constant-maturity VX blends (engine.vixfutures, real VX settlements) vs the VIX futures ETPs
   (VXX series A and B, VIXY: short-term; VIXM: mid-term): daily and weekly return correlation, tracking
   error, and annual returns side by side (replica with T-bill interest, less the ETP's fee).
2. The SPX implied-vol surface (engine.volsurface via engine.marketmodel, exactly as replay builds it at the
   close) vs real Cboe end-of-day SPX chain snapshots: implied-vol error in vol points and price error as a %
   of mid, by delta and days-to-expiry bucket. Market IVs are computed here from bid/ask mids with a forward
   and discount factor implied by put-call parity near the money (the snapshot's 'Last' and vendor IV are not
   used: option quotes are from 4:15 pm ET, the index close from 4:00 pm).
3. The CNDR and VXTH replicas (strategies.benchmarks), run through adapters.sim.backtest.run_backtest: the same
   replay, kernel, simulated broker and pricing as every strategy.

Everything here is a pure computation on a MarketPanel and chain snapshots; adapters.cli.validate
turns it into `alvh validate` (tables, plots, a markdown report).
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.marketmodel import MarketModel, PricingParams
from engine.pricing import black76_price, implied_vol

# ------------------------------------------------------------------------------------------------------------
# 1. VX blends vs ETPs
# ------------------------------------------------------------------------------------------------------------

# Annual fees (docs/fidelity.md cites them): iPath VXX (series A 2009 and B 2018) investor fee 0.89 %/yr;
# ProShares VIXY and VIXM expense ratio 0.85 %/yr.
ETP_SPECS: tuple[tuple[str, str, str, float], ...] = (
    ("VXX-A", "vxx_a_close", "short", 0.0089),
    ("VXX", "vxx_close", "short", 0.0089),
    ("VIXY", "vixy_close", "short", 0.0085),
    ("VIXM", "vixm_close", "mid", 0.0085),
)
BLEND_NAMES = {"short": "1-month blend", "mid": "5-month blend"}
# Acceptance targets of issue #4: (daily correlation, weekly correlation) by blend kind.
CORR_TARGETS = {"short": (0.93, 0.985), "mid": (0.92, 0.975)}
ANNUAL_GAP_TARGET = 0.01
# Cboe moved the VX daily settlement time to 3:00 pm CT (4:00 pm ET, the ETPs' close) effective 2020-10-26 (Cboe
# notice C2020092202); before that VX settled at 3:15 pm CT (4:15 pm ET). The blend/ETP daily correlation jumps
# at exactly this date (docs/fidelity.md).
SETTLEMENT_CHANGE = pd.Timestamp("2020-10-26")


@dataclass
class EtpComparison:
    name: str
    column: str
    kind: str
    fee: float
    start: pd.Timestamp
    end: pd.Timestamp
    days: int
    daily_corr: float
    weekly_corr: float
    tracking_error: float          # annualised std of daily return differences (ETP - replica)
    annual: pd.DataFrame           # year, etp, replica (with T-bill), replica_less_fee, gap
    returns: pd.DataFrame          # daily: etp, blend (excess), replica_tr
    worst_days: pd.DataFrame
    annualised_gap: float          # ETP annualised return - (replica less fee) annualised, over the whole window
    daily_corr_ex_spikes: float = math.nan
    weekly_corr_ex_spikes: float = math.nan
    excluded_days: tuple[str, ...] = ()
    # split at the VX daily-settlement time change of 2020-10-26 (see SETTLEMENT_CHANGE)
    daily_corr_before_change: float = math.nan
    daily_corr_since_change: float = math.nan
    weekly_corr_since_change: float = math.nan
    # excluding days on which this ETP and a sibling tracking the same index disagree (source-data errors)
    daily_corr_clean: float = math.nan
    weekly_corr_clean: float = math.nan
    flagged_days: int = 0

    @property
    def target(self) -> tuple[float, float]:
        return CORR_TARGETS[self.kind]

    def years_within(self, tol: float = ANNUAL_GAP_TARGET) -> tuple[int, int]:
        full = self.annual[self.annual["full_year"]]
        return int((full["gap"].abs() <= tol).sum()), len(full)


def _weekly(r: pd.Series) -> pd.Series:
    """Weekly (Friday-to-Friday) simple returns from daily simple returns."""
    return np.expm1(np.log1p(r).resample("W-FRI").sum())


def vx_blend_returns(panel, kind: str) -> pd.Series:
    """Daily excess returns of the constant-maturity blend on real VX settlements (engine.vixfutures)."""
    from engine.vixfutures import blend_returns

    key = f"blend_{kind}"
    memo = getattr(panel, "_memo", None)
    if memo is not None and key in memo:
        return memo[key]
    dates, expiries, settle = panel.vx_matrix()
    r = blend_returns(dates, expiries, settle, kind)
    if memo is not None:
        memo[key] = r
    return r


def tbill_daily_return(panel) -> pd.Series:
    """Interest on T-bill collateral for each day: the prior close's T-bill rate over the calendar days."""
    d = panel.daily
    rate = d["rate_tbill"].shift(1)
    days = pd.Series(d.index, index=d.index).diff().dt.days
    return np.expm1(rate * days / 365.0).fillna(0.0)


def compare_etp(panel, name: str, column: str, kind: str, fee: float, start=None, end=None,
                spike_days: Sequence[str] = ("2018-02-05", "2018-02-06")) -> EtpComparison | None:
    """One ETP against its blend over their common history (days where both have a return)."""
    d = panel.daily
    if column not in d:
        return None
    blend = vx_blend_returns(panel, kind)
    etp = d[column].pct_change(fill_method=None)
    tr = blend + tbill_daily_return(panel)
    df = pd.DataFrame({"etp": etp, "blend": blend, "replica_tr": tr}).dropna()
    if start is not None:
        df = df[df.index >= pd.Timestamp(start)]
    if end is not None:
        df = df[df.index <= pd.Timestamp(end)]
    if len(df) < 10:
        return None
    wk = pd.DataFrame({"etp": _weekly(df["etp"]), "blend": _weekly(df["blend"])}).dropna()
    diff = df["etp"] - df["replica_tr"]
    ex = df.drop(index=[pd.Timestamp(x) for x in spike_days if pd.Timestamp(x) in df.index])
    wk_ex = pd.DataFrame({"etp": _weekly(ex["etp"]), "blend": _weekly(ex["blend"])}).dropna()

    # annual returns side by side: each calendar year from the prior year's last common close
    rows = []
    lvl_e = (1.0 + df["etp"]).cumprod()
    lvl_r = (1.0 + df["replica_tr"]).cumprod()
    first_year, last_year = df.index[0].year, df.index[-1].year
    for y in range(first_year, last_year + 1):
        in_y = df.index[df.index.year == y]
        if not len(in_y):
            continue
        prev = df.index[df.index.year < y]
        e0 = lvl_e.loc[prev[-1]] if len(prev) else 1.0
        r0 = lvl_r.loc[prev[-1]] if len(prev) else 1.0
        a = prev[-1] if len(prev) else df.index[0] - pd.Timedelta(days=1)
        b = in_y[-1]
        re = lvl_e.loc[b] / e0 - 1.0
        rr = lvl_r.loc[b] / r0 - 1.0
        yf = (b - a).days / 365.25
        rf = (1.0 + rr) * (1.0 - fee) ** yf - 1.0
        full = bool(len(prev)) and (b.month == 12 and b.day >= 24)
        rows.append({"year": y, "start": a.date(), "end": b.date(), "etp": re, "replica": rr, "replica_less_fee": rf,
                     "gap": re - rf, "full_year": full})
    annual = pd.DataFrame(rows)
    years = (df.index[-1] - df.index[0]).days / 365.25 + 1 / 252
    ann_e = lvl_e.iloc[-1] ** (1 / years) - 1
    ann_rf = (lvl_r.iloc[-1] * (1 - fee) ** years) ** (1 / years) - 1
    worst = df.assign(diff=diff).reindex(diff.abs().sort_values(ascending=False).index).head(10)
    pre, post = df.loc[:SETTLEMENT_CHANGE - pd.Timedelta(days=1)], df.loc[SETTLEMENT_CHANGE:]
    wk_post = pd.DataFrame({"etp": _weekly(post["etp"]), "blend": _weekly(post["blend"])}).dropna()
    corr = lambda a: float(a["etp"].corr(a["blend"])) if len(a) > 20 else math.nan
    return EtpComparison(
        name=name, column=column, kind=kind, fee=fee, start=df.index[0], end=df.index[-1], days=len(df),
        daily_corr=float(df["etp"].corr(df["blend"])), weekly_corr=float(wk["etp"].corr(wk["blend"])),
        tracking_error=float(diff.std() * math.sqrt(252)), annual=annual, returns=df, worst_days=worst,
        annualised_gap=float(ann_e - ann_rf),
        daily_corr_ex_spikes=float(ex["etp"].corr(ex["blend"])), weekly_corr_ex_spikes=float(wk_ex["etp"].corr(wk_ex["blend"])),
        excluded_days=tuple(str(x) for x in spike_days),
        daily_corr_before_change=corr(pre), daily_corr_since_change=corr(post), weekly_corr_since_change=corr(wk_post),
    )


def clean_correlation(c: EtpComparison, flagged: pd.DatetimeIndex) -> EtpComparison:
    """Fill c.daily_corr_clean / weekly_corr_clean: correlations without the flagged days."""
    df = c.returns.drop(index=c.returns.index.intersection(flagged))
    wk = pd.DataFrame({"etp": _weekly(df["etp"]), "blend": _weekly(df["blend"])}).dropna()
    c.daily_corr_clean = float(df["etp"].corr(df["blend"]))
    c.weekly_corr_clean = float(wk["etp"].corr(wk["blend"]))
    c.flagged_days = int(len(c.returns) - len(df))
    return c


def etp_comparisons(panel, start=None, end=None) -> list[EtpComparison]:
    """Every ETP of ETP_SPECS against its blend. VXX (series B) also gets correlations without the days on which
    it and VIXY (same index, same close) disagree by more than 4 % (etp_crosscheck: source-data errors)."""
    out = []
    flagged = etp_crosscheck(panel).index
    for name, col, kind, fee in ETP_SPECS:
        c = compare_etp(panel, name, col, kind, fee, start, end)
        if c is not None:
            if col == "vxx_close":
                clean_correlation(c, flagged)
            out.append(c)
    return out


def etp_crosscheck(panel, a: str = "vxx_close", b: str = "vixy_close", threshold: float = 0.04) -> pd.DataFrame:
    """Days on which two ETPs that track the same index (VXX and VIXY both track the S&P 500 VIX Short-Term
    Futures index) disagree by more than `threshold` in daily return: with the same 4:00 pm close and the same
    index, such gaps point to errors in one of the price files, not to the replica."""
    d = panel.daily
    ra = d[a].pct_change(fill_method=None)
    rb = d[b].pct_change(fill_method=None)
    df = pd.DataFrame({a: ra, b: rb}).dropna()
    df["diff"] = df[a] - df[b]
    return df[df["diff"].abs() > threshold]


# ------------------------------------------------------------------------------------------------------------
# 2. SPX surface vs real chains
# ------------------------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------------------------
# 3. Strategy benchmark replicas (through adapters.sim.backtest.run_backtest)
# ------------------------------------------------------------------------------------------------------------
REPLICA_NOTIONAL = 1e8
# Cboe's published VXTH and S&P 500 (total return) quarterly figures quoted in issue #4.
VXTH_PUBLISHED = {"2008Q4": (0.002, -0.219), "2020Q1": (0.549, -0.196)}
VXTH_TOLERANCE = {"2008Q4": 0.03, "2020Q1": 0.08}


def replica_config(pricing: PricingParams | None = None, start="2006-01-01", end="2025-12-31",
                   initial_equity: float = REPLICA_NOTIONAL):
    """RunConfig for a benchmark replica: no condor/hedge section, fills at mid without costs."""
    from config.settings import RunConfig
    from strategies.benchmarks import replica_execution

    cfg = RunConfig.model_validate({"name": "benchmark-replica", "condor": None, "hedge": None,
                                    "run": {"start": str(pd.Timestamp(start).date()), "end": str(pd.Timestamp(end).date()),
                                            "initial_equity": initial_equity}})
    cfg.execution = replica_execution()
    if pricing is not None:
        cfg.pricing = pricing
    cfg.source = "<benchmark replica>"
    return cfg


def run_cndr(panel, pricing: PricingParams | None = None, start="2006-01-01", end="2025-12-31"):
    """The CNDR replica through run_backtest. Returns (BacktestResult, CNDRReplica)."""
    from adapters.sim.backtest import run_backtest
    from strategies.benchmarks import CNDRReplica

    strat = CNDRReplica()
    res = run_backtest(replica_config(pricing, start, end), panel, strategies=[strat])
    return res, strat


def run_vxth(panel, pricing: PricingParams | None = None, start="2006-01-01", end="2025-12-31", params=None):
    """The VXTH replica through run_backtest, in an account of exactly its notional (it holds SPXTR shares and VIX
    calls, so the account equity is the index: see strategies.benchmarks.vxth). Returns (BacktestResult, VXTHReplica)."""
    from adapters.sim.backtest import run_backtest
    from strategies.benchmarks import VXTHParams, VXTHReplica

    p = params or VXTHParams(notional=REPLICA_NOTIONAL)
    strat = VXTHReplica(p)
    res = run_backtest(replica_config(pricing, start, end, initial_equity=p.notional), panel, strategies=[strat])
    return res, strat


@dataclass
class CndrStats:
    index: pd.Series
    max_drawdown: float
    dd_peak: str
    dd_trough: str
    dd_recovery: str
    volatility: float
    cagr: float
    january_levels: pd.Series
    annual_returns: pd.Series
    rolls: pd.DataFrame
    trades: pd.DataFrame
    rejections: int
    dd_window: tuple[str, str] = ("2006-01-01", "2019-12-31")


def cndr_stats(result, strat, dd_window=("2006-01-01", "2019-12-31")) -> CndrStats:
    from engine.metrics import cagr, max_drawdown, volatility

    eq = result.equity["equity"]
    idx = 100.0 * eq / eq.iloc[0]
    w = idx.loc[dd_window[0]:dd_window[1]]
    dd = max_drawdown(w)
    fmt = lambda t: "" if t is None else pd.Timestamp(t).strftime("%Y-%m-%d")
    jan = idx.groupby([idx.index.year]).apply(lambda s: s[s.index.month == 1].iloc[0] if (s.index.month == 1).any() else np.nan)
    jan.index.name = "year"
    yearly = idx.resample("YE").last()
    ann = yearly.pct_change()
    ann.iloc[0] = yearly.iloc[0] / idx.iloc[0] - 1.0
    ann.index = ann.index.year
    return CndrStats(index=idx, max_drawdown=dd.max_drawdown, dd_peak=fmt(dd.peak), dd_trough=fmt(dd.trough),
                     dd_recovery=fmt(dd.recovery), volatility=volatility(idx), cagr=cagr(idx), january_levels=jan,
                     annual_returns=ann, rolls=pd.DataFrame(strat.rolls), trades=pd.DataFrame(strat.trades),
                     rejections=len(result.rejections), dd_window=dd_window)


def vxth_quarterly(strat) -> pd.DataFrame:
    from strategies.benchmarks.vxth import quarterly_returns

    f = strat.frame()
    out = pd.DataFrame({"vxth": quarterly_returns(f["index"]), "spx_tr": quarterly_returns(f["spx_tr"])})
    out["hedge_contribution"] = out["vxth"] - out["spx_tr"]
    pub_v = {k: v[0] for k, v in VXTH_PUBLISHED.items()}
    pub_s = {k: v[1] for k, v in VXTH_PUBLISHED.items()}
    out["vxth_published"] = [pub_v.get(str(q), np.nan) for q in out.index]
    out["spx_tr_published"] = [pub_s.get(str(q), np.nan) for q in out.index]
    out.index.name = "quarter"
    return out


def payoff_quarters(quarterly: pd.DataFrame, threshold: float = 0.03) -> list[str]:
    """Quarters in which the calls added more than `threshold` to the return (where the vol assumption bites)."""
    return [str(q) for q in quarterly.index[quarterly["hedge_contribution"] > threshold]]


@dataclass
class VxthSensitivity:
    table: pd.DataFrame          # rows: scenario, columns: quarters (returns)
    scenarios: list[dict]


def vxth_sensitivity(panel, pricing: PricingParams, quarters: Sequence[str], start="2006-01-01", end="2025-12-31",
                     atm_scales: Sequence[float] = (0.8, 1.0, 1.2, 1.4), phases: Sequence[str] = ("open", "close")
                     ) -> VxthSensitivity:
    """Re-run the VXTH replica with the VIX-option ATM vol scaled (atm_ratio x scale) and with the calls bought
    at the open or the close snapshot of the roll day; report the chosen quarters' returns for each scenario."""
    from engine.events import Phase
    from strategies.benchmarks import VXTHParams

    base = pricing.vix_option_params()
    rows, scen = [], []
    for phase in phases:
        for sc in atm_scales:
            vo = dict(pricing.vix_options)
            vo["atm_ratio"] = base.atm_ratio * sc
            pr = pricing.model_copy(update={"vix_options": vo})
            _, strat = run_vxth(panel, pr, start, end, VXTHParams(notional=REPLICA_NOTIONAL, buy_phase=Phase(phase)))
            q = vxth_quarterly(strat)
            label = f"atm_ratio {vo['atm_ratio']:.3f} (x{sc:g}), calls bought at the {phase}"
            row = {"scenario": label, "atm_scale": sc, "buy_phase": phase, "atm_ratio": vo["atm_ratio"]}
            for qq in quarters:
                row[qq] = float(q.loc[pd.Period(qq), "vxth"]) if pd.Period(qq) in q.index else np.nan
            rows.append(row)
            scen.append({"label": label, "quarterly": q})
    return VxthSensitivity(pd.DataFrame(rows), scen)


def vx_weight_bracket_check(panel, strat) -> pd.DataFrame:
    """For each VXTH roll: the call weight from the VX level the replica saw (prior settlement, open snapshot)
    vs the weight from the real opening price of the same contract that day (panel.vx 'open')."""
    from strategies.benchmarks import vix_call_weight

    vx = panel.vx
    rows = []
    for r in strat.rolls:
        d, e = pd.Timestamp(r["date"]), pd.Timestamp(r["expiry"])
        hit = vx[(vx["date"] == d) & (vx["expiry"] == e)]
        op = float(hit["open"].iloc[0]) if len(hit) else math.nan
        rows.append({"date": r["date"], "expiry": r["expiry"], "vx_seen": r["vx_level"], "vx_open": op,
                     "weight_seen": r["weight"], "weight_open": vix_call_weight(op) if math.isfinite(op) else math.nan})
    df = pd.DataFrame(rows)
    df["differs"] = df["weight_open"].notna() & (df["weight_seen"] != df["weight_open"])
    return df


# ------------------------------------------------------------------------------------------------------------
# S&P 500 total-return proxy
# ------------------------------------------------------------------------------------------------------------
# S&P Dow Jones Indices' published calendar-year S&P 500 total returns.
PUBLISHED_SPX_TR = {
    2005: 0.0491, 2006: 0.1579, 2007: 0.0549, 2008: -0.3700, 2009: 0.2646, 2010: 0.1506, 2011: 0.0211,
    2012: 0.1600, 2013: 0.3239, 2014: 0.1369, 2015: 0.0138, 2016: 0.1196, 2017: 0.2183, 2018: -0.0438,
    2019: 0.3149, 2020: 0.1840, 2021: 0.2871, 2022: -0.1811, 2023: 0.2629, 2024: 0.2502, 2025: 0.1788,
}


def _year_prices(panel, year: int) -> tuple[np.ndarray, np.ndarray]:
    c = panel.daily["spx_close"].dropna()
    prev = c[c.index.year < year]
    s = pd.concat([prev.iloc[-1:], c[c.index.year == year]])
    days = np.diff(s.index.to_numpy().astype("datetime64[D]").astype(np.int64))
    return s.to_numpy(), days


def derive_dividend_points(panel, published: dict[int, float] | None = None) -> dict[int, float]:
    """Dividend points per calendar year that, accrued evenly per calendar day on our SPX closes, reproduce the
    published annual total return (how engine.dividends.SPX_DIVIDEND_POINTS was made)."""
    from scipy.optimize import brentq

    out = {}
    for y, tr in (published or PUBLISHED_SPX_TR).items():
        P, d = _year_prices(panel, y)
        def excess(D: float, P=P, d=d, tr=tr) -> float:
            return float(np.prod((P[1:] + D * d / 365.0) / P[:-1]) - 1.0 - tr)

        out[y] = round(brentq(excess, 0.0, 500.0), 2)
    return out


def spx_tr_annual(panel, dividends: dict[int, float] | None = None) -> pd.Series:
    """Calendar-year returns of the strategies' S&P 500 total-return proxy (SPXTotalReturn) on our closes."""
    from strategies.benchmarks import SPXTotalReturn

    tr = SPXTotalReturn(dividends)
    c = panel.daily["spx_close"].dropna()
    c = c[c.index >= pd.Timestamp("2004-12-01")]
    lv = pd.Series([tr.close(d.date(), p) for d, p in c.items()], index=c.index)
    y = lv.resample("YE").last()
    r = y.pct_change().dropna()
    r.index = r.index.year
    return r
