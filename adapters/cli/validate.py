"""`alvh validate` and `alvh calibrate`: fidelity of the simulator against everything real in the data.

    alvh validate [--out DIR] [--start DATE] [--end DATE] [--config TOML] [--no-sensitivity]
    alvh calibrate [--out PATH] [--dry-run] [--ensemble [PATH]]

validate writes to DIR (default out/validate): report.md (every table), summary.json (the acceptance figures
of issues #4 and #9 with met/short flags), CSV tables and PNG plots (analysis/validation*.py). calibrate refits the
pricing parameters on real quotes (the regime SPX surface, the SPX spread, the VIX-option smile;
analysis/calibration.py documents the method) and writes a TOML fragment to PATH, relative to the working directory
(default config/calibrated.toml: in a clone, the committed copy validate prices with), never into the installed
package. calibrate --ensemble writes the surface ensemble instead (analysis/surface_ensemble.py; default
config/surface_ensemble.toml, relative to the working directory).
"""
from __future__ import annotations

import structlog

from adapters.cli.common import add_common, iso_date, out_dir, out_file, panel_for, window
from analysis.validation import FULL_END, FULL_START
from strategies.needs import SeriesNeed

# what the CNDR and VXTH replicas read over the whole window (the ETP comparisons use each ETP where it exists)
VALIDATION_NEEDS = [SeriesNeed(s, "the CNDR and VXTH replicas") for s in ("spx", "vix", "rate", "vx")]

# relative to the working directory: in a clone that is the repo's config/calibrated.toml (what validate reads)
CALIBRATED_OUT = "config/calibrated.toml"
ENSEMBLE_OUT = "config/surface_ensemble.toml"

log = structlog.get_logger("alvh.validate")


def cmd_validate(args) -> int:
    from analysis.validation import pricing_for, run_validation
    from analysis.validation_report import format_acceptance, write_outputs

    start, end = window(args.start, args.end, FULL_START, FULL_END)
    out = out_dir(args.out)
    pricing, source = pricing_for(args.config)
    data_dir, panel = panel_for(args, VALIDATION_NEEDS, start, end, label="alvh validate")
    v = run_validation(panel, data_dir, args.start, args.end, pricing, source, sensitivity=not args.no_sensitivity)
    print(f"alvh validate: {v.start} .. {v.end} (pricing: {source})")
    print(format_acceptance(v))
    if out is not None:
        paths = write_outputs(v, out)
        print(f"wrote {len(paths)} files to {args.out} (report: {out / 'report.md'})")
    log.info("validate_done", seconds=round(v.seconds, 2))
    return 0


def cmd_calibrate(args) -> int:
    from analysis.calibration import format_report, run_calibration, write_calibrated
    from engine.marketmodel import PricingParams

    if args.ensemble is not None:
        return _ensemble(args)
    target = None if args.dry_run else out_file(args.out, "--out")
    data_dir, panel = panel_for(args)
    cal = run_calibration(panel, data_dir, PricingParams())
    print(format_report(cal))
    if target is not None:
        p = write_calibrated(cal, target)
        print(f"wrote {p}")
    return 0


def _ensemble(args) -> int:
    from analysis.surface_ensemble import build_ensemble, format_report, run_config_pricing, write_ensemble

    target = None if args.dry_run else out_file(args.ensemble, "--ensemble")
    base = run_config_pricing()
    data_dir, panel = panel_for(args)
    ens = build_ensemble(panel, data_dir, base)
    print(format_report(ens))
    if target is not None:
        print(f"wrote {write_ensemble(ens, target)} ({len(ens.members)} members)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("validate", help="fidelity report: VX blends vs ETPs, SPX surface vs real chains, VIX options, "
                                        "Feb 2018 condors, CNDR/VXTH replicas")
    p.add_argument("--out", default="out/validate", help="directory for report.md, plots and tables ('' to skip)")
    p.add_argument("--start", type=iso_date, help=f"first day (default {FULL_START})")
    p.add_argument("--end", type=iso_date, help=f"last day (default {FULL_END})")
    p.add_argument("--config", help="take pricing from this config (default: defaults + config/calibrated.toml)")
    p.add_argument("--no-sensitivity", action="store_true", help="skip the VXTH vol-assumption sensitivity runs")
    add_common(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("calibrate", help="refit the SPX surface, SPX spread and VIX-option smile on real quotes; report in and out of sample")
    p.add_argument("--out", default=CALIBRATED_OUT,
                   help=f"TOML file to write, relative to the working directory (default {CALIBRATED_OUT})")
    p.add_argument("--dry-run", action="store_true", help="print the fit without writing the file")
    p.add_argument("--ensemble", nargs="?", const=ENSEMBLE_OUT, default=None, metavar="PATH",
                   help="instead, judge the surface variants and write the ensemble the verdict runs over "
                        f"(default {ENSEMBLE_OUT}; docs/fidelity.md section 6)")
    add_common(p)
    p.set_defaults(func=cmd_calibrate)
