"""The ALVH verdict: run the hedge and its baselines over the full history, cut the results into
volatility episodes, and say episode by episode whether the claimed 35-40% drawdown reduction held.

Pieces (each usable on its own):
- ``load_episodes``: config/episodes.toml -> named episodes, the auto-detection rule, the claim bands;
- ``detect_spikes``: spikes found by the documented rule (VIX > 25 and > 1.5x its trailing median);
- ``window_drawdown`` / ``reduction_pct`` / ``classify``: the per-episode arithmetic;
- ``standard_scenarios``: unhedged, ALVH under every budget reading, the same layers always on, VXTH,
  SPX puts - all on the same condor book and costs;
- ``run_task``: one backtest (in this process or a pool/Dask worker) reduced to metrics;
- ``run_verdict``: everything above, plus the condor-ladder range on each reduction.
"""
from __future__ import annotations

import copy
import datetime as dt
import math
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.metrics import summarize

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
TRADING_DAYS = 252

# ---------------------------------------------------------------------------------------------------
# episode file
# ---------------------------------------------------------------------------------------------------


class ClaimBands(BaseModel):
    model_config = ConfigDict(extra="forbid")
    met: float = 35.0
    exceeded: float = 40.0


class DetectRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vix_min: float = 25.0
    median_mult: float = 1.5
    median_days: int = Field(60, ge=5)
    merge_gap: int = Field(20, ge=1)
    lookback: int = Field(60, ge=1)
    max_days: int = Field(250, ge=5)


class VerdictSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ladders: int = Field(5, ge=1, le=5)
    default_scenario: str = "alvh"
    vxth: dict[str, Any] = Field(default_factory=dict)
    spx_puts: dict[str, Any] = Field(default_factory=dict)


class EpisodeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    start: dt.date
    end: dt.date
    note: str = ""


class EpisodeFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    claim: ClaimBands = Field(default_factory=ClaimBands)
    detect: DetectRule = Field(default_factory=DetectRule)
    verdict: VerdictSettings = Field(default_factory=VerdictSettings)
    episode: list[EpisodeSpec] = Field(default_factory=list)


@dataclass(frozen=True)
class Episode:
    name: str
    start: pd.Timestamp
    end: pd.Timestamp
    note: str = ""
    source: str = "named"   # "named" | "auto"

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_")


def load_episodes(path: str | Path | None = None) -> tuple[EpisodeFile, list[Episode]]:
    p = Path(path) if path else CONFIG_DIR / "episodes.toml"
    if not p.exists() and (CONFIG_DIR / p.name).exists():
        p = CONFIG_DIR / p.name
    if not p.exists():
        raise ValueError(f"episode file {path} does not exist")
    try:
        spec = EpisodeFile.model_validate(tomllib.loads(p.read_text()))
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{p}: not valid TOML: {e}") from None
    except ValidationError as e:
        first = e.errors()[0]
        raise ValueError(f"{p}: bad value for '{'.'.join(str(x) for x in first['loc'])}': {first['msg']}") from None
    eps = []
    for e in spec.episode:
        if e.end <= e.start:
            raise ValueError(f"{p}: episode {e.name!r} ends before it starts")
        eps.append(Episode(e.name, pd.Timestamp(e.start), pd.Timestamp(e.end), e.note, "named"))
    return spec, eps


def detect_spikes(vix: pd.Series, spx: pd.Series, rule: DetectRule, named: list[Episode] = ()) -> list[Episode]:
    """Spikes found by the rule in DetectRule (see config/episodes.toml), skipping those whose first
    spike day falls inside a named window. Uses closes only; this is analysis, not a trading decision."""
    vix = vix.dropna()
    spx = spx.reindex(vix.index).ffill()
    med = vix.shift(1).rolling(rule.median_days, min_periods=rule.median_days).median()
    spike = (vix > rule.vix_min) & (vix > rule.median_mult * med)
    pos = np.flatnonzero(spike.to_numpy())
    if len(pos) == 0:
        return []
    groups: list[list[int]] = [[int(pos[0])]]
    for i in pos[1:]:
        if i - groups[-1][-1] <= rule.merge_gap:
            groups[-1].append(int(i))
        else:
            groups.append([int(i)])
    idx = vix.index
    s = spx.to_numpy()
    out = []
    for g in groups:
        first, last = g[0], g[-1]
        lo = max(first - rule.lookback, 0)
        peak_i = lo + int(np.nanargmax(s[lo:first + 1]))
        peak = s[peak_i]
        cap = min(first + rule.max_days, len(idx) - 1)
        end_i = cap
        for j in range(last + 1, cap + 1):
            if s[j] >= peak:
                end_i = j
                break
        day0 = idx[first]
        if any(e.start <= day0 <= e.end for e in named):
            continue
        out.append(Episode(f"auto {day0:%Y-%m-%d}", idx[peak_i], idx[end_i],
                           f"VIX {vix.iloc[first]:.1f} on {day0:%Y-%m-%d}, max {vix.iloc[first:last + 1].max():.1f}",
                           "auto"))
    return out


# ---------------------------------------------------------------------------------------------------
# per-episode arithmetic
# ---------------------------------------------------------------------------------------------------


def window_drawdown(equity: pd.Series, start, end) -> float:
    """Largest peak-to-trough fall (positive fraction) of `equity` inside [start, end], the peak being
    measured from the window's first day on. NaN when the window holds no data."""
    e = equity.loc[pd.Timestamp(start):pd.Timestamp(end)].dropna()
    if e.empty:
        return math.nan
    v = e.to_numpy(dtype=float)
    return float(max(0.0, np.max(1.0 - v / np.maximum.accumulate(v))))


def window_change(series: pd.Series, start, end) -> float:
    """series(end) - series(last day before start) (0 before the first observation)."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    inside = series.loc[start:end]
    if inside.empty:
        return math.nan
    before = series.loc[:start - pd.Timedelta(days=1)]
    base = float(before.iloc[-1]) if len(before) else 0.0
    return float(inside.iloc[-1]) - base


def reduction_pct(dd_unhedged: float, dd_hedged: float) -> float:
    """How much smaller the hedged drawdown is, in % of the unhedged one (negative = larger)."""
    if not (math.isfinite(dd_unhedged) and math.isfinite(dd_hedged)) or dd_unhedged <= 0:
        return math.nan
    return 100.0 * (dd_unhedged - dd_hedged) / dd_unhedged


def classify(reduction: float, bands: ClaimBands | None = None) -> str:
    """Against the claimed 35-40%: >= 40 exceeded; [35, 40) met; [0, 35) fell short; < 0 made it worse."""
    bands = bands or ClaimBands()
    if reduction is None or not math.isfinite(reduction):
        return "n/a"
    if reduction >= bands.exceeded:
        return "exceeded"
    if reduction >= bands.met:
        return "met"
    if reduction >= 0:
        return "fell short"
    return "made it worse"


# ---------------------------------------------------------------------------------------------------
# scenarios
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str
    hedge: dict | None
    family: str   # "unhedged" | "alvh" | "baseline"


READING_LABEL = {"vega": "(a) vega offset", "equity": "(b) % of equity", "contracts": "(c) contracts per risk"}

# The "4%/4%/2% of portfolio notional in VIX calls at ~30-45, 60-90 and 120+ DTE" reading.
CALL_LAYERS = [
    {"type": "vix_call", "target_dte": 38, "min_entry_dte": 30, "max_entry_dte": 45, "roll_dte": 14},
    {"type": "vix_call", "target_dte": 75, "min_entry_dte": 60, "max_entry_dte": 90, "roll_dte": 30},
    {"type": "vix_call", "target_dte": 150, "min_entry_dte": 120, "max_entry_dte": 250, "roll_dte": 60},
]


def _with(raw: dict, **budget) -> dict:
    out = copy.deepcopy(raw)
    out.setdefault("budget", {}).update(budget)
    return out


def standard_scenarios(hedge_raw: dict | None, settings: VerdictSettings | None = None) -> list[Scenario]:
    """The configured ALVH hedge ("alvh"), the same layers under every other budget reading, the
    VIX-call reading of 4/4/2 (notional and premium), and the baselines."""
    from strategies.hedges import parse_hedge

    settings = settings or VerdictSettings()
    if isinstance(hedge_raw, BaseModel):  # typed [hedge] params: the table as the user wrote it
        hedge_raw = hedge_raw.model_dump(mode="json", exclude_unset=True)
    raw = copy.deepcopy(hedge_raw) if hedge_raw else {}
    raw.setdefault("kind", "alvh")
    if raw["kind"] not in ("alvh", "static"):
        raise ValueError("the verdict needs an ALVH [hedge] table (kind = 'alvh')")
    raw["kind"] = "alvh"
    base = parse_hedge(raw)
    reading = base.budget.reading
    out = [Scenario("unhedged", "unhedged condor book", None, "unhedged"),
           Scenario("alvh", f"ALVH as configured {READING_LABEL[reading]}", raw, "alvh")]
    for r in ("vega", "equity", "contracts"):
        if r != reading:
            out.append(Scenario(f"alvh_{r}", f"ALVH {READING_LABEL[r]}", _with(raw, reading=r), "alvh"))
    calls = copy.deepcopy(raw)
    layers = calls.get("layers") or [lp.model_dump() for lp in base.layers]
    calls["layers"] = [{**{k: v for k, v in lp.items() if k != "instrument"}, "instrument": dict(CALL_LAYERS[i % 3])}
                       for i, lp in enumerate(layers)]
    out.append(Scenario("alvh_calls", "ALVH 4/4/2% notional in VIX calls 30-45/60-90/120+ DTE",
                        _with(calls, reading="equity", equity_measure="notional"), "alvh"))
    out.append(Scenario("alvh_calls_premium", "ALVH 4/4/2% premium in VIX calls 30-45/60-90/120+ DTE",
                        _with(calls, reading="equity", equity_measure="premium"), "alvh"))
    static = copy.deepcopy(raw)
    static["kind"] = "static"
    out.append(Scenario("static", f"same layers always on {READING_LABEL[reading]}", static, "baseline"))
    out.append(Scenario("vxth", "VXTH-style 30-delta VIX calls", {"kind": "vxth", **settings.vxth}, "baseline"))
    out.append(Scenario("spx_puts", "SPX put tail hedge", {"kind": "spx_puts", **settings.spx_puts}, "baseline"))
    for s in out:  # fail early on a bad table, naming the scenario
        if s.hedge is not None:
            try:
                parse_hedge(s.hedge)
            except ValueError as e:
                raise ValueError(f"scenario {s.name}: {e}") from None
    return out


def ladder_variants(condor: dict | None, n: int) -> list[dict]:
    """Condor overrides for n ladder start phases: the weekly entry weekday shifted by 0..n-1 sessions.
    Other entry frequencies have a single phase (documented in docs/alvh.md)."""
    if not condor or condor.get("entry_frequency", "weekly") != "weekly" or n <= 1:
        return [{}]
    w0 = int(condor.get("entry_weekday", 0))
    return [{} if k == 0 else {"entry_weekday": (w0 + k) % 5} for k in range(n)]


# ---------------------------------------------------------------------------------------------------
# one run -> metrics (runs in a worker)
# ---------------------------------------------------------------------------------------------------


def make_task(cfg_dict: dict, hedge: dict | None, *, task_id: str, condor_overrides: dict | None = None,
              start=None, end=None, episodes: list[Episode] = (), keep_series: bool = False,
              meta: dict | None = None) -> dict:
    from config.settings import deep_merge

    c = copy.deepcopy(cfg_dict)
    c["hedge"] = None
    if condor_overrides:
        c["condor"] = deep_merge(c.get("condor") or {}, condor_overrides)
    return {
        "id": task_id, "config": c, "hedge": hedge, "start": None if start is None else str(start),
        "end": None if end is None else str(end),
        "episodes": [(e.name, str(e.start.date()), str(e.end.date())) for e in episodes],
        "keep_series": keep_series, "meta": meta or {},
    }


def run_metrics(eq: pd.DataFrame, episodes: list[tuple[str, str, str]], rf) -> dict:
    """Full-period and per-episode numbers from a run's equity frame."""
    equity = eq["equity"]
    s = summarize(equity, rf)
    hedge = eq["pnl_hedge"] if "pnl_hedge" in eq else pd.Series(0.0, index=eq.index)
    condor = eq["pnl_condor"] if "pnl_condor" in eq else pd.Series(0.0, index=eq.index)
    daily = hedge.diff().fillna(hedge.iloc[0] if len(hedge) else 0.0) / equity.shift(1).fillna(equity.iloc[0])
    calm = pd.Series(True, index=eq.index)
    for _, a, b in episodes:
        calm.loc[pd.Timestamp(a):pd.Timestamp(b)] = False
    out = {
        "cagr": s.cagr, "sharpe": s.sharpe, "calmar": s.calmar, "max_drawdown": s.max_drawdown,
        "volatility": s.volatility, "final_equity": s.final_equity, "total_return": s.total_return,
        "dd_peak": s.dd_peak, "dd_trough": s.dd_trough,
        "hedge_pnl": float(hedge.iloc[-1]) if len(hedge) else 0.0,
        "condor_pnl": float(condor.iloc[-1]) if len(condor) else 0.0,
        # mean daily hedge P&L / prior equity, annualised: net of spike gains
        "hedge_net_pct_yr": float(daily.mean() * TRADING_DAYS * 100.0) if len(daily) else 0.0,
        # the same on days outside every episode window, sign flipped: what the hedge costs in calm markets
        "hedge_carry_pct_yr": float(-daily[calm].mean() * TRADING_DAYS * 100.0) if calm.any() else math.nan,
        "episodes": {},
    }
    for name, a, b in episodes:
        out["episodes"][name] = {
            "dd": window_drawdown(equity, a, b),
            "hedge_pnl": window_change(hedge, a, b),
            "condor_pnl": window_change(condor, a, b),
            "start_equity": float(equity.loc[:pd.Timestamp(b)].loc[pd.Timestamp(a):].iloc[0])
            if len(equity.loc[pd.Timestamp(a):pd.Timestamp(b)]) else math.nan,
        }
    return out


def run_task(task: dict, data_dir: str) -> dict:
    """Worker entry point: one backtest from a task dict, reduced to metrics (and series if asked)."""
    from adapters.sim.backtest import run_backtest
    from analysis.sweep import worker_panel
    from config.settings import RunConfig

    t0 = time.perf_counter()
    panel = worker_panel(data_dir)
    cfg = RunConfig.model_validate({**task["config"], "hedge": task.get("hedge") or None})
    res = run_backtest(cfg, panel, start=task.get("start"), end=task.get("end"))
    rf = panel.daily.get("rate_tbill", 0.0)
    m = run_metrics(res.equity, task.get("episodes", []), rf)
    fills = res.fills
    hf = fills[fills["book"] != "condor"] if len(fills) else fills
    m.update({
        "hedge_fills": len(hf), "hedge_commissions": float(hf["commission"].sum()) if len(hf) else 0.0,
        "rejected_orders": len(res.rejections), "wall_seconds": time.perf_counter() - t0,
    })
    out = {"id": task["id"], "meta": task.get("meta", {}), "metrics": m}
    if task.get("keep_series"):
        cols = [c for c in ("equity", "pnl_condor", "pnl_hedge", "spx", "vix") if c in res.equity]
        out["equity"] = res.equity[cols].copy()
        hedge = next((s for s in res.strategies if hasattr(s, "activity_frame")), None)
        if hedge is not None:
            out["activity"] = hedge.activity_frame()
            out["thresholds"] = [(lp.name, lp.threshold, lp.hysteresis) for lp in hedge.p.layers]
            out["rounding"] = pd.DataFrame(hedge.rounding, columns=["date", "layer", "units", "error"])
    return out


# ---------------------------------------------------------------------------------------------------
# the verdict
# ---------------------------------------------------------------------------------------------------


@dataclass
class VerdictResult:
    scenarios: list[Scenario]
    episodes: list[Episode]
    episode_table: pd.DataFrame       # one row per (episode, scenario), main ladder, with the ladder range
    full_table: pd.DataFrame          # one row per scenario, full period
    verdict: pd.DataFrame             # one row per episode for the default scenario
    ladder_table: pd.DataFrame        # every (episode, scenario, ladder) reduction
    curves: dict[str, pd.DataFrame]   # scenario -> equity frame (main ladder)
    activity: pd.DataFrame | None
    thresholds: list[tuple]
    rounding: pd.DataFrame | None
    claim: ClaimBands
    meta: dict = field(default_factory=dict)


def analyze(results: list[dict], scenarios: list[Scenario], episodes: list[Episode], claim: ClaimBands,
            default: str = "alvh") -> VerdictResult:
    by = {(r["meta"]["scenario"], r["meta"]["ladder"]): r for r in results}
    ladders = sorted({r["meta"]["ladder"] for r in results})
    rows, lrows = [], []
    for ep in episodes:
        for sc in scenarios:
            for lad in ladders:
                r, u = by.get((sc.name, lad)), by.get(("unhedged", lad))
                if r is None or u is None:
                    continue
                e, eu = r["metrics"]["episodes"][ep.name], u["metrics"]["episodes"][ep.name]
                lrows.append({"episode": ep.name, "scenario": sc.name, "ladder": lad, "dd": e["dd"],
                              "dd_unhedged": eu["dd"], "reduction_pct": reduction_pct(eu["dd"], e["dd"])})
    ladder_table = pd.DataFrame(lrows)
    for ep in episodes:
        for sc in scenarios:
            r, u = by.get((sc.name, 0)), by.get(("unhedged", 0))
            if r is None or u is None:
                continue
            e, eu = r["metrics"]["episodes"][ep.name], u["metrics"]["episodes"][ep.name]
            red = reduction_pct(eu["dd"], e["dd"])
            lt = ladder_table[(ladder_table.episode == ep.name) & (ladder_table.scenario == sc.name)]["reduction_pct"]
            lt = lt[np.isfinite(lt)]
            rows.append({
                "episode": ep.name, "source": ep.source, "start": ep.start.date(), "end": ep.end.date(),
                "scenario": sc.name, "dd_pct": 100 * e["dd"], "dd_unhedged_pct": 100 * eu["dd"],
                "reduction_pct": red if sc.name != "unhedged" else math.nan,
                "range_low": float(lt.min()) if sc.name != "unhedged" and len(lt) else math.nan,
                "range_high": float(lt.max()) if sc.name != "unhedged" and len(lt) else math.nan,
                "ladders": len(lt) if sc.name != "unhedged" else 0,
                "hedge_pnl": e["hedge_pnl"], "condor_pnl": e["condor_pnl"],
                "hedge_pnl_pct": 100 * e["hedge_pnl"] / e["start_equity"] if e["start_equity"] else math.nan,
                "condor_pnl_pct": 100 * e["condor_pnl"] / e["start_equity"] if e["start_equity"] else math.nan,
                "class": classify(red, claim) if sc.name != "unhedged" else "",
            })
    episode_table = pd.DataFrame(rows)
    frows = []
    for sc in scenarios:
        r = by.get((sc.name, 0))
        if r is None:
            continue
        m = r["metrics"]
        frows.append({"scenario": sc.name, "label": sc.label, "cagr_pct": 100 * m["cagr"], "sharpe": m["sharpe"],
                      "calmar": m["calmar"], "max_dd_pct": 100 * m["max_drawdown"], "dd_peak": m["dd_peak"],
                      "dd_trough": m["dd_trough"], "final_equity": m["final_equity"],
                      "hedge_pnl": m["hedge_pnl"], "condor_pnl": m["condor_pnl"],
                      "hedge_net_pct_yr": m["hedge_net_pct_yr"], "hedge_carry_pct_yr": m["hedge_carry_pct_yr"],
                      "hedge_fills": m["hedge_fills"], "hedge_commissions": m["hedge_commissions"],
                      "rejected_orders": m["rejected_orders"], "wall_seconds": m["wall_seconds"]})
    full_table = pd.DataFrame(frows)
    vrows = []
    d = episode_table[episode_table.scenario == default] if len(episode_table) else episode_table
    for _, row in d.iterrows():
        vrows.append({"episode": row["episode"], "source": row["source"], "dd_unhedged_pct": row["dd_unhedged_pct"],
                      "dd_hedged_pct": row["dd_pct"], "reduction_pct": row["reduction_pct"],
                      "range_low": row["range_low"], "range_high": row["range_high"], "class": row["class"],
                      "line": verdict_line(row, claim)})
    curves = {name: r["equity"] for (name, lad), r in by.items() if lad == 0 and "equity" in r}
    main = by.get((default, 0), {})
    return VerdictResult(scenarios, episodes, episode_table, full_table, pd.DataFrame(vrows), ladder_table, curves,
                         main.get("activity"), main.get("thresholds", []), main.get("rounding"), claim)


def verdict_line(row, claim: ClaimBands) -> str:
    red = row["reduction_pct"]
    if not math.isfinite(red):
        return f"{row['episode']}: no unhedged drawdown to reduce - n/a"
    rng = ""
    if math.isfinite(row.get("range_low", math.nan)) and row.get("ladders", 2) > 1:
        rng = f" (ladder range {row['range_low']:.0f}% to {row['range_high']:.0f}%)"
    verb = {"exceeded": "EXCEEDED", "met": "MET", "fell short": "FELL SHORT of",
            "made it worse": "MADE IT WORSE than unhedged, against"}[row["class"]]
    return (f"{row['episode']}: max drawdown {row['dd_unhedged_pct']:.2f}% unhedged vs {row['dd_pct']:.2f}% hedged, "
            f"{_size(red)}{rng} -> {verb} the claimed {claim.met:.0f}-{claim.exceeded:.0f}% reduction")


def _size(red: float) -> str:
    return f"{red:.1f}% smaller" if red >= 0 else f"{-red:.1f}% larger"


def run_verdict(cfg, data_dir: str, *, episode_file: str | Path | None = None, start=None, end=None,
                ladders: int | None = None, workers: int = 1, scheduler: str | None = None,
                progress: bool = True, scenarios: list[str] | None = None) -> VerdictResult:
    from analysis.sweep import run_tasks, worker_panel

    spec, named = load_episodes(episode_file)
    settings = spec.verdict
    panel = worker_panel(str(data_dir))
    s0 = pd.Timestamp(start or cfg.run.start)
    e0 = pd.Timestamp(end or cfg.run.end)
    daily = panel.daily.loc[s0:e0]
    auto = detect_spikes(daily["vix_close"], daily["spx_close"], spec.detect, named)
    episodes = [e for e in named + auto if e.end >= s0 and e.start <= e0]
    scs = standard_scenarios(cfg.hedge, settings)
    if scenarios:
        unknown = sorted(set(scenarios) - {s.name for s in scs})
        if unknown:
            raise ValueError(f"unknown scenario(s) {unknown}; known: {[s.name for s in scs]}")
        scs = [s for s in scs if s.name in scenarios or s.name == "unhedged"]
    n_lad = settings.ladders if ladders is None else ladders
    cfg_dict = cfg.model_dump(mode="json")
    variants = ladder_variants(cfg_dict.get("condor"), n_lad)
    tasks = []
    for lad, over in enumerate(variants):
        for sc in scs:
            tasks.append(make_task(cfg_dict, sc.hedge, task_id=f"{sc.name}#{lad}", condor_overrides=over,
                                   start=s0.date(), end=e0.date(), episodes=episodes, keep_series=(lad == 0),
                                   meta={"scenario": sc.name, "ladder": lad}))
    t0 = time.perf_counter()
    results = run_tasks(run_task, tasks, data_dir=str(data_dir), workers=workers, scheduler=scheduler,
                        progress=progress, desc="verdict runs")
    wall = time.perf_counter() - t0
    default = settings.default_scenario if any(s.name == settings.default_scenario for s in scs) else "alvh"
    res = analyze(results, scs, episodes, spec.claim, default)
    res.meta = {"config": cfg.source, "start": str(s0.date()), "end": str(e0.date()), "runs": len(tasks),
                "ladders": len(variants), "wall_seconds": round(wall, 1), "workers": workers,
                "scheduler": scheduler or "", "default_scenario": default,
                "ladder_weekdays": [v.get("entry_weekday", (cfg_dict.get("condor") or {}).get("entry_weekday", 0))
                                    for v in variants],
                "detect": spec.detect.model_dump(), "claim": spec.claim.model_dump()}
    return res
