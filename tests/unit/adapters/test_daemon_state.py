"""The daemon's state store, intent journal, schedule and config - no network, no IB."""
from __future__ import annotations

import datetime as dt
import itertools
import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.live.account import check_account, choose_account
from adapters.live.codec import dumps, loads, order_from_dict, order_to_dict
from adapters.live.daemon import daemon_params
from adapters.live.errors import AccountRefused, StateError
from adapters.live.scheduler import Job, in_reset_window, job_window, plan_session
from adapters.live.state import StateStore
from adapters.live.status import status_report
from config.daemon import ScheduleParams
from config.settings import ConfigError, RunConfig
from engine.clock import ET
from engine.crashpoints import crashpoint
from engine.events import FillEvent, LegFill, Phase
from engine.instruments import Equity, instrument_from_dict, spx_option, vix_option, vx_future
from engine.ledger import Ledger
from engine.orders import OrderLeg, OrderRequest
from engine.ports import ExecutionRow

ROOT = Path(__file__).resolve().parents[3]
# the `alvh` console script (adapters.cli.main:main)
ALVH = [sys.executable, "-c", "import sys; from adapters.cli.main import main; sys.exit(main(sys.argv[1:]))"]
DAY = dt.date(2024, 1, 10)


def condor_order(intent="condor-20240110-open-abc", qty=2) -> OrderRequest:
    e = dt.date(2024, 2, 16)
    legs = tuple(OrderLeg(spx_option(e, k, r, root), s) for k, r, s, root in
                 ((4700, "P", 1, "SPX"), (4800, "P", -1, "SPX"), (5100, "C", -1, "SPXW"), (5200, "C", 1, "SPXW")))
    return OrderRequest(intent, "condor", legs, qty, -3.15, "open")


def test_json_round_trips_dates_nan_and_orders():
    obj = {"d": DAY, "t": dt.datetime(2024, 1, 10, 9, 30, tzinfo=ET), "x": math.nan, "k": (1, 2)}
    back = loads(dumps(obj))
    assert back["d"] == DAY and back["t"] == obj["t"] and math.isnan(back["x"]) and back["k"] == [1, 2]
    o = OrderRequest("h-1", "hedge", (OrderLeg(vx_future(dt.date(2024, 2, 14)), 1), OrderLeg(vix_option(dt.date(2024, 2, 14), 20, "C"), -1),
                                      OrderLeg(Equity("VIXY"), 3)), 4, None, "hedge-roll")
    assert order_from_dict(loads(dumps(order_to_dict(o)))) == o
    assert order_from_dict(order_to_dict(condor_order())) == condor_order()


def test_store_is_wal_and_journal_lifecycle(tmp_path):
    st = StateStore(tmp_path / "s.sqlite")
    assert st.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    o = condor_order()
    assert st.journal(o, DAY) is True
    assert st.journal(o, DAY) is False  # one row per intent id
    st.update_intent(o.intent_id, state="sending", sends=1, working_price=-3.3)
    st.update_intent(o.intent_id, state="working", order_id=12, perm_id=99, client_id=7)
    row = st.intent(o.intent_id)
    assert (row.state, row.order_id, row.perm_id, row.sends, row.order) == ("working", 12, 99, 1, o)
    assert [r.intent_id for r in st.intents(open_only=True)] == [o.intent_id]
    assert st.count_intents(DAY) == 1
    assert st.intent_for_perm(99) == o.intent_id and st.intent_for_perm(98) is None
    # executions are keyed by (execId, owner): the same report twice is one execution
    e1 = execution("e1.01.01", "99", o.intent_id, o.legs[0].key)
    assert st.record_execution(e1) == "new"
    assert st.record_execution(e1) == "known"
    assert st.set_commission("e1.01.01", "99", 1.3) == o.intent_id and st.set_commission("e1.01.01", "99", 9.9) is None
    assert st.intents_with_unconsumed_executions() == [o.intent_id]
    assert st.record_fill(fill_id="ib:99:e1.01.01", intent_id=o.intent_id, book="condor", purpose="open",
                          ts=dt.datetime(2024, 1, 10, 10, tzinfo=ET), combo_qty=2, net_price=-3.2, commission=5.0,
                          legs=[], executions=[("e1.01.01", "99")])
    assert not st.record_fill(fill_id="ib:99:e1.01.01", intent_id=o.intent_id, book="condor", purpose="open",
                              ts=dt.datetime(2024, 1, 10, 10, tzinfo=ET), combo_qty=2, net_price=-3.2, commission=5.0,
                              legs=[], executions=[("e1.01.01", "99")])
    assert st.filled_units(o.intent_id) == 2 and not st.intents_with_unconsumed_executions()
    st.close()


def execution(exec_id: str, owner: str, intent: str | None, key: str, shares: float = 2, price: float = 1.0):
    return ExecutionRow(exec_id, owner, intent, 12, int(owner) if owner.isdigit() else None, 1, key, "BOT", shares,
                        price, None, False, "2024-01-10T15:00:00+00:00", None)


def test_exec_id_reused_by_another_order_is_a_new_execution_and_corrections_replace(tmp_path):
    st = StateStore(tmp_path / "s.sqlite")
    a, b = condor_order("a"), condor_order("b")
    for o in (a, b):
        st.journal(o, DAY)
    key = a.legs[0].key
    # a restarted TWS hands out the same execId again, for another order (another permId): both count
    assert st.record_execution(execution("0001.01.01", "501", "a", key)) == "new"
    assert st.record_execution(execution("0001.01.01", "777", "b", key)) == "new"
    assert {e.intent_id for e in st.executions(unconsumed=True)} == {"a", "b"}
    # IB's correction (.01 -> .02) replaces the report it corrects while that is not booked
    assert st.record_execution(execution("0001.01.02", "501", "a", key, price=1.25)) == "corrected"
    assert [(e.exec_id, e.price) for e in st.executions("a")] == [("0001.01.02", 1.25)]
    assert st.record_execution(execution("0001.01.01", "501", "a", key)) == "known"   # the stale original, late
    # a correction of a report already in a fill is kept aside and flagged, never booked twice
    st.record_fill(fill_id="f", intent_id="b", book="condor", purpose="open", ts=dt.datetime(2024, 1, 10, tzinfo=ET),
                   combo_qty=1, net_price=1.0, commission=0.0, legs=[], executions=[("0001.01.01", "777")])
    assert st.record_execution(execution("0001.01.02", "777", "b", key, price=1.5)) == "corrected_after_booking"
    assert not st.executions("b", unconsumed=True)
    st.close()


def test_a_schema_1_store_loads_and_migrates_on_claim(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE intents (intent_id TEXT PRIMARY KEY, book TEXT NOT NULL, purpose TEXT NOT NULL, session TEXT NOT NULL,
            order_json TEXT NOT NULL, quantity INTEGER NOT NULL, state TEXT NOT NULL, filled INTEGER NOT NULL DEFAULT 0,
            order_id INTEGER, perm_id INTEGER, client_id INTEGER, limit_price REAL, working_price REAL,
            steps_done INTEGER NOT NULL DEFAULT 0, sends INTEGER NOT NULL DEFAULT 0, reason TEXT NOT NULL DEFAULT '',
            created TEXT NOT NULL, updated TEXT NOT NULL);
        CREATE TABLE executions (exec_id TEXT PRIMARY KEY, intent_id TEXT, order_id INTEGER, perm_id INTEGER,
            con_id INTEGER, instrument TEXT, side TEXT, shares REAL NOT NULL, price REAL NOT NULL, commission REAL,
            combo INTEGER NOT NULL DEFAULT 0, ts TEXT NOT NULL, fill_id TEXT);
        CREATE TABLE fills (fill_id TEXT PRIMARY KEY, intent_id TEXT NOT NULL, book TEXT NOT NULL, purpose TEXT NOT NULL,
            ts TEXT NOT NULL, combo_qty INTEGER NOT NULL, net_price REAL NOT NULL, commission REAL NOT NULL,
            legs_json TEXT NOT NULL);
        CREATE TABLE positions (instrument TEXT PRIMARY KEY, con_id INTEGER, quantity REAL NOT NULL, avg_cost REAL,
            updated TEXT NOT NULL);
        CREATE TABLE strategy_state (book TEXT PRIMARY KEY, state_json TEXT NOT NULL, updated TEXT NOT NULL);
        CREATE TABLE jobs (session TEXT NOT NULL, name TEXT NOT NULL, done_at TEXT NOT NULL, PRIMARY KEY (session, name));
        CREATE TABLE contracts (instrument TEXT PRIMARY KEY, con_id INTEGER NOT NULL, contract_json TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1'), ('account', '"DU*****67"'), ('daemon', '{"mode": "paper"}');
        INSERT INTO executions VALUES ('x.01.01', 'a', 1, 501, 2, 'VIXY', 'BOT', 10, 20.0, 1.0, 0, '2024-01-10', 'ib:x');
    """)
    # the hedge's and the condor's own instrument formats of that time
    db.execute("INSERT INTO strategy_state VALUES ('hedge', ?, '')", (dumps({"layers": [{"qty": [[
        {"t": "future", "symbol": "VX", "expiry": "2024-02-14", "multiplier": 1000}, 2]]}]}),))
    db.commit()
    db.close()
    before = path.read_bytes()
    st = StateStore(path)
    assert st.identity() == {"mode": "paper", "account": "DU*****67", "account_key": None}
    with pytest.raises(StateError, match=r"belongs to account DU\*\*\*\*\*67.*DU\*\*\*\*\*99"):
        st.claim("paper", "DU9999999")
    st.close()
    assert path.read_bytes() == before                       # a refused claim changes nothing
    st = StateStore(path)
    st.claim("paper", "DU1234567")
    assert st.get_meta("schema_version") == 2
    [e] = st.executions()
    assert (e.exec_id, e.owner, e.intent_id, e.fill_id) == ("x.01.01", "501", "a", "ib:x")
    layer = st.strategy_states()["hedge"]["layers"][0]["qty"][0][0]
    assert instrument_from_dict(layer) == vx_future(dt.date(2024, 2, 14))
    assert st.identity()["account"] == "DU*****67" and st.identity()["account_key"]
    st.close()
    st = StateStore(path)
    with pytest.raises(StateError, match="belongs to account"):   # from now on by the account's key
        st.check_identity("paper", "DU1234599")
    with pytest.raises(StateError, match="written by a paper-account daemon, not by this rehearsal"):
        st.check_identity("rehearsal")
    st.close()


def test_instruments_serialise_one_way_and_read_the_old_formats():
    for inst in (spx_option(dt.date(2024, 2, 16), 4700, "P"), vix_option(dt.date(2024, 2, 14), 20, "C"),
                 vx_future(dt.date(2024, 2, 14)), Equity("VIXY")):
        assert instrument_from_dict(inst.to_dict()) == inst
        assert instrument_from_dict(loads(dumps(inst.to_dict()))) == inst
    opt = spx_option(dt.date(2024, 2, 16), 4700, "P")
    old_condor_leg = {"root": "SPX", "expiry": dt.date(2024, 2, 16), "strike": 4700.0, "right": "P",
                      "settlement": "AM", "multiplier": 100, "key": opt.key}
    old_hedge = {"t": "option", "root": "SPX", "expiry": "2024-02-16", "strike": 4700.0, "right": "P",
                 "settlement": "AM", "multiplier": 100}
    assert instrument_from_dict(old_condor_leg) == opt and instrument_from_dict(old_hedge) == opt
    with pytest.raises(ValueError, match="unknown instrument type"):
        instrument_from_dict({"type": "bond"})


def test_transaction_rolls_back_everything(tmp_path):
    st = StateStore(tmp_path / "s.sqlite")
    with pytest.raises(RuntimeError), st.transaction():
        st.journal(condor_order("a"), DAY)
        with st.transaction():  # nested joins the outer one
            st.mark_job_done(DAY, "open")
        raise RuntimeError("crash before commit")
    assert st.intent("a") is None and not st.job_done(DAY, "open")
    with st.transaction():
        st.journal(condor_order("a"), DAY)
        st.mark_job_done(DAY, "open")
    assert st.intent("a") is not None and st.jobs_done(DAY) == ["open"]
    st.close()


def test_ledger_and_strategy_state_round_trip(tmp_path):
    st = StateStore(tmp_path / "s.sqlite")
    led = Ledger(1_000_000)
    o = condor_order()
    legs = tuple(LegFill(leg.instrument, leg.ratio * 2, 1.0 + i) for i, leg in enumerate(o.legs))
    led.apply_fill(FillEvent(dt.datetime(2024, 1, 10, 10, tzinfo=ET), o.intent_id, "condor", "x", legs, 2, -2.0, 5.0))
    led.apply_fill(FillEvent(dt.datetime(2024, 1, 10, 10, tzinfo=ET), "h", "hedge", "y",
                             (LegFill(vx_future(dt.date(2024, 2, 14)), 3, 16.05),), 3, 16.05, 7.5))
    st.save_ledger(led)
    st.save_strategy("condor", {"condors": {"c1": {"entry_date": DAY, "legs": [1, 2]}}, "n": 1})
    st.close()
    st2 = StateStore(tmp_path / "s.sqlite")
    led2 = Ledger(1)
    assert st2.load_ledger(led2)
    assert led2.cash == led.cash and led2.net_positions() == led.net_positions() and led2.equity() == led.equity()
    assert led2.books["hedge"].commissions == 7.5
    assert st2.load_strategy("condor")["condors"]["c1"]["entry_date"] == DAY
    st2.close()


def test_halt_flag_is_shared_between_processes(tmp_path):
    path = tmp_path / "s.sqlite"
    st = StateStore(path)
    code = (f"from adapters.live.state import StateStore; s = StateStore({str(path)!r}); "
            "s.set_halted('from another process'); s.set_halted('again'); s.close()")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=30)
    assert st.halted()["reason"] == "from another process"       # the first reason stays
    assert st.halt_request()["reason"] == "again"                 # every request is answered on its own
    st.clear_halted()
    assert st.halted() is None and st.halt_request() is None
    st.close()


def test_status_report_reads_the_store(tmp_path):
    path = tmp_path / "s.sqlite"
    st = StateStore(path)
    st.claim("paper", "DU1234567")
    st.journal(condor_order(), DAY)
    st.heartbeat({"connection": "up", "ready": True})
    st.save_strategy("hedge", {"layers": [{"units": 2.0, "level": 1.0, "qty": [[Equity("VIXY").to_dict(), 10]],
                                           "held": None}]})
    st.close()
    rep = status_report(path)
    assert rep["account"] == "DU*****67" and rep["heartbeat_age_seconds"] < 60
    assert rep["identity"] == {"mode": "paper", "account": "DU*****67"}
    assert [w["intent"] for w in rep["working_orders"]] == ["condor-20240110-open-abc"]
    assert rep["layers"]["hedge"][0]["units"] == 2.0 and rep["layers"]["hedge"][0]["qty"] == [["VIXY", 10]]


def test_crashpoint_is_inert_without_the_environment(monkeypatch):
    monkeypatch.delenv("ALVH_CRASH_AT", raising=False)
    crashpoint("order_placed")  # must simply return


# ---- schedule --------------------------------------------------------------------------------
def test_plan_session_normal_day_early_close_and_holiday():
    p = ScheduleParams(hedge_every_minutes=60)
    jobs = plan_session(DAY, p)
    names = [j.name for j in jobs]
    assert names[:2] == ["preopen", "open"] and names[-2:] == ["close", "eod"]
    assert [j.name for j in jobs if j.phase is Phase.INTRADAY][:2] == ["hedge-1031", "hedge-1131"]
    close = next(j for j in jobs if j.name == "close")
    assert close.at == dt.datetime(2024, 1, 10, 15, 45, tzinfo=ET) and close.phase is Phase.CLOSE
    assert all(a.at < b.at for a, b in itertools.pairwise(jobs))
    # day after Thanksgiving: 13:00 close -> close snapshot 12:45, eod 13:20, no hedge check after 12:45
    early = plan_session(dt.date(2024, 11, 29), p)
    assert next(j for j in early if j.name == "close").at.time() == dt.time(12, 45)
    assert next(j for j in early if j.name == "eod").at.time() == dt.time(13, 20)
    assert all(j.at.time() < dt.time(12, 45) for j in early if j.phase is Phase.INTRADAY)
    assert plan_session(dt.date(2024, 12, 25), p) == []       # holiday
    assert plan_session(dt.date(2024, 1, 13), p) == []        # Saturday


def test_nothing_is_scheduled_in_the_reset_window():
    p = ScheduleParams()
    assert in_reset_window(dt.datetime(2024, 1, 10, 23, 50, tzinfo=ET), p)
    assert in_reset_window(dt.datetime(2024, 1, 11, 0, 30, tzinfo=ET), p)
    assert not in_reset_window(dt.datetime(2024, 1, 11, 0, 50, tzinfo=ET), p)
    with pytest.raises(ValueError, match="reset window"):
        ScheduleParams(plan_at=dt.time(0, 15))
    late = ScheduleParams(reset_window=("15:00", "17:00"))   # a (silly) window over the close drops those jobs
    assert not [j for j in plan_session(DAY, late) if in_reset_window(j.at, late)]
    assert "close" not in [j.name for j in plan_session(DAY, late)]


# ---- config and safety -----------------------------------------------------------------------
def test_daemon_params_need_a_daemon_table():
    cfg = RunConfig(daemon={"ib": {"port": 4002, "client_id": 3}}, risk={"max_orders_per_day": 5})
    p = daemon_params(cfg)
    assert p.ib.port == 4002 and cfg.risk.max_orders_per_day == 5
    assert cfg.risk.max_contracts_per_order == 50          # unset order limits take the live defaults
    with pytest.raises(ConfigError, match=r"daemon: the daemon needs a \[daemon\] table"):
        daemon_params(RunConfig())


def test_example_config_loads():
    from config.settings import load_config

    cfg = load_config(ROOT / "config" / "ib_paper.toml")
    p = daemon_params(cfg)
    assert p.ib.port == 7497 and not p.allow_live and p.state_path


def test_only_paper_accounts_unless_both_switches_say_live():
    check_account("DU1234567", False, False)
    for flag, conf in ((False, False), (True, False), (False, True)):
        with pytest.raises(AccountRefused) as e:
            check_account("U7654321", flag, conf)
        assert "U7654321" not in str(e.value) and "U7****21" in str(e.value)
    check_account("U7654321", True, True)


def test_the_login_decides_the_account_not_the_config():
    assert choose_account(["DU1234567"], "", False, False) == "DU1234567"
    assert choose_account(["DU1234567", "DU7654321"], "DU7654321", False, False) == "DU7654321"
    # a live login with a paper account in the config: refused, both named (masked)
    with pytest.raises(AccountRefused) as e:
        choose_account(["U7654321"], "DU0000001", False, False)
    assert "DU*****01" in str(e.value) and "U7****21" in str(e.value) and "U7654321" not in str(e.value)
    with pytest.raises(AccountRefused, match="several accounts"):
        choose_account(["DU1234567", "DU7654321"], "", False, False)
    with pytest.raises(AccountRefused, match="not a paper account"):
        choose_account(["U7654321"], "U7654321", True, False)


def test_state_path_resolves_against_the_config_file(tmp_path, monkeypatch):
    from config.settings import load_config

    cfg_dir = tmp_path / "conf"
    cfg_dir.mkdir()
    (cfg_dir / "d.toml").write_text('[daemon]\nstate_path = "state/x.sqlite"\n')
    monkeypatch.chdir(tmp_path)
    p = daemon_params(load_config(cfg_dir / "d.toml"))
    assert Path(p.state_path) == cfg_dir / "state" / "x.sqlite"


def test_a_deferred_job_may_run_until_the_next_decision():
    p = ScheduleParams(hedge_every_minutes=60)
    plan = {j.name: j for j in plan_session(DAY, p)}
    assert job_window(plan["open"], p) == plan["hedge-1031"].at
    assert job_window(plan["close"], p) == dt.datetime(2024, 1, 10, 16, 0, tzinfo=ET)
    assert job_window(plan["preopen"], p) == plan["open"].at
    assert job_window(plan["eod"], p) == dt.datetime(2024, 1, 11, 0, 0, tzinfo=ET)
    assert isinstance(plan["open"], Job)


@pytest.fixture
def run_cli(capsys):
    """`alvh ...` in this process (a traceback would fail the test); (returncode, stdout, stderr)."""
    from adapters.cli.main import main

    def run(*args):
        capsys.readouterr()
        rc = main(list(args))
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, rc, out.out, out.err)

    return run


def test_cli_status_halt_resume(tmp_path, run_cli):
    path = tmp_path / "s.sqlite"
    st = StateStore(path)
    st.claim("paper", "DU1234567")
    st.close()
    r = run_cli("halt", "--state", str(path), "--reason", "test")
    assert r.returncode == 0 and "no daemon is running" in r.stdout, r.stderr
    r = run_cli("status", "--state", str(path))
    assert r.returncode == 0 and "halted     YES: test" in r.stdout, r.stdout + r.stderr
    r = run_cli("resume", "--state", str(path))
    assert r.returncode == 0 and "trading resumed" in r.stdout
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM meta WHERE key='halted'").fetchone()[0] == 0


def test_cli_controls_never_create_or_touch_a_store_that_is_not_the_daemons(tmp_path, run_cli):
    missing = tmp_path / "missing.sqlite"
    for cmd in ("status", "halt", "resume"):
        r = run_cli(cmd, "--state", str(missing))
        assert r.returncode == 1 and "no daemon state at" in r.stderr, (cmd, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and not missing.exists()
    unclaimed = tmp_path / "new.sqlite"
    StateStore(unclaimed).close()
    r = run_cli("halt", "--state", str(unclaimed))
    assert r.returncode == 1 and "no daemon has run on yet" in r.stderr


@pytest.mark.parametrize("damage", ["garbage", "truncated", "locked"])
def test_a_damaged_or_locked_state_file_is_one_sentence_and_left_alone(tmp_path, damage, run_cli):
    path = tmp_path / "s.sqlite"
    st = StateStore(path)
    st.claim("paper", "DU1234567")
    for i in range(200):
        st.journal(condor_order(f"i{i}"), DAY)
    st.close()
    holder = None
    if damage == "garbage":
        path.write_bytes(b"this is not a database at all" * 100)
    elif damage == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    before = path.read_bytes()  # (read before locking: closing a descriptor drops this process's POSIX locks)
    if damage == "locked":
        holder = sqlite3.connect(path, isolation_level=None)   # another writer holds the lock (WAL: reads go on)
        holder.execute("BEGIN IMMEDIATE")
        assert run_cli("status", "--state", str(path)).returncode == 0
    try:
        for cmd in (("halt",), ("resume",)) if damage == "locked" else (("status",), ("halt",), ("resume",)):
            r = run_cli(*cmd, "--state", str(path))
            lines = r.stderr.strip().splitlines()
            assert r.returncode == 1 and len(lines) == 1 and "Traceback" not in r.stderr, (cmd, r.stderr)
            assert ("locked" if damage == "locked" else "damaged") in lines[0], lines[0]
    finally:
        if holder is not None:
            holder.close()
    assert path.read_bytes() == before


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _daemon_config(tmp_path, **daemon) -> Path:
    lines = ['name = "x"', "[daemon]", f'state_path = "{daemon.pop("state_path", "s.sqlite")}"']
    lines += [f"{k} = {v}" for k, v in daemon.items() if not isinstance(v, dict)]
    for name, sub in ((k, v) for k, v in daemon.items() if isinstance(v, dict)):
        lines.append(f"[daemon.{name}]")
        lines += [f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"' for k, v in sub.items()]
    path = tmp_path / "d.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_failed_connect_is_one_sentence_and_leaves_no_store(tmp_path, run_cli):
    cfg = _daemon_config(tmp_path, ib={"port": _closed_port(), "connect_timeout": 1, "reconnect_attempts": 2,
                                       "reconnect_initial": 0.05})
    r = run_cli("run", "--config", str(cfg), "--console-logs", "--log-level", "ERROR")
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and last.startswith("alvh: error: could not connect to TWS/Gateway at 127.0.0.1:")
    assert "after 2 attempt(s)" in last and "Traceback" not in r.stderr
    assert not (tmp_path / "s.sqlite").exists()


def test_a_damaged_store_stops_alvh_run_with_one_sentence(tmp_path, run_cli):
    (tmp_path / "s.sqlite").write_bytes(b"not a database" * 300)
    before = (tmp_path / "s.sqlite").read_bytes()
    cfg = _daemon_config(tmp_path, ib={"port": _closed_port()})
    r = run_cli("run", "--config", str(cfg), "--console-logs", "--log-level", "ERROR")
    assert r.returncode == 1 and "is damaged" in r.stderr.strip().splitlines()[-1]
    assert (tmp_path / "s.sqlite").read_bytes() == before


@pytest.mark.parametrize("text, key", [("allow_live = \"yes\"", "daemon.allow_live"),
                                       ("[risk]\nmax_hedge_notional = inf", "risk.max_hedge_notional")])
def test_loose_config_values_are_refused(tmp_path, run_cli, text, key):
    path = tmp_path / "d.toml"
    path.write_text(f'name = "x"\n{text}\n' if text.startswith("[") else f'name = "x"\n[daemon]\n{text}\n')
    r = run_cli("status", "--config", str(path))
    assert r.returncode == 2 and key in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
