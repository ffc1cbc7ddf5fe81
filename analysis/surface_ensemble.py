"""The surface ensemble (issue 13 item 1): pricing variants the fidelity data cannot reject, chosen without the verdict.

Candidates (each one variant of the default pricing; SPX variants keep the default VIX-option smile and vice versa):
- SPX, parameter uncertainty: the regime surface refitted with each fit date left out (jackknife over
  surface_fit.FIT_DATES, 12 refits);
- SPX, recalibration: fitted on the calm fit dates only (VIX < 20), on the fit dates plus every stressed date, on
  every SPX chain date;
- SPX, the older index surface (spx_model "index"): the 2022-23 skew of config/condor.toml and the SkewParams
  defaults;
- VIX options: the smile fitted with each chain left out and on each chain alone; the older power law fitted on
  VX settlements (term_beta 2007-2015 and 2016-2025).

Rejection gate (docs/fidelity.md, section 6; fixed before any verdict ran over the members): a candidate is judged on
the dates (chains) it was not fitted on, against the default on the same dates. SPX, per regime (calm VIX < 20,
stressed VIX >= 25): every held-out date's median |IV error| within the fidelity target (1.0 / 2.0 vol pt) or
within TOL of the default's, and every side x delta bucket's median |error| pooled over the held-out dates of the
regime within TOL of the default's; TOL is a quarter of the target (0.25 calm, 0.5 stressed). A regime with no
held-out date is judged on its in-sample dates, and the table says so. VIX options: on every chain it was not
fitted on, the median |error| of 10-50 delta calls within 3 vol pt or within VIX_TOL (0.75) of the default's
error on that chain when the default is fitted without it.

Selection: all kept candidates would be too many replays, so the ensemble is the default, the kept SPX candidates
with the lowest and highest 30-day 10-delta put vol in a stressed state (the medians of the closes with VIX 33-37),
and the kept VIX candidates with the lowest and highest vol of a 150-day 30-delta VIX call (the hedge's) at that
state's VVIX. Neither statistic involves a replay.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from analysis import spx_surface, surface_fit, vix_options
from analysis.config_files import toml_value
from engine.marketmodel import TERM_DAYS, PricingParams
from engine.regime_surface import RegimeParams, RegimeSurface, SurfaceState
from engine.volsurface import SkewParams, SpxSurface, VixOptionParams, VixOptionSurface

TARGET = {"calm": 1.0, "stress": 2.0}                 # issue #9's per-date targets (spx_surface.target_for)
TOL = {r: t / 4.0 for r, t in TARGET.items()}         # a quarter of the target
VIX_TOL = vix_options.TARGET / 4.0
# The stressed state of the spanning statistic: medians of the 180 closes 2004-2025 with VIX 33-37.
STRESS_STATE = SurfaceState(vix=34.6, vix9d=35.0, vix3m=34.4, vix6m=34.5, vvix=111.2, skew=118.3)
STAT_DTE = 30
VIX_STAT_DTE, VIX_STAT_DELTA = 150, 0.30              # the ALVH hedge's VIX call (strategies/alvh/hedge.py)
# The older VIX-option calibration (before VIX option quotes): power law fitted on VX settlements and VVIX,
# ATM = VVIX / 1.046, term_beta 0.234 on 2007-2015 and 0.253 on the same fit over 2016-2025 (git 608a285).
POWER_LAW = {"kappa": 0.0, "atm_ratio": 0.9562, "skew": 0.80, "skew_vol": 0.0, "long_vol_contango": 0.0}
POWER_LAW_BETAS = {"2007-2015": 0.234, "2016-2025": 0.253}
INDEX_DEFAULT_DATES = ("2022-02-04", "2022-06-10", "2023-02-07", "2023-08-18", "2023-09-14", "2024-01-05")
INDEX_CONDOR_DATES = ("2022-02-04", "2022-06-10", "2023-02-07")


@dataclass(frozen=True)
class Candidate:
    name: str
    what: str                      # one line: what it is
    kind: str                      # "spx" or "vix"
    fit_on: tuple[str, ...]        # the SPX dates or VIX chains its values were fitted on (() = none of them)
    pricing: dict                  # member.pricing: overrides merged over the run config's [pricing]

    def pricing_params(self, base: PricingParams | None = None) -> PricingParams:
        from config.settings import deep_merge

        return PricingParams.model_validate(deep_merge((base or PricingParams()).model_dump(), self.pricing))


@dataclass
class Judgement:
    candidate: Candidate
    kept: bool
    reason: str                                   # why rejected (the first failed check), or "" when kept
    summary: dict[str, float | str] = field(default_factory=dict)   # errors in / out of sample, calm / stressed
    stat: float = math.nan                        # the spanning statistic (vol points)


@dataclass
class Ensemble:
    judged: list[Judgement]
    members: list[Judgement]                      # the default first
    data_note: str


# ------------------------------------------------------------------------------------------------------------
# candidates
# ------------------------------------------------------------------------------------------------------------
def _diff(p: RegimeParams, base: RegimeParams) -> dict[str, float]:
    return {n: getattr(p, n) for n in surface_fit.SHAPE_FIELDS if getattr(p, n) != getattr(base, n)}


def _regime(name: str, what: str, p: RegimeParams, fit_on: Sequence[str]) -> Candidate:
    return Candidate(name, what, "spx", tuple(fit_on), {"spx_model": "regime", "spx_surface": _diff(p, RegimeParams())})


def default_candidate() -> Candidate:
    return Candidate("regime", "the default fit", "spx", surface_fit.FIT_DATES, {"spx_model": "regime"})


def spx_candidates(data: surface_fit.FitData, vix: pd.Series, condor_skew: dict[str, float]) -> list[Candidate]:
    """Every SPX candidate but the default: 12 jackknife refits, 3 recalibrations, 2 index surfaces (~2 min)."""
    fit = surface_fit.fit_surface
    out = []
    for d in surface_fit.FIT_DATES:
        rest = [x for x in surface_fit.FIT_DATES if x != d]
        out.append(_regime(f"regime-jk-{d}", f"refit without {d}", fit(data, rest).params, rest))
    level = {str(pd.Timestamp(d).date()): float(vix[d]) for d in data.states}
    calm = [d for d in surface_fit.FIT_DATES if level[d] < spx_surface.CALM_VIX]
    out.append(_regime("regime-calm", "refit on the calm fit dates only", fit(data, calm).params, calm))
    stressed = sorted({*surface_fit.FIT_DATES, *(d for d, v in level.items() if v >= spx_surface.STRESS_VIX)})
    out.append(_regime("regime-stress", "refit on the fit dates and every stressed date", fit(data, stressed).params,
                       stressed))
    every = sorted(level)
    out.append(_regime("regime-all", "refit on every SPX chain date", fit(data, every).params, every))
    out.append(Candidate("index-condor", "the older index surface, skew fitted on three 2022-23 chains", "spx",
                         INDEX_CONDOR_DATES, {"spx_model": "index", "spx_skew": dict(condor_skew)}))
    out.append(Candidate("index-defaults", "the older index surface with the SkewParams defaults", "spx",
                         INDEX_DEFAULT_DATES, {"spx_model": "index", "spx_skew": asdict(SkewParams())}))
    return out


def vix_candidates(mk: pd.DataFrame, base: VixOptionParams) -> list[Candidate]:
    chains = tuple(vix_options.CHAINS)
    fitted = vix_options.fitted_values
    out = []
    for d in chains:
        rest = [c for c in chains if c != d]
        out.append(Candidate(f"vixopt-loo-{d}", f"VIX-option smile refit without the {d} chain", "vix", tuple(rest),
                             {"vix_options": fitted(vix_options.fit_vix_options(mk, base, dates=rest))}))
    for d in chains:
        out.append(Candidate(f"vixopt-only-{d}", f"VIX-option smile fitted on the {d} chain alone", "vix", (d,),
                             {"vix_options": fitted(vix_options.fit_vix_options(mk, base, dates=[d]))}))
    for span, beta in POWER_LAW_BETAS.items():
        out.append(Candidate(f"vixopt-powerlaw-{span}", f"older power-law smile, term_beta fitted on VX {span}", "vix",
                             (), {"vix_options": {**POWER_LAW, "term_beta": beta}}))
    return out


# ------------------------------------------------------------------------------------------------------------
# the gate
# ------------------------------------------------------------------------------------------------------------
def regime_of(vix: float) -> str | None:
    return "calm" if vix < spx_surface.CALM_VIX else ("stress" if vix >= spx_surface.STRESS_VIX else None)


def _buckets(err: pd.DataFrame, dates: Sequence) -> pd.Series:
    e = err[err["date"].isin(dates) & err["abs_delta"].between(*spx_surface.DELTA_RANGE)].dropna(subset=["delta_bucket"])
    return e.groupby(["side", "delta_bucket"])["iv_err"].apply(lambda s: s.abs().median())


def judge_spx(c: Candidate, err: pd.DataFrame, ref: pd.DataFrame) -> tuple[bool, str, dict]:
    """The SPX gate (module docstring). err, ref: per-option errors of the candidate and the default."""
    per_c = spx_surface.per_date(err).set_index("date")
    per_r = spx_surface.per_date(ref).set_index("date")
    fit_on = set(c.fit_on)
    summary: dict[str, float | str] = {}
    failures = []
    for regime in ("stress", "calm"):           # stress first: the reason quotes the first two failures
        in_regime = [d for d in per_c.index if regime_of(per_c.at[d, "vix"]) == regime]
        held = [d for d in in_regime if d not in fit_on]
        judged_on, sample = (held, "held out") if held else (in_regime, "in sample")
        summary[f"{regime}_out"] = float(per_c.loc[held, "median_abs"].median()) if held else math.nan
        ins = [d for d in in_regime if d in fit_on]
        summary[f"{regime}_in"] = float(per_c.loc[ins, "median_abs"].median()) if ins else math.nan
        summary[f"{regime}_judged"] = sample
        tol, target = TOL[regime], TARGET[regime]
        for d in judged_on:
            mc, mr = per_c.at[d, "median_abs"], per_r.at[d, "median_abs"]
            if mc > max(target, mr + tol):
                failures.append(f"{d} ({regime}, {sample}) {mc:.2f} vol pt against {target:.1f} and the "
                                f"default's {mr:.2f}")
        ts = pd.to_datetime(judged_on)
        bc, br = _buckets(err, ts), _buckets(ref, ts)
        for key, v in bc.items():
            if key in br and v > br[key] + tol:
                failures.append(f"{regime} {key[1]} {key[0]}s pooled {v:.2f} vol pt against the default's {br[key]:.2f}")
    return not failures, "; ".join(failures[:2]), summary


def judge_vix(c: Candidate, mk: pd.DataFrame, loo_ref: dict[str, float], base: PricingParams) -> tuple[bool, str, dict]:
    """The VIX-option gate: on each chain it was not fitted on, calls' median |error| within 3 vol pt or within
    VIX_TOL of the default's held-out error on that chain (`loo_ref`). `base`: the run config's pricing."""
    tab = vix_options.per_chain(vix_options.errors(c.pricing_params(base).vix_option_params(), mk)).set_index("date")
    held = [d for d in tab.index if d not in c.fit_on]
    ins = [d for d in tab.index if d in c.fit_on]
    failures = [f"{d} chain {tab.at[d, 'calls_median_abs']:.2f} vol pt against the default's held-out {loo_ref[d]:.2f}"
                for d in held if tab.at[d, "calls_median_abs"] > max(vix_options.TARGET, loo_ref[d] + VIX_TOL)]
    summary = {"vix_out": float(tab.loc[held, "calls_median_abs"].median()) if held else math.nan,
               "vix_in": float(tab.loc[ins, "calls_median_abs"].median()) if ins else math.nan}
    return not failures, "; ".join(failures[:2]), summary


# ------------------------------------------------------------------------------------------------------------
# the spanning statistics
# ------------------------------------------------------------------------------------------------------------
def _strike_for_delta(delta_of, target: float, lo: float, hi: float) -> float:
    return float(brentq(lambda k: delta_of(k) - target, lo, hi, xtol=1e-8))


def stress_put_vol(pricing: PricingParams) -> float:
    """30-day 10-delta put vol (vol points) of the candidate's SPX surface in STRESS_STATE, spot 100."""
    s = STRESS_STATE
    if pricing.spx_model == "regime":
        surf = RegimeSurface(100.0, 0.0, 0.0, s, pricing.regime_params())
    else:
        pts = [(days / 365.0, getattr(s, name) / 100.0) for name, days in TERM_DAYS.items()]
        surf = SpxSurface(100.0, 0.0, 0.0, pts, pricing.skew())
    T = STAT_DTE / 365.0
    k = _strike_for_delta(lambda k: surf.delta1(k, T, False), -0.10, 20.0, 100.0)
    return float(surf.vol(k, T)) * 100.0


def stress_vix_call_vol(pricing: PricingParams) -> float:
    """Vol (points) of the 150-day 30-delta VIX call at STRESS_STATE's VVIX (forward 30)."""
    surf = VixOptionSurface(30.0, 0.0, STRESS_STATE.vvix, pricing.vix_option_params(), vix=STRESS_STATE.vix, front=30.0)
    T = VIX_STAT_DTE / 365.0
    k = _strike_for_delta(lambda k: float(surf.delta(k, T, True)), VIX_STAT_DELTA, 30.0, 300.0)
    return float(surf.vol(k, T)) * 100.0


def span(kept: list[Judgement]) -> list[Judgement]:
    """The kept candidates with the lowest and highest statistic (one if they coincide); ties go to the name."""
    if not kept:
        return []
    order = sorted(kept, key=lambda j: (j.stat, j.candidate.name))
    return [order[0]] if order[0] is order[-1] else [order[0], order[-1]]


# ------------------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------------------
def run_config_pricing() -> PricingParams:
    """The pricing of the default run config (config/condor.toml, which config/alvh.toml extends)."""
    from config.settings import CONFIG_DIR, load_config

    return load_config(CONFIG_DIR / "condor.toml").pricing


def build_ensemble(panel, data_dir, base: PricingParams) -> Ensemble:
    """Every candidate generated, judged and the members chosen; deterministic (about three minutes). `base`: the
    pricing the members are variants of (config/condor.toml's: its VIX-option smile is the fitted one, the engine's
    VixOptionParams defaults are not)."""
    from analysis.chain_iv import market_table

    market = market_table(data_dir, underlyings=("SPX",))
    data = surface_fit.build_fit_data(market, panel)
    vix = panel.daily["vix_close"]
    default = default_candidate()
    ref = surface_fit.surface_errors(RegimeParams(), data, vix)
    judged = [Judgement(default, True, "", judge_spx(default, ref, ref)[2])]
    for c in spx_candidates(data, vix, base.spx_skew):
        p = c.pricing_params(base)
        if p.spx_model == "regime":
            err = surface_fit.surface_errors(p.regime_params(), data, vix)
        else:
            err = spx_surface.all_errors(market, panel, p, c.fit_on)
        kept, why, summary = judge_spx(c, err, ref)
        judged.append(Judgement(c, kept, why, summary))

    mk = vix_options.load_vix_market(data_dir, panel)
    cands = vix_candidates(mk, base.vix_option_params())
    loo_ref = {}
    for c in cands[:len(vix_options.CHAINS)]:      # the leave-one-chain-out fits: the default's held-out errors
        held = next(d for d in vix_options.CHAINS if d not in c.fit_on)
        loo_ref[held] = float(vix_options.per_chain(vix_options.errors(c.pricing_params(base).vix_option_params(),
                                                                       mk[mk["date"] == held]))["calls_median_abs"].iloc[0])
    dv = Candidate("vixopt-default", "the default VIX-option fit", "vix", tuple(vix_options.CHAINS), {})
    default_vix = judge_vix(dv, mk, loo_ref, base)[2]
    judged[0].summary.update({**default_vix, "vix_out": float(np.median(list(loo_ref.values())))})
    for c in cands:
        kept, why, summary = judge_vix(c, mk, loo_ref, base)
        judged.append(Judgement(c, kept, why, summary))

    for j in judged:
        p = j.candidate.pricing_params(base)
        j.stat = stress_put_vol(p) if j.candidate.kind == "spx" else stress_vix_call_vol(p)
    judged[0].summary["vix_stat"] = stress_vix_call_vol(base)
    others = [j for j in judged[1:] if j.kept]
    members = [judged[0], *span([j for j in others if j.candidate.kind == "spx"]),
               *span([j for j in others if j.candidate.kind == "vix"])]
    note = f"{len(data.states)} SPX chain dates and {len(vix_options.CHAINS)} VIX option chains"
    return Ensemble(judged, members, note)


# ------------------------------------------------------------------------------------------------------------
# output
# ------------------------------------------------------------------------------------------------------------
RULE_DOC = "docs/fidelity.md section 6"


def _errors_text(j: Judgement) -> str:
    """Median over dates of the per-date median |IV error|, held-out dates (in-sample where none is held out)."""
    s = j.summary
    if j.candidate.kind == "vix":
        return f"VIX-option calls held-out error {s['vix_out']:.2f} vol pts"
    part = {r: (f"{s[r + '_out']:.2f}" if s[r + "_judged"] == "held out" else f"{s[r + '_in']:.2f} in sample")
            for r in ("calm", "stress")}
    return f"out-of-sample calm error {part['calm']}, stressed {part['stress']} vol pts"


def ensemble_toml(ens: Ensemble) -> str:
    lines = [f"# generated by `alvh calibrate --ensemble` on {ens.data_note}; rule: {RULE_DOC}; do not edit by hand"]
    for j in ens.members:
        c = j.candidate
        lines += ["", "[[member]]", f"name = {toml_value(c.name)}",
                  f"note = {toml_value(c.what + ', ' + _errors_text(j))}"]
        scalars = {k: v for k, v in c.pricing.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in c.pricing.items() if isinstance(v, dict) and v}
        if scalars or not tables:
            lines.append("[member.pricing]")
            lines += [f"{k} = {toml_value(v)}" for k, v in scalars.items()]
        for k, tab in tables.items():
            lines.append(f"[member.pricing.{k}]")
            lines += [f"{n} = {toml_value(v)}" for n, v in tab.items()]
    return "\n".join(lines) + "\n"


def table_rows(ens: Ensemble) -> pd.DataFrame:
    """One row per candidate: what it is, its errors, kept or rejected and why, the statistic, member or not."""
    names = {j.candidate.name for j in ens.members}
    rows = []
    for j in ens.judged:
        s = j.summary
        rows.append({"name": j.candidate.name, "kind": j.candidate.kind, "what": j.candidate.what,
                     "calm_in": s.get("calm_in", math.nan), "calm_out": s.get("calm_out", math.nan),
                     "stress_in": s.get("stress_in", math.nan), "stress_out": s.get("stress_out", math.nan),
                     "vix_in": s.get("vix_in", math.nan), "vix_out": s.get("vix_out", math.nan),
                     "stat": j.stat, "kept": j.kept, "member": j.candidate.name in names, "reason": j.reason})
    return pd.DataFrame(rows)


def format_report(ens: Ensemble) -> str:
    t = table_rows(ens)
    with pd.option_context("display.width", 250, "display.max_colwidth", 120):
        return (t.drop(columns=["what", "reason"]).round(3).to_string(index=False) + "\n\nrejected:\n"
                + "\n".join(f"  {r.name}: {r.reason}" for r in t.itertuples() if not r.kept))


def write_ensemble(ens: Ensemble, path) -> Path:
    path = Path(path)
    path.write_text(ensemble_toml(ens))
    return path
