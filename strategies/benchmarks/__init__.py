"""Rule-for-rule replicas of Cboe's published strategy benchmarks, run through the same kernel, simulated
broker and pricing as every other strategy (adapters.sim.backtest.run_backtest):

- CNDR (Cboe S&P 500 Iron Condor Index): strategies.benchmarks.cndr.CNDRReplica
- VXTH (Cboe VIX Tail Hedge Index): strategies.benchmarks.vxth.VXTHReplica

Both indices price at mid with no costs; `replica_execution()` is the execution configuration that does
that through the ordinary simulated broker (every spread fraction, slippage and commission set to zero).
"""
from __future__ import annotations

from engine.execution import CostParams, ExecutionParams

from .cndr import CNDRParams, CNDRReplica, closest_to_delta, cndr_roll_dates
from .vxth import (
    SPX_DIVIDEND_POINTS,
    SPXTotalReturn,
    VXTHParams,
    VXTHReplica,
    vix_call_weight,
    vxth_roll_dates,
)


def replica_execution() -> ExecutionParams:
    """Fills at model mid, no commissions: what Cboe's benchmark indices assume."""
    return ExecutionParams(
        spread_paid_combo=0.0, spread_paid_single=0.0, slippage_ticks=0.0,
        costs=CostParams(spx_option=0.0, vix_option=0.0, vx_future=0.0, etp_per_share=0.0, etp_min_per_order=0.0),
    )


__all__ = [
    "SPX_DIVIDEND_POINTS",
    "CNDRParams",
    "CNDRReplica",
    "SPXTotalReturn",
    "VXTHParams",
    "VXTHReplica",
    "closest_to_delta",
    "cndr_roll_dates",
    "replica_execution",
    "vix_call_weight",
    "vxth_roll_dates",
]
