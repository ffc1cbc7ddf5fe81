"""`alvh run`, `alvh status`, `alvh halt`, `alvh resume`: the IB paper daemon and its controls."""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib.util
import json
import logging
import sys
import time
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
    """--state as given (relative to the working directory), else the config's daemon.state_path (relative to
    the config file)."""
    if getattr(args, "state", None):
        return Path(args.state)
    if getattr(args, "config", None):
        from adapters.live.state import configured_state_path
        from config.settings import load_config

        cfg = load_config(args.config)
        if cfg.daemon is None:
            raise UserError(f"{args.config}: has no [daemon] table, so no daemon.state_path: give --state PATH")
        return configured_state_path(cfg)
    raise UserError("give --config (to read daemon.state_path) or --state PATH")


def _open_store(path: Path, readonly: bool = False):
    """An existing store written by a daemon, or one sentence why not (never a new, empty store)."""
    from adapters.live.errors import StateError
    from adapters.live.state import StateStore

    try:
        st = StateStore.open_existing(path, readonly=readonly)
    except StateError as e:
        raise UserError(f"{e} (has `alvh run` been started with this config?)") from None
    if st.identity().get("mode") is None:
        st.close()
        raise UserError(f"{path} is a state file no daemon has run on yet: nothing to {'read' if readonly else 'change'}")
    return st


def _sqlite_guard(path: Path):
    """SQLite errors past the opening checks (a lock taken meanwhile, a damaged page): one sentence."""
    import sqlite3

    from adapters.live.state import describe_sqlite_error

    @contextlib.contextmanager
    def guard():
        try:
            yield
        except sqlite3.Error as e:
            raise UserError(describe_sqlite_error(path, e)) from None

    return guard()


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
    from adapters.live.errors import DaemonError
    from adapters.live.paper_replay import run_paper_replay

    with _sqlite_guard(Path(params.state_path)):
        try:
            if day:
                when = _session_day(day, "--paper-replay" if args.paper_replay else "daemon.replay.date")
                panel = None
                if params.replay.use_panel:   # the pre-day state is replayed from the warm-up start to the day
                    warmup = params.replay.warmup_start or cfg.run.start
                    _, panel = panel_for(args, series_needs(cfg), warmup, when, label=cfg.source)
                return asyncio.run(run_paper_replay(cfg, params, when, panel, speed=args.speed,
                                                    state_path=args.state or None))
            daemon = d.Daemon(cfg, params, allow_live=args.allow_live)
            return asyncio.run(daemon.run())
        except DaemonError as e:
            raise UserError(str(e)) from None


def _fmt_status(rep: dict) -> str:
    lines = [f"state      {rep['state_path']}"]
    lines.append(f"account    {rep['account'] or '-'}")
    d = rep.get("daemon") or {}
    lines.append(f"mode       {(rep.get('identity') or {}).get('mode') or d.get('mode', '-')}  "
                 f"(config {d.get('config', '-')}, pid {d.get('pid', '-')})")
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
                qty = ", ".join(f"{q:+d} {k}" for k, q in la.get("qty", []))
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
    _daemon_module()  # documented: the daemon's commands need the ib extra (status only reads the store)
    from adapters.live.status import status_report

    path = _state_path(args)
    _open_store(path, readonly=True).close()
    with _sqlite_guard(path):
        rep = status_report(path)
    if args.json:
        print(json.dumps(rep, indent=2, sort_keys=True, default=str))
    else:
        print(_fmt_status(rep))
    return 0


EXIT_HALT_UNCONFIRMED = 3


def cmd_halt(args) -> int:
    """Set the kill switch and wait until the running daemon confirms every working order cancelled."""
    from adapters.live.status import heartbeat_age

    path = _state_path(args)
    st = _open_store(path)
    try:
        with _sqlite_guard(path):
            request = st.set_halted(args.reason or "operator kill switch", by="cli")
            hb = st.get_meta("heartbeat") or {}
            age = heartbeat_age(hb)
            running = age is not None and age < max(10.0, 5 * float(hb.get("poll", 1.0)))
            ack = None
            end = time.monotonic() + args.wait
            while running and time.monotonic() < end:
                got = st.get_meta("halt_ack")
                if got is not None and got.get("for") == request["at"]:
                    ack = got
                    break
                time.sleep(0.1)
            working = [r.intent_id for r in st.intents(open_only=True)]
    finally:
        st.close()
    where = f"trading halted ({path})"
    if ack is not None:
        if not ack["unconfirmed"]:
            print(f"alvh halt: {where}; the daemon confirmed every working order cancelled "
                  f"({len(ack['cancelled'])}: {', '.join(ack['cancelled']) or 'none was working'}). `alvh resume` to undo.")
            return 0
        print(f"alvh halt: {where}, but IB did not confirm the cancel of {len(ack['unconfirmed'])} order(s): "
              f"{', '.join(ack['unconfirmed'])} (check them in TWS).", file=sys.stderr)
        return EXIT_HALT_UNCONFIRMED
    if not running:
        if not working:
            print(f"alvh halt: {where}; no daemon is running on it and the journal has no working order. "
                  "`alvh resume` to undo.")
            return 0
        print(f"alvh halt: {where}; no daemon is running on it (last heartbeat {hb.get('at', 'never')}), so nothing "
              f"could be confirmed: {len(working)} order(s) journaled as working ({', '.join(working)}) are cancelled "
              "at its next start.", file=sys.stderr)
        return EXIT_HALT_UNCONFIRMED
    print(f"alvh halt: {where}, but the daemon did not confirm within {args.wait:g}s; "
          f"{len(working)} order(s) journaled as working: {', '.join(working) or 'none'}.", file=sys.stderr)
    return EXIT_HALT_UNCONFIRMED


def cmd_resume(args) -> int:
    path = _state_path(args)
    st = _open_store(path)
    try:
        with _sqlite_guard(path):
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
    p.add_argument("--state", help="state store path (overrides daemon.state_path; a rehearsal defaults to its own "
                                   "<state_path stem>.rehearsal-DATE.sqlite)")
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
            q.add_argument("--wait", type=float, default=30.0,
                           help="seconds to wait for the daemon to confirm every order cancelled (default 30)")
        add_common(q, data=False)
        q.set_defaults(func=func)

