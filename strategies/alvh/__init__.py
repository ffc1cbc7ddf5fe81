"""The ALVH layered VIX hedge ("4/4/2"): layers and triggers (layers.py), signals and gates (signals.py), the
instruments a layer holds (instruments.py), the three budget readings (budget.py) and the strategy (hedge.py).
strategies/hedges.py turns a [hedge] table into these (or a baseline) strategies."""
from __future__ import annotations

from strategies.alvh.budget import BookRiskView, BudgetParams, StaticRiskView
from strategies.alvh.hedge import AlvhParams, LayeredVixHedge, LayerParams, default_layers

__all__ = ["AlvhParams", "BookRiskView", "BudgetParams", "LayerParams", "LayeredVixHedge", "StaticRiskView",
           "default_layers"]
