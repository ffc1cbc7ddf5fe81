"""What every command shares: the one-sentence user error, argument types, the output directory check and the
panel loader that first checks the data a run needs."""
from __future__ import annotations

import argparse
import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class UserError(Exception):
    """A problem the user can fix (bad flag, file, config): printed as one sentence."""


def iso_date(text: str) -> str:
    """argparse type for --start/--end: YYYY-MM-DD, checked at parse time."""
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date in YYYY-MM-DD form") from None


def _number(text: str, kind: type, what: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a {what}") from None


def non_negative(text: str) -> float:
    """argparse type: a number >= 0."""
    value = _number(text, float, "number")
    if not value >= 0:   # also NaN
        raise argparse.ArgumentTypeError(f"'{text}' must be >= 0")
    return value


def positive(text: str) -> float:
    """argparse type: a number > 0."""
    value = non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be > 0")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    n = _number(text, int, "whole number")
    if n < 1:
        raise argparse.ArgumentTypeError(f"'{text}' must be at least 1")
    return n


def log_level(text: str) -> str:
    """argparse type for --log-level: one of LOG_LEVELS, any case."""
    if text.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"'{text}' is not a log level; use one of {', '.join(LOG_LEVELS)}")
    return text.upper()


def add_common(p: argparse.ArgumentParser, data: bool = True) -> None:
    if data:
        p.add_argument("--data-dir", help="market data directory (default: $ALVH_DATA_DIR, then ~/.cache/alvh/data)")
    p.add_argument("--log-json", action="store_true", help="JSON-lines logs (for log shippers)")
    p.add_argument("--log-level", type=log_level, default="INFO", help=f"one of {', '.join(LOG_LEVELS)} (default INFO)")


def window(start: str | dt.date | None, end: str | dt.date | None, default_start, default_end) -> tuple[str, str]:
    """The run window from --start/--end over the config's defaults, checked to be non-empty."""
    s = str(start or default_start)
    e = str(end or default_end)
    if e <= s:
        first = f"--start {s}" if start else f"the default start {s}"
        last = f"--end {e}" if end else f"the default end {e}"
        raise UserError(f"{last} must be after {first}" + ("" if end else ": give --end too"))
    return s, e


def out_dir(value: str | None, flag: str = "--out") -> Path | None:
    """An output directory, created now so a run never fails at its end for want of it ('' or None: none)."""
    if not value:
        return None
    p = Path(value).expanduser()
    if p.exists() and not p.is_dir():
        raise UserError(f"{flag} {value}: is a file, not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{flag} {value}: cannot create the directory ({e.strerror})") from None
    if not os.access(p, os.W_OK):
        raise UserError(f"{flag} {value}: the directory is not writable")
    return p


def out_file(value: str | None, flag: str) -> Path | None:
    """An output file whose directory exists (or is created now) and that is not a directory itself."""
    if not value:
        return None
    p = Path(value).expanduser()
    if p.is_dir():
        raise UserError(f"{flag} {value}: is a directory, not a file")
    out_dir(str(p.parent), flag)
    return p


def data_dir_for(args, needs: Sequence = (), label: str = "this run") -> Path:
    """--data-dir, then $ALVH_DATA_DIR, then ~/.cache/alvh/data; every file `needs` (strategies/needs.py)
    comes from must be there - all missing ones are named in one sentence."""
    from adapters.data.errors import DataError
    from adapters.data.panel import resolve_data_dir
    from adapters.data.requirements import check_files

    try:
        data_dir = resolve_data_dir(getattr(args, "data_dir", None))
    except DataError:
        given = getattr(args, "data_dir", None) or os.environ.get("ALVH_DATA_DIR")
        if needs and given and Path(given).expanduser().is_dir():
            check_files(Path(given).expanduser(), needs, label)   # names every missing file, not only the first
        raise
    if needs:
        check_files(data_dir, needs, label)
    return data_dir


def panel_for(args, needs: Sequence = (), start=None, end=None, label: str = "this run"):
    """(data dir, market panel) with the needed files present and, when a window is given, covering it."""
    from adapters.data.panel import load_panel
    from adapters.data.requirements import check_coverage

    data_dir = data_dir_for(args, needs, label)
    panel = load_panel(data_dir)
    if needs and start is not None and end is not None:
        check_coverage(panel, needs, start, end, label)
    return data_dir, panel


def load_panel_for(args, start=None, end=None):
    """The market panel of the data directory (no per-run checks: callers that know their needs use panel_for)."""
    return panel_for(args)[1]
