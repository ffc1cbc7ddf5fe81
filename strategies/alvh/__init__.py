"""The ALVH layered VIX hedge ("4/4/2") and its baselines, built from the [hedge] table of a run config.

``build_hedge(raw, condor=None)`` validates the table (unknown keys are errors naming the key) and
returns the hedge strategies. ``kind`` picks what is built:
- ``alvh`` (default): LayeredVixHedge (strategies/alvh/hedge.py);
- ``static``: the same layers, always on;
- ``vxth``: the Cboe VXTH-style VIX call rule (strategies/baselines.py);
- ``spx_puts``: an SPX put tail hedge (strategies/baselines.py);
- ``none``: no hedge (the unhedged baseline).
``condor`` is the IronCondorBook whose risk the hedge offsets (vega and contracts readings).
"""
from __future__ import annotations

from pydantic import ValidationError

from engine.strategy import Strategy
from strategies.alvh.budget import BookRiskView, BudgetParams, StaticRiskView
from strategies.alvh.hedge import AlvhParams, LayeredVixHedge, LayerParams, default_layers

HEDGE_KINDS = ("alvh", "static", "vxth", "spx_puts", "none")


def _explain(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(x) for x in first["loc"]) or "<root>"
    more = f" (and {len(err.errors()) - 1} more problem(s))" if len(err.errors()) > 1 else ""
    return f"hedge.{loc}: {first['msg']}{more}"


def parse_hedge(raw: dict):
    """The typed parameters for a [hedge] table (AlvhParams, VxthParams or SpxPutParams), or None."""
    from strategies.baselines import SpxPutParams, VxthParams

    if not isinstance(raw, dict):
        raise TypeError(f"hedge: expected a table, got {type(raw).__name__}")
    kind = raw.get("kind", "alvh")
    if kind not in HEDGE_KINDS:
        raise ValueError(f"hedge.kind: unknown hedge kind {kind!r}; use one of {list(HEDGE_KINDS)}")
    if kind == "none":
        extra = sorted(set(raw) - {"kind"})
        if extra:
            raise ValueError(f"hedge.{extra[0]}: not allowed with kind = 'none'")
        return None
    model = {"alvh": AlvhParams, "static": AlvhParams, "vxth": VxthParams, "spx_puts": SpxPutParams}[kind]
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise ValueError(_explain(e)) from None


def build_hedge(raw: dict, condor=None) -> list[Strategy]:
    from strategies.baselines import SpxPutHedge, SpxPutParams, VxthHedge, VxthParams

    params = parse_hedge(raw)
    if params is None:
        return []
    if isinstance(params, AlvhParams):
        return [LayeredVixHedge(params, BookRiskView(condor) if condor is not None else None)]
    if isinstance(params, VxthParams):
        return [VxthHedge(params)]
    if isinstance(params, SpxPutParams):
        return [SpxPutHedge(params)]
    raise AssertionError(params)


__all__ = ["AlvhParams", "BookRiskView", "BudgetParams", "LayerParams", "LayeredVixHedge", "StaticRiskView",
           "build_hedge", "default_layers", "parse_hedge"]
