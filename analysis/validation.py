"""`alvh validate` as an analysis: every fidelity check on one window, and the acceptance figures of issues #4 and #9.

``run_validation`` runs the ETP tracking (analysis.etp_tracking), the SPX surface errors on every real SPX chain
(and the SPY smile shapes; analysis.spx_surface), the 30-day variance swap against the VIX on every day of the
window, the VIX-option smile against the three VIX chains (analysis.vix_options), the Feb 2018 condor check
(analysis.condor_check) and the CNDR/VXTH replicas (analysis.replicas); ``acceptance`` turns them into met/short
rows. analysis.validation_plots draws them and analysis.validation_report writes the tables, report and summary.
"""
from __future__ import annotations

import math
import time
import tomllib
from dataclasses import dataclass, field
from functools import partial

import pandas as pd

from analysis import chain_level, condor_check, etp_tracking, replicas, spx_surface, vix_options
from analysis.tasks import run_forked
from config.settings import CONFIG_DIR, deep_merge, load_config
from engine.marketmodel import PricingParams

CALIBRATED_TOML = CONFIG_DIR / "calibrated.toml"
FULL_START, FULL_END = "2006-01-01", "2025-12-31"


def pricing_for(config: str | None) -> tuple[PricingParams, str]:
    """--config's pricing section; without it, the defaults with config/calibrated.toml's [pricing] on top."""
    if config:
        return load_config(config).pricing, str(config)
    if CALIBRATED_TOML.exists():
        data = tomllib.loads(CALIBRATED_TOML.read_text())
        base = PricingParams().model_dump()
        return PricingParams.model_validate(deep_merge(base, data.get("pricing", {}))), str(CALIBRATED_TOML)
    return PricingParams(), "<defaults>"


@dataclass
class Validation:
    start: str
    end: str
    pricing_source: str
    etps: list
    crosscheck: pd.DataFrame
    surface_errors: pd.DataFrame         # every OTM option of every SPX/SPY chain date, annotated (spx_surface)
    surface_dates: pd.DataFrame          # spx_surface.per_date
    chain_levels: pd.DataFrame           # chain_level.level_table: each chain's own level vs the index closes
    surface_buckets: pd.DataFrame        # per date, side, delta and DTE bucket
    spy_shape: pd.DataFrame              # SPY: smile-shape error per date
    vs_vix: pd.Series                    # |30-day variance swap - VIX| (vol pts) on every day of the window
    vix_options: pd.DataFrame            # per chain (vix_options.per_chain)
    vix_expiries: pd.DataFrame
    vix_errors: pd.DataFrame
    condors: condor_check.CondorCheck | None
    cndr: replicas.CndrStats | None
    vxth_quarterly: pd.DataFrame | None
    vxth_strategy: object
    vxth_weights: pd.DataFrame | None
    sensitivity: replicas.VxthSensitivity | None
    acceptance: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def variance_swap_gaps(panel, pricing: PricingParams, start: str, end: str) -> pd.Series:
    """|model 30-day variance-swap vol - VIX| in vol points at every close snapshot of the window (issue #9
    acceptance 2), the surface built exactly as replay builds it."""
    import math

    from adapters.sim.replay import HistoricalReplay
    from engine.events import Phase
    from engine.marketmodel import MarketModel

    replay = HistoricalReplay(panel, start, end)
    out = {}
    for i in range(replay._first, replay._last):
        close = next(x for x in replay.snapshots_for(i) if x.phase is Phase.CLOSE)
        if math.isfinite(close.quotes.vix):
            surf = MarketModel(close, pricing).surface
            vs = getattr(surf, "variance_swap_vol", None)
            if vs is not None:
                out[close.date] = abs(vs(30 / 365) * 100.0 - close.quotes.vix)
    return pd.Series(out, dtype=float, name="vs_minus_vix")


def _window(args_start, args_end, lo=FULL_START, hi=FULL_END) -> tuple[str, str]:
    s = pd.Timestamp(args_start or lo)
    e = pd.Timestamp(args_end or hi)
    return str(s.date()), str(e.date())


def run_validation(panel, data_dir, start=None, end=None, pricing=None, pricing_source="<defaults>",
                   sensitivity: bool = True) -> Validation:
    """Every check, in two independent halves run side by side where there are two cores (analysis.tasks.run_forked):
    the real option chains (parsing every file, the SPX surface, chain levels, VIX options, the Feb 2018 condors;
    ~18 s) and the replays (ETP blends, variance swap vs VIX, CNDR, VXTH and its sensitivity; ~15 s)."""
    t0 = time.perf_counter()
    pricing = pricing or PricingParams()
    s, e = _window(start, end)
    chains, replays = run_forked([partial(_chain_checks, panel, data_dir, pricing),
                                  partial(_replay_checks, panel, pricing, start, s, e, sensitivity)])
    v = Validation(start=s, end=e, pricing_source=pricing_source, **chains, **replays)
    v.acceptance = acceptance(v)
    v.seconds = time.perf_counter() - t0
    return v


def _chain_checks(panel, data_dir, pricing: PricingParams) -> dict:
    from adapters.data.chain_layouts import list_option_files, load_option_file
    from analysis.chain_iv import market_table
    from analysis.surface_fit import FIT_DATES

    for path in list_option_files(data_dir):   # every option file parsed first: a bad one stops the run in seconds
        load_option_file(path)
    market = market_table(data_dir)
    errs = spx_surface.all_errors(market, panel, pricing, FIT_DATES)
    spx = errs[errs["und"] == "SPX"]
    dates = spx_surface.per_date(spx)
    levels = chain_level.chain_levels(data_dir, panel)
    matched = spx_surface.all_errors(market[market["und"] == "SPX"], panel, pricing, FIT_DATES,
                                     levels=dict(zip(levels["date"], levels["factor"])))
    level_t = chain_level.level_table(levels, spx, matched)
    buckets = spx_surface.bucket_table(spx[spx["abs_delta"].between(*spx_surface.DELTA_RANGE)],
                                       ("date", "sample", "side", "delta_bucket", "dte_bucket"))
    spy = spx_surface.shape_errors(errs[errs["und"] == "SPY"])
    spy = spy[spy["abs_delta"].between(*spx_surface.DELTA_RANGE)]
    spy_t = (spy.groupby("date").agg(n=("iv_err", "size"), median_abs=("iv_err", lambda x: x.abs().median()),
                                     bias=("iv_err", "median")).reset_index() if len(spy) else pd.DataFrame())
    vmk = vix_options.load_vix_market(data_dir, panel)
    verr = vix_options.errors(pricing.vix_option_params(), vmk)
    vix_t = vix_chain_table(vmk, verr, chain_level.vix_levels(data_dir, panel), pricing)
    condors = condor_check.run_condor_check(data_dir, panel, pricing)
    return {"surface_errors": errs, "surface_dates": dates, "chain_levels": level_t, "surface_buckets": buckets,
            "spy_shape": spy_t, "vix_options": vix_t, "vix_expiries": vix_options.per_expiry(verr), "vix_errors": verr,
            "condors": condors}


def _replay_checks(panel, pricing: PricingParams, start, s, e, sensitivity: bool) -> dict:
    etps = etp_tracking.etp_comparisons(panel, start if start else None, e)
    cross = etp_tracking.etp_crosscheck(panel)
    gaps = variance_swap_gaps(panel, pricing, s, e)
    res, cndr = replicas.run_cndr(panel, pricing, s, e)
    cstats = replicas.cndr_stats(res, cndr)
    _, vx = replicas.run_vxth(panel, pricing, s, e)
    q = replicas.vxth_quarterly(vx)
    weights = replicas.vx_weight_bracket_check(panel, vx)
    sens = None
    if sensitivity:
        quarters = sorted(set(replicas.payoff_quarters(q)) | {k for k in replicas.VXTH_PUBLISHED if pd.Period(k) in q.index})
        if quarters:
            sens = replicas.vxth_sensitivity(panel, pricing, quarters, s, e)
    return {"etps": etps, "crosscheck": cross, "vs_vix": gaps, "cndr": cstats, "vxth_quarterly": q,
            "vxth_strategy": vx, "vxth_weights": weights, "sensitivity": sens}


def vix_chain_table(vmk: pd.DataFrame, verr: pd.DataFrame, levels: pd.DataFrame, pricing: PricingParams) -> pd.DataFrame:
    """vix_options.per_chain, with each chain's own 30-day level (analysis.chain_level.vix_levels) and the calls'
    median |error| when the chain's VVIX is scaled to that level (a diagnostic, as for the SPX chains)."""
    factor = vmk["date"].map(dict(zip(levels["date"], levels["factor"]))).fillna(1.0)
    matched = vix_options.per_chain(vix_options.errors(pricing.vix_option_params(), vmk.assign(vvix=vmk["vvix"] * factor)))
    t = vix_options.per_chain(verr).merge(levels[["date", "chain_level", "factor"]], on="date", how="left")
    t["calls_median_abs_matched"] = t["date"].map(dict(zip(matched["date"], matched["calls_median_abs"])))
    t.loc[t["factor"].isna(), "calls_median_abs_matched"] = math.nan
    return t


def acceptance(v: Validation) -> list[dict]:
    rows = []
    for c in v.etps:
        dt_, wk_ = c.target
        rows.append({"check": f"{etp_tracking.BLEND_NAMES[c.kind]} vs {c.name}: daily return correlation", "value": c.daily_corr,
                     "target": f">= {dt_}", "met": c.daily_corr >= dt_, "window": f"{c.start.date()}..{c.end.date()}"})
        rows.append({"check": f"{etp_tracking.BLEND_NAMES[c.kind]} vs {c.name}: weekly return correlation", "value": c.weekly_corr,
                     "target": f">= {wk_}", "met": c.weekly_corr >= wk_, "window": f"{c.start.date()}..{c.end.date()}"})
        if math.isfinite(c.daily_corr_clean):
            rows.append({"check": f"{etp_tracking.BLEND_NAMES[c.kind]} vs {c.name}: daily / weekly correlation without the "
                                  f"{c.flagged_days} days VXX and VIXY disagree by > 4 % (source-data errors)",
                         "value": f"{c.daily_corr_clean:.4f} / {c.weekly_corr_clean:.4f}", "target": f">= {dt_} / {wk_}",
                         "met": c.daily_corr_clean >= dt_ and c.weekly_corr_clean >= wk_, "window": "informational"})
        n_ok, n = c.years_within()
        rows.append({"check": f"{c.name}: full years with |ETP - (replica - fee)| <= 1 pt", "value": f"{n_ok}/{n}",
                     "target": "all", "met": n > 0 and n_ok == n,
                     "window": f"annualised gap over the window {c.annualised_gap * 100:+.2f} pt/yr"})
    d = v.surface_dates
    if len(d):
        calm = d[d["vix"] < spx_surface.CALM_VIX]
        rows.append({"check": "SPX surface, every chain date with VIX < 20: median |IV error| <= 1.0 vol pt (3-50 delta, 7-90 DTE)",
                     "value": f"{int(calm['met'].sum())}/{len(calm)}", "target": "all", "met": bool(calm["met"].all()),
                     "window": "short: " + (", ".join(f"{r.date} {r.median_abs:.2f} ({r.sample})" for r in calm[~calm["met"].astype(bool)].itertuples()) or "none")})
        for r in d[d["vix"] >= spx_surface.STRESS_VIX].itertuples():
            rows.append({"check": f"SPX surface {r.date} (VIX {r.vix:.1f}, {r.sample} of sample): median |IV error| (vol pts)",
                         "value": r.median_abs, "target": "<= 2.0", "met": r.median_abs <= 2.0, "window": f"n {r.n}"})
        for r in d[d["date"].between("2018-02-05", "2018-02-09")].itertuples():
            rows.append({"check": f"SPX surface {r.date}: 3-10 delta puts, median |IV error| (vol pts)", "value": r.put_3_10_abs,
                         "target": "<= 3.0", "met": r.put_3_10_abs <= 3.0, "window": f"{r.sample} of sample"})
        lv = v.chain_levels[v.chain_levels["factor"].notna() & v.chain_levels["met_matched"].notna()]
        if len(lv):
            miss = lv[~lv["met_matched"].astype(bool)]
            rows.append({"check": ("SPX surface at each chain's own level (surface level scaled to the chain's variance "
                                   "swap; diagnostic, not replay): dates within their target"),
                         "value": f"{len(lv) - len(miss)}/{len(lv)}", "target": "informational", "met": None,
                         "window": "over: " + (", ".join(f"{r.date} {r.median_abs_matched:.2f}" for r in miss.itertuples()) or "none")})
        for r in v.chain_levels[v.chain_levels["date"].between("2018-02-05", "2018-02-09")].itertuples():
            rows.append({"check": f"SPX surface {r.date}: 3-10 delta puts level-matched (vol pts) / share priced within the quote",
                         "value": f"{r.put_3_10_matched:.2f} / {r.put_3_10_inside_quote:.2f}", "target": "informational",
                         "met": None, "window": f"chain level {r.gap:+.2f} vol pt vs the indices"})
        calm_fig = spx_surface.calm_subset_median(v.surface_errors)
        rows.append({"check": "SPX surface calm subset of issue #4: 10-30 delta, 20-60 DTE, pooled (vol pts)", "value": calm_fig,
                     "target": "<= 0.8", "met": calm_fig <= 0.8, "window": ", ".join(spx_surface.CALM_SUBSET_DATES)})
    if len(v.spy_shape):
        rows.append({"check": "SPY smile shape (IV - own ATM IV): median |error| per date (vol pts)",
                     "value": " / ".join(f"{x:.2f}" for x in v.spy_shape["median_abs"]), "target": "informational",
                     "met": None, "window": ", ".join(str(pd.Timestamp(x).date()) for x in v.spy_shape["date"])})
    if len(v.vs_vix):
        share = float((v.vs_vix <= 0.25).mean())
        rows.append({"check": "30-day variance swap of the SPX surface vs VIX: days within 0.25 vol pt", "value": share,
                     "target": ">= 0.99", "met": share >= 0.99,
                     "window": f"{len(v.vs_vix)} days, max gap {v.vs_vix.max():.3f} vol pt"})
    for r in v.vix_options.itertuples():
        rows.append({"check": f"VIX options {r.date}: median |IV error|, 10-50 delta calls, 14-120 DTE (vol pts)",
                     "value": r.calls_median_abs, "target": f"<= {vix_options.TARGET:g}", "met": bool(r.met),
                     "window": f"VVIX {r.vvix:.1f}, bias {r.calls_bias:+.2f}"})
    lv = v.vix_options[v.vix_options["factor"].notna()] if "factor" in v.vix_options else v.vix_options.iloc[:0]
    if len(lv):
        rows.append({"check": ("VIX options with each chain's VVIX scaled to the chain's own 30-day level (diagnostic, "
                               "not replay): calls median |IV error| per chain (vol pts)"),
                     "value": " / ".join(f"{r.date} {r.calls_median_abs_matched:.2f}" for r in lv.itertuples()),
                     "target": "informational", "met": None,
                     "window": ", ".join(f"{r.date} level {r.chain_level:.1f} vs VVIX {r.vvix:.2f}" for r in lv.itertuples())})
    if v.condors is not None:
        for r in v.condors.acceptance():
            rows.append({"window": "2018-01-02..2018-02-28 (vendor EOD quotes)", **r})
    q = v.vxth_quarterly
    if q is not None:
        for k, (pub, spx_pub) in replicas.VXTH_PUBLISHED.items():
            per = pd.Period(k)
            if per not in q.index:
                continue
            val = float(q.loc[per, "vxth"])
            tol = replicas.VXTH_TOLERANCE[k]
            rows.append({"check": f"VXTH replica {k} (published {pub * 100:+.1f}%)", "value": val,
                         "target": f"within {tol * 100:.0f} pts", "met": abs(val - pub) <= tol,
                         "window": f"S&P 500 TR replica {q.loc[per, 'spx_tr'] * 100:+.1f}% (published {spx_pub * 100:+.1f}%)"})
    return rows
