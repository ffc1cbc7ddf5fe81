"""One configuration of the condor book (and a hedge) run over history and reduced to the numbers the verdict and
the sweep compare: full-period metrics, the hedge's net P&L and calm-market carry, and each episode's drawdown.

A task is a plain dict (``make_task``) so it can travel to a pool or Dask worker; ``run_task`` is the worker entry
point, ``run_task_safe`` the sweep's variant that turns a failing configuration into an error row.
"""
from __future__ import annotations

import copy
import math
import time

import numpy as np
import pandas as pd

from analysis.episodes import Episode, window_change, window_drawdown, window_span
from analysis.tasks import worker_panel
from engine.metrics import TRADING_DAYS, summarize


def make_task(cfg_dict: dict, hedge: dict | None, *, task_id: str, condor_overrides: dict | None = None,
              pricing_overrides: dict | None = None, start=None, end=None, episodes: list[Episode] = (),
              keep_series: bool = False, meta: dict | None = None) -> dict:
    """`pricing_overrides`: a surface-ensemble member's [pricing] table, merged (deep) over the config's. Every
    window of an episode (its window family, if it has one) is measured, keyed as Episode.window_keys says."""
    from config.settings import deep_merge

    c = copy.deepcopy(cfg_dict)
    c["hedge"] = None
    if condor_overrides:
        c["condor"] = deep_merge(c.get("condor") or {}, condor_overrides)
    if pricing_overrides:
        c["pricing"] = deep_merge(c.get("pricing") or {}, pricing_overrides)
    return {
        "id": task_id, "config": c, "hedge": hedge, "start": None if start is None else str(start),
        "end": None if end is None else str(end),
        "episodes": [(key, str(e.start.date()), str(end.date())) for e in episodes for _, key, end in e.window_keys()],
        "keep_series": keep_series, "meta": meta or {},
    }


def run_metrics(eq: pd.DataFrame, episodes: list[tuple[str, str, str]], rf, summary=None) -> dict:
    """Full-period and per-episode numbers from a run's equity frame (`summary`: summarize(equity, rf) when the
    caller has it already)."""
    equity = eq["equity"]
    s = summary if summary is not None else summarize(equity, rf)
    hedge = eq["pnl_hedge"] if "pnl_hedge" in eq else pd.Series(0.0, index=eq.index)
    condor = eq["pnl_condor"] if "pnl_condor" in eq else pd.Series(0.0, index=eq.index)
    daily = hedge.diff().fillna(hedge.iloc[0] if len(hedge) else 0.0) / equity.shift(1).fillna(equity.iloc[0])
    calm = np.ones(len(eq), dtype=bool)
    for _, a, b in episodes:
        calm[window_span(eq.index, a, b)] = False
    out = {
        "cagr": s.cagr, "sharpe": s.sharpe, "calmar": s.calmar, "max_drawdown": s.max_drawdown,
        "volatility": s.volatility, "final_equity": s.final_equity, "total_return": s.total_return,
        "dd_peak": s.dd_peak, "dd_trough": s.dd_trough,
        "hedge_pnl": float(hedge.iloc[-1]) if len(hedge) else 0.0,
        "condor_pnl": float(condor.iloc[-1]) if len(condor) else 0.0,
        # T-bill interest the account earned on its cash (engine/ledger.py accrue_interest), cumulative to the end
        "interest": float(eq["interest"].iloc[-1]) if "interest" in eq and len(eq) else 0.0,
        "years": (eq.index[-1] - eq.index[0]).days / 365.25 if len(eq) > 1 else math.nan,
        # mean daily hedge P&L / prior equity, annualised: net of spike gains
        "hedge_net_pct_yr": float(daily.mean() * TRADING_DAYS * 100.0) if len(daily) else 0.0,
        # the same on days outside every episode window, sign flipped: what the hedge costs in calm markets
        "hedge_carry_pct_yr": float(-daily[calm].mean() * TRADING_DAYS * 100.0) if calm.any() else math.nan,
        "episodes": {},
    }
    values = equity.to_numpy()
    for name, a, b in episodes:
        inside = values[window_span(eq.index, a, b)]   # the index is sorted: .loc[:b].loc[a:] is .loc[a:b]
        out["episodes"][name] = {
            "dd": window_drawdown(equity, a, b),
            "hedge_pnl": window_change(hedge, a, b),
            "condor_pnl": window_change(condor, a, b),
            "start_equity": float(inside[0]) if len(inside) else math.nan,
        }
    return out


def run_task(task: dict, data_dir: str) -> dict:
    """Worker entry point: one backtest from a task dict, reduced to metrics (and series if asked)."""
    from adapters.sim.backtest import run_backtest
    from config.settings import RunConfig

    t0 = time.perf_counter()
    panel = worker_panel(data_dir)
    cfg = RunConfig.model_validate({**task["config"], "hedge": task.get("hedge") or None})
    res = run_backtest(cfg, panel, start=task.get("start"), end=task.get("end"))
    rf = panel.daily.get("rate_tbill", 0.0)
    m = run_metrics(res.equity, task.get("episodes", []), rf, res.summary)   # run_backtest summarised it with rf
    fills = res.fills
    hf = fills[fills["book"] != "condor"] if len(fills) else fills
    m.update({
        "initial_equity": float(cfg.run.initial_equity),
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


def run_task_safe(task: dict, data_dir: str) -> dict:
    """run_task, but a failing configuration becomes an error row instead of stopping the sweep."""
    try:
        return run_task(task, data_dir)
    except Exception as e:  # noqa: BLE001 - reported per configuration in the results table
        import traceback

        return {"id": task["id"], "meta": task.get("meta", {}), "metrics": None,
                "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=5)}
