"""`alvh data check` and `alvh data fetch`: validate a data directory, build one from public sources."""
from __future__ import annotations

import sys

from adapters.cli.common import add_common


def cmd_data_check(args) -> int:
    import pandas as pd

    from adapters.data.panel import check_data, resolve_data_dir

    data_dir = resolve_data_dir(args.data_dir)
    report = check_data(data_dir)
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


def register(sub) -> None:
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
