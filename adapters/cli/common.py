"""What every command shares: the one-sentence user error, argument types and the panel loader."""
from __future__ import annotations

import argparse
import datetime as dt


class UserError(Exception):
    """A problem the user can fix (bad flag, file, config): printed as one sentence."""


def iso_date(text: str) -> str:
    """argparse type for --start/--end: YYYY-MM-DD, checked at parse time."""
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date in YYYY-MM-DD form") from None


def add_common(p: argparse.ArgumentParser, data: bool = True) -> None:
    if data:
        p.add_argument("--data-dir", help="market data directory (default: $ALVH_DATA_DIR, then ~/.cache/alvh/data)")
    p.add_argument("--log-json", action="store_true", help="JSON-lines logs (for log shippers)")
    p.add_argument("--log-level", default="INFO")


def load_panel_for(args, start=None, end=None):
    from adapters.data.panel import load_panel, resolve_data_dir

    data_dir = resolve_data_dir(getattr(args, "data_dir", None))
    return load_panel(data_dir)
