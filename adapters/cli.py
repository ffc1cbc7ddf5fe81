"""The `alvh` command line. Each command is a small function; errors become one sentence and exit 1."""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import structlog

from adapters.logs import configure_logging

log = structlog.get_logger("alvh.cli")

# Commands that live in their own modules register themselves here: module path -> register(subparsers)
COMMAND_MODULES = [
    "adapters.commands_verdict",
    "adapters.commands_validate",
    "adapters.commands_daemon",
]


class UserError(Exception):
    """A problem the user can fix (bad flag, file, config): printed as one sentence."""


def iso_date(text: str) -> str:
    """argparse type for --start/--end: YYYY-MM-DD, checked at parse time."""
    import datetime as dt

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


def cmd_replay(args) -> int:
    from adapters.backtest import format_summary, run_backtest, write_outputs
    from config.settings import load_config

    cfg = load_config(args.config)
    panel = load_panel_for(args)
    result = run_backtest(cfg, panel, start=args.start, end=args.end)
    print(f"alvh replay: {cfg.name} ({cfg.source})")
    print(format_summary(result))
    if args.out:
        paths = write_outputs(result, Path(args.out))
        print(f"wrote {len(paths)} files to {args.out}")
    log.info("replay_done", events=result.events, seconds=round(result.wall_seconds, 3))
    return 0


def cmd_data_check(args) -> int:
    from adapters.data.panel import check_data, resolve_data_dir

    data_dir = resolve_data_dir(args.data_dir)
    report = check_data(data_dir)
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_rows", 500):
        print(report.coverage.to_string(index=False))
    for w in report.warnings:
        print(f"warning: {w}")
    for e in report.errors:
        print(f"error: {e}", file=sys.stderr)
    if not report.ok:
        print(f"alvh data check: {len(report.errors)} error(s) in {data_dir}", file=sys.stderr)
        return 1
    print(f"alvh data check: OK ({data_dir})")
    return 0


def cmd_data_fetch(args) -> int:
    from adapters.data.fetch import main_fetch

    argv = []
    if args.dest:
        argv += ["--dest", args.dest]
    if args.quiet:
        argv.append("--quiet")
    if args.only:
        argv += ["--only", args.only]
    if args.max_age is not None:
        argv += ["--max-age", str(args.max_age)]
    return main_fetch(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alvh", description="SPX iron condors, layered VIX hedges, honest backtests, IB paper trading")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("replay", help="replay history through the strategies and print a summary")
    p.add_argument("--config", default="config/condor.toml")
    p.add_argument("--start", type=iso_date)
    p.add_argument("--end", type=iso_date)
    p.add_argument("--out", default="out/replay", help="directory for equity/trades/fills CSV+Parquet ('' to skip)")
    add_common(p)
    p.set_defaults(func=cmd_replay)

    data = sub.add_parser("data", help="market data: check or fetch")
    dsub = data.add_subparsers(dest="data_command", required=True)
    p = dsub.add_parser("check", help="validate every series and print coverage")
    add_common(p)
    p.set_defaults(func=cmd_data_check)
    p = dsub.add_parser("fetch", help="download the public sources into the local cache")
    p.add_argument("--dest")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--only", help="comma-separated source names")
    p.add_argument("--max-age", type=float)
    add_common(p, data=False)
    p.set_defaults(func=cmd_data_fetch)

    for module in COMMAND_MODULES:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name == module:
                continue  # command group not installed in this build
            raise
        mod.register(sub, add_common)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(json=getattr(args, "log_json", False), level=getattr(args, "log_level", "INFO"))
    from adapters.data.errors import DataError
    from adapters.replay import ReplayRangeError
    from config.settings import ConfigError

    try:
        return int(args.func(args) or 0)
    except (UserError, DataError, ConfigError, ReplayRangeError) as e:
        print(f"alvh: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("alvh: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # `python -m adapters.cli` runs this file as __main__; use the importable module so command modules
    # and this entry point share one UserError class
    from adapters.cli import main as _main

    sys.exit(_main())
