"""`alvh validate` and `alvh calibrate`: fidelity of the simulator against everything real in the data.

    alvh validate [--out DIR] [--start DATE] [--end DATE] [--config TOML] [--no-sensitivity]
    alvh calibrate [--out PATH] [--dry-run]

validate writes to DIR (default out/validate): report.md (every table), summary.json (the acceptance figures
of issues #4 and #9 with met/short flags), CSV tables and PNG plots (analysis/validation*.py). calibrate refits the
pricing parameters on real quotes (the regime SPX surface, the SPX spread, the VIX-option smile) and writes a TOML
fragment to PATH (default ./calibrated.toml in the working directory; analysis/calibration.py documents the
method); config/calibrated.toml is the committed copy validate prices with.
"""
from __future__ import annotations

from pathlib import Path

import structlog

from adapters.cli.common import UserError, add_common, iso_date, load_panel_for
from analysis.validation import FULL_END, FULL_START

log = structlog.get_logger("alvh.validate")


def cmd_validate(args) -> int:
    from adapters.data.panel import resolve_data_dir
    from analysis.validation import pricing_for, run_validation
    from analysis.validation_report import format_acceptance, write_outputs

    if args.start and args.end and args.end <= args.start:
        raise UserError(f"--end {args.end} must be after --start {args.start}")
    pricing, source = pricing_for(args.config)
    panel = load_panel_for(args)
    data_dir = resolve_data_dir(getattr(args, "data_dir", None))
    v = run_validation(panel, data_dir, args.start, args.end, pricing, source, sensitivity=not args.no_sensitivity)
    print(f"alvh validate: {v.start} .. {v.end} (pricing: {source})")
    print(format_acceptance(v))
    if args.out:
        paths = write_outputs(v, Path(args.out))
        print(f"wrote {len(paths)} files to {args.out} (report: {Path(args.out) / 'report.md'})")
    log.info("validate_done", seconds=round(v.seconds, 2))
    return 0


def cmd_calibrate(args) -> int:
    from adapters.data.panel import resolve_data_dir
    from analysis.calibration import format_report, run_calibration, write_calibrated
    from engine.marketmodel import PricingParams

    panel = load_panel_for(args)
    data_dir = resolve_data_dir(getattr(args, "data_dir", None))
    cal = run_calibration(panel, data_dir, PricingParams())
    print(format_report(cal))
    if not args.dry_run:
        p = write_calibrated(cal, Path(args.out))
        print(f"wrote {p}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("validate", help="fidelity report: VX blends vs ETPs, SPX surface vs real chains, CNDR/VXTH replicas")
    p.add_argument("--out", default="out/validate", help="directory for report.md, plots and tables ('' to skip)")
    p.add_argument("--start", type=iso_date, help=f"first day (default {FULL_START})")
    p.add_argument("--end", type=iso_date, help=f"last day (default {FULL_END})")
    p.add_argument("--config", help="take pricing from this config (default: defaults + config/calibrated.toml)")
    p.add_argument("--no-sensitivity", action="store_true", help="skip the VXTH vol-assumption sensitivity runs")
    add_common(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("calibrate", help="refit the SPX surface, SPX spread and VIX-option smile on real quotes; report in and out of sample")
    p.add_argument("--out", default="calibrated.toml",
                   help="TOML file to write (default ./calibrated.toml in the working directory, never inside the package)")
    p.add_argument("--dry-run", action="store_true", help="print the fit without writing the file")
    add_common(p)
    p.set_defaults(func=cmd_calibrate)
