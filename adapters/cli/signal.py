"""`alvh signal`: what the configured strategies do on one day (condors to open and close, hedge layers against
their thresholds, target vs held, the orders), replayed from history without a broker (analysis/signal.py)."""
from __future__ import annotations

import datetime as dt
import json

from adapters.cli.common import UserError, add_common, iso_date, out_file, panel_for


def _date(text: str) -> str:
    return text if text == "latest" else iso_date(text)


def cmd_signal(args) -> int:
    from adapters.data.requirements import last_covered_session
    from analysis.signal import compute_signal
    from analysis.signal_report import format_text, to_json, write_html
    from config.settings import load_config
    from config.wiring import series_needs
    from engine.calendar import is_trading_day, next_trading_day, previous_trading_day

    cfg = load_config(args.config)
    html_path = out_file(args.html, "--html")
    needs = series_needs(cfg)
    start = cfg.run.start
    if args.date == "latest":
        _, panel = panel_for(args, needs, label=cfg.source)
        last = last_covered_session(panel, needs)
        if last is None:
            raise UserError(f"{cfg.source}: the data has no day on which every series it reads has a value")
        day = last.date()
    else:
        day = dt.date.fromisoformat(args.date)
        if not is_trading_day(day):
            raise UserError(f"--date {day}: not an NYSE session (a {day:%A}); the sessions either side are "
                            f"{previous_trading_day(day).date()} and {next_trading_day(day).date()}")
        if day <= start:
            raise UserError(f"--date {day}: must be after the config's run.start {start} (the history it replays)")
        _, panel = panel_for(args, needs, start, day, label=cfg.source)
    sig = compute_signal(cfg, panel, day, start)
    if args.json:
        print(json.dumps(to_json(sig), indent=2))
    else:
        print(format_text(sig))
    if html_path is not None:
        html_path.write_text(write_html(sig))
        if not args.json:
            print(f"\nwrote {html_path}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("signal", help="what the strategy does on a day: condors, hedge layers, orders (no broker)",
                       description="Replay the configuration from its run.start to DATE and print that day's "
                                   "decisions: condors to open (expiry, strikes, quantity, limit credit) and to close "
                                   "(and why), each hedge layer against its thresholds, target vs held per "
                                   "instrument, and the orders the daemon would send.")
    p.add_argument("--config", default="config/alvh.toml", help="run config (default: condor book + ALVH hedge)")
    p.add_argument("--date", type=_date, default="latest",
                   help="YYYY-MM-DD, or 'latest': the last session every series the config reads covers (default)")
    p.add_argument("--json", action="store_true", help="one JSON document instead of the text report")
    p.add_argument("--html", metavar="FILE", help="also write the report as one HTML page")
    add_common(p)
    p.set_defaults(func=cmd_signal)
