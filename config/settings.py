"""Typed settings loaded from TOML. Unknown keys and bad values fail at start, naming the key."""
from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.execution import ExecutionParams
from engine.marketmodel import PricingParams
from engine.risk import MarginParams
from strategies.iron_condor import CondorParams

CONFIG_DIR = Path(__file__).resolve().parent


class ConfigError(Exception):
    """One sentence naming the file and the key."""


class RunParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: dt.date = dt.date(2006, 1, 1)
    end: dt.date = dt.date(2025, 12, 31)
    initial_equity: float = Field(1_000_000.0, gt=0)

    @model_validator(mode="after")
    def _order(self):
        if self.end <= self.start:
            raise ValueError("run.end must be after run.start")
        return self


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "condor"
    run: RunParams = Field(default_factory=RunParams)
    pricing: PricingParams = Field(default_factory=PricingParams)
    execution: ExecutionParams = Field(default_factory=ExecutionParams)
    margin: MarginParams = Field(default_factory=MarginParams)
    condor: CondorParams | None = Field(default_factory=CondorParams)
    hedge: dict[str, Any] | None = None      # validated by strategies.alvh when present
    daemon: dict[str, Any] | None = None     # validated by the daemon when present

    source: str = Field("<defaults>", exclude=True)


def _format_error(path: str, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(x) for x in first["loc"]) or "<root>"
    msg = first["msg"]
    more = f" (and {len(err.errors()) - 1} more problem(s))" if len(err.errors()) > 1 else ""
    return f"{path}: bad value for '{loc}': {msg}{more}"


def _find(path: str | Path, relative_to: Path | None = None) -> Path:
    p = Path(path)
    for candidate in (p, (relative_to / p) if relative_to else None, CONFIG_DIR / p.name):
        if candidate is not None and candidate.exists():
            return candidate
    raise ConfigError(f"config file {path} does not exist")


def _read_toml(path: str | Path, relative_to: Path | None = None, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read one TOML file; `extends = "other.toml"` layers this file over another (one source of truth
    for the condor book shared by several configs)."""
    p = _find(path, relative_to).resolve()
    if p in seen:
        raise ConfigError(f"{path}: 'extends' loops back to {p.name}")
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: 'extends' must be a file name")
    return deep_merge(_read_toml(base, p.parent, (*seen, p)), data)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    data: dict[str, Any] = {}
    label = "<defaults>"
    if path is not None:
        label = str(path)
        data = _read_toml(path)
    if overrides:
        data = deep_merge(data, overrides)
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_error(label, e)) from None
    cfg.source = label
    return cfg


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out
