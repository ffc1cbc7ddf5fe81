"""The `alvh` command line: one parser, one module per command group, errors as one sentence."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from adapters.cli.common import UserError
from adapters.cli.logs import configure_logging

# Command groups in the order `alvh --help` lists them; each module has register(subparsers).
COMMAND_MODULES = [
    "adapters.cli.replay",
    "adapters.cli.signal",
    "adapters.cli.data",
    "adapters.cli.verdict",
    "adapters.cli.validate",
    "adapters.cli.daemon",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alvh", description="SPX iron condors, layered VIX hedges, honest backtests, IB paper trading")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        mod = importlib.import_module(module)
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(json=getattr(args, "log_json", False), level=getattr(args, "log_level", "INFO"))
    from adapters.data.errors import DataError
    from adapters.sim.replay import ReplayRangeError
    from config.settings import ConfigError

    try:
        return int(args.func(args) or 0)
    except ConfigError as e:  # a bad config is a usage error, like a bad flag: exit 2, before any data is read
        print(f"alvh: error: {e}", file=sys.stderr)
        return 2
    except (UserError, DataError, ReplayRangeError) as e:
        print(f"alvh: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("alvh: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # output piped into a reader that stopped (| head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
