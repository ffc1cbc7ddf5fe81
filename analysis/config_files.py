"""The analyses' own TOML files (config/episodes.toml, config/sweep.toml) read into their pydantic models, and the
value formatting of the ones they write (config/calibrated.toml, config/surface_ensemble.toml).

Every problem - missing file, bad TOML, unknown key, wrong type, value out of range - is a
config.errors.ConfigError of one sentence naming the file and the key, raised before any data is read.
"""
from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from config.errors import config_error
from config.settings import CONFIG_DIR, read_toml

M = TypeVar("M", bound=BaseModel)


def load_model(path: str | Path | None, model: type[M], default_name: str) -> tuple[M, str]:
    """The file validated as `model`, and the name its errors use. No path: the file of that name in the
    repository's config/ directory (read_toml also falls back there for a bare name, so commands work from any
    directory)."""
    label = str(path) if path is not None else str(CONFIG_DIR / default_name)
    data = read_toml(path if path is not None else CONFIG_DIR / default_name)
    try:
        return model.model_validate(data), label
    except ValidationError as e:
        raise config_error(label, e, data) from None


def toml_value(v) -> str:
    """A scalar as TOML: strings quoted and escaped, booleans lower case, floats to 6 significant digits."""
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    return f"{float(v):.6g}" if isinstance(v, float) else str(v)
