"""Base URLs of the public sources: the defaults, ``--base-url-override`` / ``$ALVH_FETCH_BASE``
mirrors and API keys, and the redaction of keys in anything written or printed."""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Protocol
from urllib.parse import urlsplit


class _Source(Protocol):
    """What a base URL depends on: a catalogue entry's name and group (adapters.data.public_sources.Source)."""

    name: str
    group: str

#: Default base URL of each host group. A URL template is ``{base}`` plus a fixed suffix.
DEFAULT_BASES: dict[str, str] = {
    "cboe_index": "https://cdn.cboe.com/api/global/us_indices/daily_prices",
    "cboe_vx": "https://cdn.cboe.com/data/us/futures/market_statistics/historical_data/VX",
    "cboe_cfe": "https://cdn.cboe.com/resources/futures/archive/volume-and-price",
    "fred": "https://fred.stlouisfed.org/graph/fredgraph.csv",
    "stooq": "https://stooq.com/q/d/l/",
}

#: Environment variable: either one mirror root URL (every default base keeps its path and
#: is re-rooted there) or comma-separated ``name=url`` pairs like ``--base-url-override``.
ENV_BASE = "ALVH_FETCH_BASE"

_PAIR_RE = re.compile(r"^\s*([A-Za-z0-9_*.-]+)\s*=\s*(\S.*?)\s*$")


def parse_base_overrides(items: Iterable[str] | str | None) -> dict[str, str]:
    """Parse ``name=url`` strings (or one comma-separated string) into a dict.

    A bare URL without ``name=`` is a mirror root for every source (key ``"*"``).
    ``name`` is a source name (``vix``, ``vx``, ``dtb3`` ...), a host group
    (``cboe_index``, ``cboe_vx``, ``fred``, ``stooq``) or ``*``.
    """
    if items is None:
        return {}
    if isinstance(items, str):
        items = [items]
    out: dict[str, str] = {}
    for item in items:
        for part in _split_pairs(item):
            m = _PAIR_RE.match(part)
            if m and "://" not in m.group(1):
                out[m.group(1)] = m.group(2)
            elif "://" in part:
                out["*"] = part.strip()
            else:
                raise ValueError(f"bad base-URL override {part!r}: expected NAME=URL or a mirror root URL")
    return out


def _split_pairs(item: str) -> list[str]:
    # "a=http://x,b=http://y" -> two pairs; a lone URL (which may itself contain commas
    # in its query) is kept whole.
    pieces = [p for p in item.split(",") if p.strip()]
    if len(pieces) > 1 and all(_PAIR_RE.match(p) and "://" not in p.split("=", 1)[0] for p in pieces):
        return pieces
    return [item] if item.strip() else []


def resolve_base(source: _Source, overrides: Mapping[str, str] | None = None,
                 env: Mapping[str, str] | None = None) -> str:
    """Base URL for ``source``: explicit override by source name, then by group, then a
    ``*`` mirror root, then ``$ALVH_FETCH_BASE``, then the public default."""
    default = DEFAULT_BASES[source.group]
    merged: dict[str, str] = {}
    env = os.environ if env is None else env
    if env.get(ENV_BASE):
        merged.update(parse_base_overrides(env[ENV_BASE]))
    merged.update(overrides or {})
    for key in (source.name, source.group):
        if key in merged:
            return merged[key]
    if "*" in merged:
        root = merged["*"].rstrip("/")
        return root + urlsplit(default).path
    return default


_SECRET_PARAM = re.compile(r"(?i)^(api_?key|key|token|access_?token|auth)$")


def redact_url(url: str) -> str:
    """``url`` with the values of key/token query parameters replaced by ``***`` (for logs,
    error messages, sidecars and SOURCES.md)."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    q = "&".join(
        f"{k}=***" if _SECRET_PARAM.match(k) else (f"{k}={v}" if sep else k)
        for k, sep, v in (p.partition("=") for p in parts.query.split("&"))
    )
    return parts._replace(query=q).geturl()
