"""A run's configuration: one TOML file (optionally `extends` another) validated into typed settings at load.

Every table is typed here, so a bad value stops the run before any data is read, with one sentence naming the file
and the key (config/errors.py). Strategies receive their typed parameters, never a dict to validate later.
"""
from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from config.daemon import DaemonParams
from config.errors import ConfigError, config_error
from engine.execution import ExecutionParams
from engine.limits import RiskLimits
from engine.marketmodel import PricingParams
from engine.params import Params
from engine.risk import MarginParams
from strategies.hedges import HedgeParams, NoHedgeParams
from strategies.iron_condor import CondorParams

CONFIG_DIR = Path(__file__).resolve().parent

__all__ = ["CONFIG_DIR", "ConfigError", "RunConfig", "RunParams", "deep_merge", "load_config", "read_toml"]


class RunParams(Params):
    start: dt.date = dt.date(2006, 1, 1)
    end: dt.date = dt.date(2025, 12, 31)
    initial_equity: float = Field(1_000_000.0, gt=0)

    @model_validator(mode="after")
    def _order(self):
        if self.end <= self.start:
            raise ValueError("run.end must be after run.start")
        return self


class RunConfig(Params):
    name: str = "condor"
    run: RunParams = Field(default_factory=RunParams)
    pricing: PricingParams = Field(default_factory=PricingParams)
    execution: ExecutionParams = Field(default_factory=ExecutionParams)
    margin: MarginParams = Field(default_factory=MarginParams)
    risk: RiskLimits = Field(default_factory=RiskLimits)
    condor: CondorParams | None = Field(default_factory=CondorParams)
    hedge: HedgeParams | None = None
    daemon: DaemonParams | None = None

    source: str = Field("<defaults>", exclude=True)

    @model_validator(mode="after")
    def _normalise(self):
        if isinstance(self.hedge, NoHedgeParams):
            self.hedge = None
        if self.daemon is not None:
            # the daemon never trades without order limits: those left unset take the live defaults
            self.risk = self.risk.with_live_defaults()
        return self


def _find(path: str | Path, relative_to: Path | None = None) -> Path:
    p = Path(path)
    for candidate in (p, (relative_to / p) if relative_to else None, CONFIG_DIR / p.name):
        if candidate is not None and candidate.exists():
            if not candidate.is_file():
                raise ConfigError(f"{path}: is a directory, not a TOML config file" if candidate.is_dir()
                                  else f"{path}: not a file")
            return candidate
    raise ConfigError(f"{path}: file does not exist")


def read_toml(path: str | Path, relative_to: Path | None = None, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read one TOML file; `extends = "other.toml"` layers this file over another (one source of truth
    for the condor book shared by several configs)."""
    p = _find(path, relative_to).resolve()
    if p in seen:
        raise ConfigError(f"{path}: 'extends' loops back to {p.name}")
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot be read: {e}") from None
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: extends: must be a file name")
    return deep_merge(read_toml(base, p.parent, (*seen, p)), data)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    data: dict[str, Any] = {}
    label = "<defaults>"
    if path is not None:
        label = str(path)
        data = read_toml(path)
    if overrides:
        data = deep_merge(data, overrides)
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as e:
        raise config_error(label, e, data) from None
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
