"""The hedge configurations the verdict compares and the sweep varies.

- ``standard_scenarios``: unhedged, ALVH under every budget reading, the VIX-call readings, the same layers always
  on, VXTH, SPX puts - all on the same condor book and costs;
- ``INSTRUMENT_PRESETS`` / ``preset_layers``: named per-layer instrument sets;
- ``ladder_variants``: the condor ladder start phases each reduction is also measured on;
- ``load_surfaces``: the surface ensemble (config/surface_ensemble.toml): the SPX/VIX-option pricing variants every
  scenario also runs on, each validated with the run config's own pricing model before any data is read.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from analysis.config_files import load_model
from analysis.episodes import VerdictSettings
from config.errors import ConfigError, config_error
from engine.params import Params


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str
    hedge: dict | None
    family: str   # "unhedged" | "alvh" | "baseline"


READING_LABEL = {"vega": "(a) vega offset", "equity": "(b) % of equity", "contracts": "(c) contracts per risk"}

# Per-layer instrument sets (near, intermediate, long), by name: the sweep's `instruments` axis, and the
# "4%/4%/2% of portfolio in VIX calls at ~30-45, 60-90 and 120+ DTE" reading of the verdict (`calls`).
LONG_CALL = {"type": "vix_call", "target_dte": 150, "min_entry_dte": 120, "max_entry_dte": 250, "roll_dte": 60}
INSTRUMENT_PRESETS: dict[str, list[dict]] = {
    # the default: front VX future, 5-month constant-maturity VX blend, 150-DTE 30-delta VIX calls
    "futures": [{"type": "vx", "month": 1, "roll_days": 5}, {"type": "cm", "term": "mid"}, LONG_CALL],
    "blends": [{"type": "cm", "term": "short"}, {"type": "cm", "term": "mid"}, LONG_CALL],
    "etps": [{"type": "etp", "symbol": "VIXY"}, {"type": "etp", "symbol": "VIXM"}, LONG_CALL],
    "calls": [{"type": "vix_call", "target_dte": 38, "min_entry_dte": 30, "max_entry_dte": 45, "roll_dte": 14},
              {"type": "vix_call", "target_dte": 75, "min_entry_dte": 60, "max_entry_dte": 90, "roll_dte": 30},
              LONG_CALL],
    "calendars": [{"type": "vx", "month": 1, "roll_days": 5}, {"type": "cm", "term": "mid"},
                  {"type": "vix_calendar", "near_dte": 30, "far_dte": 150, "roll_dte": 7}],
}


def preset_layers(layers: list[dict], preset: str) -> list[dict]:
    """The layer tables with their instruments replaced by the named set (copies; the set repeats past 3 layers)."""
    inst = INSTRUMENT_PRESETS[preset]
    return [{**{k: v for k, v in lp.items() if k != "instrument"}, "instrument": dict(inst[i % len(inst)])}
            for i, lp in enumerate(layers)]


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
    calls["layers"] = preset_layers(layers, "calls")
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
# the surface ensemble
# ---------------------------------------------------------------------------------------------------


class MemberSpec(Params):
    name: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.+-]+$")
    note: str = ""
    pricing: dict[str, Any] = Field(default_factory=dict)   # merged (deep) over the run config's [pricing]


class EnsembleFile(Params):
    member: list[MemberSpec] = Field(min_length=1)

    @field_validator("member")
    @classmethod
    def _unique(cls, members: list[MemberSpec]) -> list[MemberSpec]:
        names = [m.name for m in members]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"member names must be unique: {dup} repeated")
        return members


@dataclass(frozen=True)
class SurfaceMember:
    """One pricing variant: its [pricing] overrides (deep-merged over the run config's) and why it is there."""
    name: str
    note: str = ""
    pricing: dict = field(default_factory=dict)


DEFAULT_SURFACE = SurfaceMember("default", "the run config's pricing")


def _effective(p) -> tuple:
    """What a PricingParams prices with (an override restating a default value changes nothing)."""
    return (p.div_yield, p.spx_model, p.use_term_structure, p.regime_params(), p.skew(), p.vix_option_params())


def load_surfaces(path: str | Path | None, base_pricing: dict, *, first_only: bool = False) -> list[SurfaceMember]:
    """The ensemble's members; `path` None: the run config's pricing alone. Every member's pricing (the run
    config's [pricing] with the member's table merged over it) is validated as PricingParams, and the first member
    must price exactly as the run config does (it is the default reading). Raises ConfigError naming the file and
    the key."""
    from config.settings import deep_merge
    from engine.marketmodel import PricingParams

    if path is None:
        return [DEFAULT_SURFACE]
    spec, label = load_model(path, EnsembleFile, "surface_ensemble.toml")
    base = PricingParams.model_validate(base_pricing)
    out = []
    for i, m in enumerate(spec.member):
        merged = deep_merge(base_pricing, m.pricing)
        try:
            p = PricingParams.model_validate(merged)
        except ValidationError as e:
            raise config_error(label, e, merged, prefix=f"member[{i}].pricing") from None
        if i == 0 and _effective(p) != _effective(base):
            raise ConfigError(f"{label}: member[0].pricing: the first member must be the default (the run config's "
                              f"pricing, no overrides); {m.name!r} changes it")
        out.append(SurfaceMember(m.name, m.note, m.pricing))
    return out[:1] if first_only else out
