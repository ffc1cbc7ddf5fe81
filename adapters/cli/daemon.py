"""`alvh run`, `alvh status`, `alvh halt`, `alvh resume`: the IB paper daemon and its controls."""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib.util
import json
import logging
from pathlib import Path

import structlog

from adapters.cli.common import UserError, add_common, iso_date, non_negative, panel_for
from adapters.cli.logs import configure_logging

log = structlog.get_logger("alvh.daemon")


class _StdlibToStructlog(logging.Handler):
    """ib_async logs through the stdlib: forward its warnings/errors as JSON lines too."""

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # logging must never raise
            structlog.get_logger(record.name).log(record.levelno, "ib_async_log", message=record.getMessage()[:2000])


def _route_stdlib_logs(level: int = logging.WARNING) -> None:
    root = logging.getLogger("ib_async")
    root.handlers = [_StdlibToStructlog(level)]
    root.setLevel(level)
    root.propagate = False


def _daemon_module():
    """adapters.live.daemon, which needs ib_async: without the `ib` extra, one sentence instead of an ImportError."""
    try:
        ib = importlib.util.find_spec("ib_async")   # the IB connection imports it only when it connects
    except ValueError:   # present in sys.modules without a spec: blocked
        ib = None
    if ib is None:
        raise UserError("the daemon needs the Interactive Brokers extra, which is not installed (ib_async): "
                        "pip install 'alvh[ib]'")
    try:
        from adapters.live import daemon
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] in ("ib_async", "aeventkit", "nest_asyncio", "apscheduler", "tzlocal"):
            raise UserError(f"the daemon needs the Interactive Brokers extra, which is not installed ({e.name}): "
                            "pip install 'alvh[ib]'") from None
        raise
    return daemon


def _session_day(text: str, flag: str = "--paper-replay") -> dt.date:
    """An NYSE session: a weekend or holiday names the sessions either side of it."""
    from engine.calendar import is_trading_day, next_trading_day, previous_trading_day

    day = dt.date.fromisoformat(text)
    try:
        if is_trading_day(day):
            return day
        before, after = previous_trading_day(day).date(), next_trading_day(day).date()
    except ValueError as e:   # outside the exchange calendar's range
        raise UserError(f"{flag} {day}: {e}") from None
    raise UserError(f"{flag} {day}: not an NYSE session (a {day:%A}{' holiday' if day.weekday() < 5 else ''}); "
                    f"the sessions either side are {before} and {after}")


def _state_path(args) -> Path:
    if getattr(args, "state", None):
        return Path(args.state)
    if getattr(args, "config", None):
        from config.settings import load_config

        cfg = load_config(args.config)
        if cfg.daemon is None:
            raise UserError(f"{args.config}: has no [daemon] table, so no daemon.state_path: give --state PATH")
        return Path(cfg.daemon.state_path)
    raise UserError("give --config (to read daemon.state_path) or --state PATH")


def cmd_run(args) -> int:
    from config.settings import load_config
    from config.wiring import series_needs

    if not args.console_logs:
        configure_logging(json=True, level=args.log_level)
    cfg = load_config(args.config)
    d = _daemon_module()
    params = d.daemon_params(cfg)
    _route_stdlib_logs()
    if args.state:
        params = params.model_copy(update={"state_path": args.state})
    day = args.paper_replay or (params.replay.date.isoformat() if params.replay.date else None)
    try:
        if day:
            when = _session_day(day, "--paper-replay" if args.paper_replay else "daemon.replay.date")
            panel = None
            if params.replay.use_panel:   # the pre-day state is replayed from the warm-up start to the day
                warmup = params.replay.warmup_start or cfg.run.start
                _, panel = panel_for(args, series_needs(cfg), warmup, when, label=cfg.source)
            return asyncio.run(d.run_paper_replay(cfg, params, when, panel, speed=args.speed))
        daemon = d.Daemon(cfg, params, allow_live=args.allow_live)
        return asyncio.run(daemon.run())
    except d.DaemonError as e:
        raise UserError(str(e)) from None


def _fmt_status(rep: dict) -> str:
    lines = [f"state      {rep['state_path']}"]
    lines.append(f"account    {rep['account'] or '-'}")
    d = rep.get("daemon") or {}
    lines.append(f"mode       {d.get('mode', '-')}  (config {d.get('config', '-')}, pid {d.get('pid', '-')})")
    hb = rep.get("heartbeat") or {}
    age = rep.get("heartbeat_age_seconds")
    lines.append(f"heartbeat  {hb.get('at', 'never')}" + (f"  ({age:.0f}s ago, connection {hb.get('connection')}, "
                                                          f"ready {hb.get('ready')})" if age is not None else ""))
    h = rep.get("halted")
    lines.append(f"halted     {'YES: ' + h.get('reason', '') + ' (by ' + h.get('by', '') + ' at ' + h.get('at', '') + ')' if h else 'no'}")
    if rep.get("equity") is not None:
        lines.append(f"equity     {rep['equity']:,.2f}   cash {rep['cash']:,.2f}")
    lines.append("positions (ledger)")
    for p in rep["ledger_positions"] or []:
        lines.append(f"  {p['book']:<8} {p['instrument']:<28} {p['quantity']:>6}  avg {p['avg_price']:.4f}  mark {p['mark']:.4f}")
    if not rep["ledger_positions"]:
        lines.append("  (none)")
    lines.append("positions (IB, last reconcile)")
    for p in rep["broker_positions"] or []:
        lines.append(f"  {p['instrument']:<37} {p['quantity']:>6g}  ({p['updated']})")
    if not rep["broker_positions"]:
        lines.append("  (none)")
    lines.append("layers")
    if rep["layers"]:
        for book, layers in rep["layers"].items():
            for i, la in enumerate(layers):
                qty = ", ".join(f"{q:+d} {k.get('symbol') or k.get('root')} {k.get('expiry', '')} {k.get('strike', '')}{k.get('right', '')}".strip()
                                for k, q in la.get("qty", []))
                lines.append(f"  {book}[{i}] level {la.get('level', 0):g} units {la.get('units', 0):.2f}  {qty or 'flat'}")
    else:
        lines.append("  (none)")
    lines.append("working orders")
    for w in rep["working_orders"]:
        lines.append(f"  {w['intent']}  {w['state']}  {w['filled']}/{w['quantity']}  limit {w['limit']}  "
                     f"order {w['order_id']}  [{'; '.join(w['legs'])}]")
    if not rep["working_orders"]:
        lines.append("  (none)")
    return "\n".join(lines)


def cmd_status(args) -> int:
    status_report = _daemon_module().status_report
    path = _state_path(args)
    if not path.exists():
        raise UserError(f"no daemon state at {path} (has `alvh run` been started with this config?)")
    rep = status_report(path)
    if args.json:
        print(json.dumps(rep, indent=2, sort_keys=True, default=str))
    else:
        print(_fmt_status(rep))
    return 0


def cmd_halt(args) -> int:
    from adapters.live.state import StateStore

    path = _state_path(args)
    st = StateStore(path)
    try:
        st.set_halted(args.reason or "operator kill switch", by="cli")
    finally:
        st.close()
    print(f"alvh halt: trading halted ({path}); the daemon cancels working orders within a heartbeat. "
          "`alvh resume` to undo.")
    return 0


def cmd_resume(args) -> int:
    from adapters.live.state import StateStore

    path = _state_path(args)
    st = StateStore(path)
    try:
        was = st.halted()
        st.clear_halted()
    finally:
        st.close()
    print(f"alvh resume: {'trading resumed' if was else 'was not halted'} ({path})")
    return 0


def register(sub) -> None:
    p = sub.add_parser("run", help="run the daemon against an IB paper account (or rehearse a day: --paper-replay)")
    p.add_argument("--config", required=True, help="run config with a [daemon] table (see config/ib_paper.toml)")
    p.add_argument("--allow-live", action="store_true", help="permit a non-DU account (daemon.allow_live must agree)")
    p.add_argument("--paper-replay", metavar="DATE", type=iso_date,
                   help="rehearse this historical day (an NYSE session) against the loopback test server")
    p.add_argument("--speed", type=non_negative, help="paper replay: simulated seconds per wall second (0 = jump)")
    p.add_argument("--state", help="state store path (overrides daemon.state_path)")
    p.add_argument("--console-logs", action="store_true", help="human-readable logs instead of JSON lines")
    add_common(p)
    p.set_defaults(func=cmd_run)

    for name, func, text in (("status", cmd_status, "print account, positions, layers, working orders, heartbeat"),
                             ("halt", cmd_halt, "kill switch: cancel working orders and stop new ones until resume"),
                             ("resume", cmd_resume, "clear the kill switch")):
        q = sub.add_parser(name, help=text)
        q.add_argument("--config", help="run config (its daemon.state_path)")
        q.add_argument("--state", help="state store path")
        if name == "status":
            q.add_argument("--json", action="store_true")
        if name == "halt":
            q.add_argument("--reason", default="")
        add_common(q, data=False)
        q.set_defaults(func=func)

