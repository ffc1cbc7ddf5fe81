"""The market data directory for the benchmarks: --data-dir, then $ALVH_DATA_DIR, then the user cache (the same
rule as the CLI); a missing one ends the benchmark with one sentence."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def resolve(value: str | None) -> str:
    sys.path.insert(0, str(ROOT))
    from adapters.data.errors import DataError
    from adapters.data.panel import resolve_data_dir

    try:
        return str(resolve_data_dir(value))
    except DataError as e:
        raise SystemExit(str(e)) from None
