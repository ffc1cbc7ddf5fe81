"""Every hedge a [hedge] table can ask for, as one typed union picked by `kind`, and the strategies it builds.

- ``alvh`` (default): LayeredVixHedge (strategies/alvh/hedge.py); ``static``: the same layers, always on;
- ``vxth``: the Cboe VXTH-style VIX call rule; ``spx_puts``: an SPX put tail hedge (strategies/baselines.py);
- ``none``: no hedge (the unhedged baseline).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Tag, TypeAdapter

from engine.params import Params
from engine.strategy import Strategy
from strategies.alvh.budget import BookRiskView
from strategies.alvh.hedge import AlvhParams, LayeredVixHedge
from strategies.baselines import SpxPutHedge, SpxPutParams, VxthHedge, VxthParams

HEDGE_KINDS = ("alvh", "static", "vxth", "spx_puts", "none")


class NoHedgeParams(Params):
    kind: Literal["none"] = "none"


def _kind(v: Any) -> str | None:
    kind = v.get("kind", "alvh") if isinstance(v, dict) else getattr(v, "kind", None)
    kind = "alvh" if kind == "static" else kind
    return kind if kind in HEDGE_KINDS else None


# The tags are model names (capitalised) so that config/errors.py leaves them out of the key path it reports.
HedgeParams = Annotated[
    Annotated[AlvhParams, Tag("AlvhParams")] | Annotated[VxthParams, Tag("VxthParams")]
    | Annotated[SpxPutParams, Tag("SpxPutParams")] | Annotated[NoHedgeParams, Tag("NoHedgeParams")],
    Discriminator(lambda v: {"alvh": "AlvhParams", "vxth": "VxthParams", "spx_puts": "SpxPutParams",
                             "none": "NoHedgeParams"}.get(_kind(v) or ""),
                  custom_error_type="hedge_kind",
                  custom_error_message=f"unknown hedge kind; use one of {', '.join(HEDGE_KINDS)}"),
]

_adapter: TypeAdapter = TypeAdapter(HedgeParams)


def parse_hedge(raw: dict | Params) -> AlvhParams | VxthParams | SpxPutParams | None:
    """Typed parameters for a [hedge] table (None for kind = "none"); raises pydantic.ValidationError."""
    params = raw if isinstance(raw, Params) else _adapter.validate_python(raw)
    return None if isinstance(params, NoHedgeParams) else params


def build_hedge(params: dict | Params | None, condor=None) -> list[Strategy]:
    """The hedge strategies for typed [hedge] parameters. `condor` is the IronCondorBook whose risk the vega and
    contracts readings offset."""
    p = parse_hedge(params) if params is not None else None
    if p is None:
        return []
    if isinstance(p, AlvhParams):
        return [LayeredVixHedge(p, BookRiskView(condor) if condor is not None else None)]
    if isinstance(p, VxthParams):
        return [VxthHedge(p)]
    if isinstance(p, SpxPutParams):
        return [SpxPutHedge(p)]
    raise AssertionError(p)
