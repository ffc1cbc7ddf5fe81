"""`alvh data check` and `alvh data fetch`: validate a data directory, build one from public sources."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from adapters.cli.common import add_common, non_negative, positive
from adapters.data.public_sources import SPX_PROVIDERS


def _check_dir(args) -> Path:
    """The directory to check: one given explicitly is checked even when empty (every missing file is listed)."""
    from adapters.data.errors import DataError
    from adapters.data.panel import resolve_data_dir

    try:
        return resolve_data_dir(args.data_dir)
    except DataError:
        given = args.data_dir or os.environ.get("ALVH_DATA_DIR")
        if given and Path(given).expanduser().is_dir():
            return Path(given).expanduser()
        raise


def cmd_data_check(args) -> int:
    import pandas as pd

    from adapters.data.panel import check_data

    cfg = None
    if args.config:   # read first: a bad config stops here, before any data file is read
        from config.settings import load_config

        cfg = load_config(args.config)
    data_dir = _check_dir(args)
    report = check_data(data_dir)
    with pd.option_context("display.width", 160, "display.max_rows", 500):
        print(report.coverage.to_string(index=False))
    if report.stale_spx_opens:
        per_year = ", ".join(f"{y}: {n}" for y, n in report.stale_spx_opens.items())
        print(f"stale SPX opens (open == prior close, used as no open): {sum(report.stale_spx_opens.values())} "
              f"({per_year})")
    for w in report.warnings:
        print(f"warning: {w}")
    for e in report.errors:
        print(f"error: {e}", file=sys.stderr)
    if cfg is not None:
        return _config_check(cfg, data_dir, report)
    if not report.ok:
        print(f"alvh data check: {len(report.errors)} error(s) in {data_dir}", file=sys.stderr)
        return 1
    print(f"alvh data check: OK ({data_dir})")
    return 0


def _config_check(cfg, data_dir: Path, report) -> int:
    """Can this directory run this config over its run window? Every needed series with its span, then one line."""
    from adapters.data.panel import load_panel
    from adapters.data.requirements import (
        coverage_problems,
        last_covered_session,
        missing_files,
        series_span,
        source_of,
    )
    from config.wiring import series_needs

    needs = series_needs(cfg)
    head = f"alvh data check: {cfg.source}"
    missing = missing_files(data_dir, needs)
    if missing:
        print(f"{head} cannot run on {data_dir}, {len(missing)} missing: {'; '.join(missing)}", file=sys.stderr)
        return 1
    if not report.ok:
        print(f"{head} cannot run on {data_dir}: the data does not load while a file has errors "
              f"({len(report.errors)}, listed above; the first: {report.errors[0]})", file=sys.stderr)
        return 1
    panel = load_panel(data_dir)
    print(f"\nseries {cfg.source} reads:")
    for n in needs:
        lo, hi = series_span(panel, n.series)
        span = f"{lo.date()} .. {hi.date()}" if lo is not None else "no values"
        use = "over the run window" if n.whole_window else "where present"
        src = source_of(n.series)
        files = " + ".join((src.path, *src.extensions))
        print(f"  {n.series:<8} {span:<24} {use:<20} {files}  (for {n.why})")
    start, end = cfg.run.start, cfg.run.end
    problems = coverage_problems(panel, needs, start, end)
    if problems:
        print(f"{head} cannot run {start} .. {end} on {data_dir}: {'; '.join(problems)}", file=sys.stderr)
        return 1
    latest = last_covered_session(panel, needs)
    print(f"{head} can run on {data_dir} over {start} .. {end}; the latest session its data covers is "
          f"{latest.date() if latest is not None else '-'}")
    return 0


def _source_names(text: str) -> list[str]:
    """argparse type for --only: comma-separated catalogue names, checked at parse time."""
    from adapters.data.public_sources import select_sources

    try:
        return [s.name for s in select_sources(text)]
    except KeyError as e:
        raise argparse.ArgumentTypeError(e.args[0]) from None


def _base_override(text: str) -> dict[str, str]:
    """argparse type for --base-url-override: NAME=URL or a bare mirror-root URL."""
    from adapters.data.public_sources import parse_base_overrides

    try:
        return parse_base_overrides(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cmd_data_fetch(args) -> int:
    from adapters.data.fetch import catalogue_lines, default_dest, fetch_all

    if args.list:
        print("\n".join(catalogue_lines()))
        return 0
    only = None if not args.only else [name for names in args.only for name in names]
    overrides: dict[str, str] = {}
    for item in args.base_url_override:
        overrides.update(item)
    dest = Path(args.dest).expanduser() if args.dest else default_dest()
    try:
        report = fetch_all(dest, sources=only, base_overrides=overrides, max_age_days=args.max_age,
                           progress=not args.quiet, timeout=args.timeout, check=not args.no_check,
                           spx_provider=args.spx_source)
    except (OSError, RuntimeError) as e:
        print(f"alvh data fetch: {e}", file=sys.stderr)
        return 1

    if report.stopped:
        print(f"alvh data fetch: {report.stopped}.", file=sys.stderr)
    for r in report.failed:
        if not (report.stopped and r.unreachable):     # the stop sentence already says it once
            print(f"error: {r.error}", file=sys.stderr)
    for n in report.notices:
        print(f"warning: {n}.", file=sys.stderr)
    label = "warning" if report.partial else "error"
    for e in report.check_errors:
        print(f"{label}: data check: {e}", file=sys.stderr)
    if not args.quiet:
        for n in report.notes:
            print(f"note: {n}")
        for w in report.check_warnings[:20]:
            print(f"warning: data check: {w}")
        print(report.summary())
    return 0 if report.ok else 1


def register(sub) -> None:
    data = sub.add_parser("data", help="market data: check or fetch")
    dsub = data.add_subparsers(dest="data_command", required=True)
    p = dsub.add_parser("check", help="validate every series and print coverage; with --config: can it run that config?")
    p.add_argument("--config", help="also say whether this directory has every series the config reads, over its "
                                    "run window")
    add_common(p)
    p.set_defaults(func=cmd_data_check)
    p = dsub.add_parser(
        "fetch", help="download the public sources into the local cache",
        description="Download the public market-data sources (Cboe, CFE, FRED, Yahoo or Stooq) into a local directory "
                    "in the layout alvh reads, then validate it like `alvh data check` (docs/fetch.md).")
    p.add_argument("--dest", metavar="DIR",
                   help="target directory (default: $ALVH_CACHE_DIR/data or ~/.cache/alvh/data)")
    p.add_argument("--only", action="append", type=_source_names, metavar="NAME[,NAME]",
                   help="fetch only these sources (repeatable); --list shows the names")
    p.add_argument("--max-age", type=non_negative, default=1.0, metavar="DAYS",
                   help="re-check files confirmed more than DAYS ago (default 1; 0 = always)")
    p.add_argument("--quiet", action="store_true", help="no progress or summary; errors are still printed")
    p.add_argument("--timeout", type=positive, default=30.0, metavar="SECONDS",
                   help="timeout for each network operation (default 30)")
    p.add_argument("--base-url-override", action="append", type=_base_override, default=[], metavar="NAME=URL",
                   help="replace a base URL; NAME is a source, a host group or '*' for a mirror root "
                        "(repeatable; also $ALVH_FETCH_BASE)")
    p.add_argument("--no-check", action="store_true", help="skip the `alvh data check` validation at the end")
    p.add_argument("--spx-source", choices=SPX_PROVIDERS, default="auto",
                   help="SPX daily bars from: yahoo (needs `pip install 'alvh[fetch]'`), cboe (closes only, no key), "
                        "stooq (needs an API key in --base-url-override); auto = stooq if a spx/stooq override is "
                        "given, else yahoo if installed, else cboe")
    p.add_argument("--list", action="store_true", help="print the catalogue and exit")
    add_common(p, data=False)
    p.set_defaults(func=cmd_data_fetch)
