"""`alvh replay`: one backtest of a configuration, summary printed, outputs written."""
from __future__ import annotations

import structlog

from adapters.cli.common import add_common, iso_date, out_dir, panel_for, window

log = structlog.get_logger("alvh.cli")


def cmd_replay(args) -> int:
    from adapters.sim.backtest import format_summary, run_backtest, write_outputs
    from config.settings import load_config
    from config.wiring import series_needs

    cfg = load_config(args.config)
    start, end = window(args.start, args.end, cfg.run.start, cfg.run.end)
    out = out_dir(args.out)
    _, panel = panel_for(args, series_needs(cfg), start, end, label=cfg.source)
    result = run_backtest(cfg, panel, start=start, end=end)
    print(f"alvh replay: {cfg.name} ({cfg.source})")
    print(format_summary(result))
    if out is not None:
        paths = write_outputs(result, out)
        print(f"wrote {len(paths)} files to {args.out}")
    log.info("replay_done", events=result.events, seconds=round(result.wall_seconds, 3))
    return 0


def register(sub) -> None:
    p = sub.add_parser("replay", help="replay history through the strategies and print a summary")
    p.add_argument("--config", default="config/condor.toml")
    p.add_argument("--start", type=iso_date)
    p.add_argument("--end", type=iso_date)
    p.add_argument("--out", default="out/replay", help="directory for equity/trades/fills CSV+Parquet ('' to skip)")
    add_common(p)
    p.set_defaults(func=cmd_replay)
