"""The base of every typed parameter table: unknown keys, NaN/infinity and non-boolean flags are errors."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Params(BaseModel):
    """Configuration tables are read from TOML by hand-written files: a typo must stop the run, not be ignored
    (`extra="forbid"`), and `inf`/`nan` are never a sensible limit or price (`allow_inf_nan=False`). Flags are
    declared `StrictBool` so that "yes" or 1 is refused rather than coerced to true."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
