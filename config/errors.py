"""One way to say what is wrong with a configuration: `file: dotted.key[0].path: what is wrong`."""
from __future__ import annotations

from pydantic import ValidationError


class ConfigError(Exception):
    """One sentence naming the file and the key. The CLI prints it and exits 2 before any data is read."""


def key_path(loc: tuple) -> str:
    """('hedge', 'layers', 0, 'threshold') -> 'hedge.layers[0].threshold'. Discriminated-union tags that pydantic
    inserts into the location (the model name chosen by `kind`) are not keys the user wrote, so they are dropped."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part[:1].isupper():
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def explain(source: str, err: ValidationError, prefix: str = "") -> str:
    """The first problem of a pydantic error as one sentence; more problems are counted, not listed."""
    first = err.errors()[0]
    loc = key_path(tuple(first["loc"]))
    if prefix:
        loc = prefix if loc == "<root>" else f"{prefix}.{loc}" if not loc.startswith("[") else f"{prefix}{loc}"
    msg = first["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    msg = msg[:1].lower() + msg[1:]
    n = len(err.errors())
    more = f" (and {n - 1} more problem{'s' if n > 2 else ''})" if n > 1 else ""
    return f"{source}: {loc}: {msg}{more}"


def config_error(source: str, err: ValidationError, prefix: str = "") -> ConfigError:
    return ConfigError(explain(source, err, prefix))
