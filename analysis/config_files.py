"""The analyses' own TOML files (config/episodes.toml, config/sweep.toml) read into their pydantic models.

Every problem - missing file, bad TOML, unknown key, wrong type, value out of range - is a
config.errors.ConfigError of one sentence naming the file and the key, raised before any data is read.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from config.errors import ConfigError, config_error
from config.settings import CONFIG_DIR

M = TypeVar("M", bound=BaseModel)


def find_config_file(path: str | Path | None, default_name: str) -> tuple[Path, str]:
    """(file to read, name to report). A bare name or a path that does not exist here falls back to the
    file of that name in the repository's config/ directory, so the commands work from any directory."""
    if path is None:
        p = CONFIG_DIR / default_name
        return p, str(p)
    p = Path(path)
    if not p.exists() and (CONFIG_DIR / p.name).exists():
        return CONFIG_DIR / p.name, str(path)
    if not p.exists():
        raise ConfigError(f"{path}: file does not exist")
    return p, str(path)


def load_model(path: str | Path | None, model: type[M], default_name: str) -> tuple[M, str]:
    """The file validated as `model`, and the name its errors use."""
    p, label = find_config_file(path, default_name)
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{label}: not valid TOML: {e}") from None
    try:
        return model.model_validate(data), label
    except ValidationError as e:
        raise config_error(label, e) from None
