"""One way to say what is wrong with a configuration: `file: dotted.key[0].path: what is wrong`."""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class ConfigError(Exception):
    """One sentence naming the file and the key. The CLI prints it and exits 2 before any data is read."""


_MESSAGES = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
}


def key_path(loc: tuple, data: Any = None) -> str:
    """('hedge', 'layers', 0, 'threshold') -> 'hedge.layers[0].threshold'.

    Pydantic puts the tag of a discriminated union (the instrument `type`, the hedge model) into the location;
    those are not keys the user wrote. With the validated input at hand a part is kept only where the input has
    it (or where it is the last part: a missing or unknown key); without it, capitalised model tags are dropped.
    """
    out = ""
    cur = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if data is not None:
            if isinstance(cur, dict) and part in cur or isinstance(cur, (list, tuple)) and isinstance(part, int) and 0 <= part < len(cur):
                cur = cur[part]
            elif not last:
                continue
        elif isinstance(part, str) and part[:1].isupper():
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def explain(source: str, err: ValidationError, data: Any = None, prefix: str = "") -> str:
    """The first problem of a pydantic error as one sentence; further problems are counted, not listed.
    `prefix` names the table the validated data sits in when it is not the whole file (e.g. "hedge")."""
    first = err.errors()[0]
    loc = key_path(tuple(first["loc"]), data)
    if prefix:
        loc = prefix if loc == "<root>" else f"{prefix}{loc}" if loc.startswith("[") else f"{prefix}.{loc}"
    msg = _MESSAGES.get(first["type"], first["msg"])
    for noise in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(noise)
    msg = msg[:1].lower() + msg[1:]
    n = len(err.errors())
    more = f" (and {n - 1} more problem{'s' if n > 2 else ''})" if n > 1 else ""
    return f"{source}: {loc}: {msg}{more}"


def config_error(source: str, err: ValidationError, data: Any = None, prefix: str = "") -> ConfigError:
    return ConfigError(explain(source, err, data, prefix))
