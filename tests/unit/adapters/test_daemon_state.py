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

from adapters.live import crashpoint
from adapters.live.daemon import (
    LiveAccountRefused,
    check_account,
    daemon_params,
    status_report,
)
from adapters.live.scheduler import in_reset_window, plan_session
from adapters.live.state import StateStore, dumps, loads, order_from_dict, order_to_dict
from config.daemon import ScheduleParams
from config.settings import ConfigError, RunConfig
from engine.clock import ET
from engine.events import FillEvent, LegFill, Phase
from engine.instruments import Equity, spx_option, vix_option, vx_future
from engine.ledger import Ledger
from engine.orders import OrderLeg, OrderRequest

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
    # executions are deduplicated by execId
    kw = {"intent_id": o.intent_id, "order_id": 12, "perm_id": 99, "con_id": 1, "instrument": o.legs[0].key,
          "side": "BOT", "shares": 2, "price": 1.0, "commission": None, "combo": False, "ts": "2024-01-10T15:00:00+00:00"}
    assert st.record_execution(exec_id="e1", **kw) is True
    assert st.record_execution(exec_id="e1", **kw) is False
    assert st.set_commission("e1", 1.3) and not st.set_commission("e1", 9.9)
    assert st.intents_with_unconsumed_executions() == [o.intent_id]
    assert st.record_fill(fill_id="ib:e1", intent_id=o.intent_id, book="condor", purpose="open",
                          ts=dt.datetime(2024, 1, 10, 10, tzinfo=ET), combo_qty=2, net_price=-3.2, commission=5.0,
                          legs=[], exec_ids=["e1"])
    assert not st.record_fill(fill_id="ib:e1", intent_id=o.intent_id, book="condor", purpose="open",
                              ts=dt.datetime(2024, 1, 10, 10, tzinfo=ET), combo_qty=2, net_price=-3.2, commission=5.0,
                              legs=[], exec_ids=["e1"])
    assert st.filled_units(o.intent_id) == 2 and not st.intents_with_unconsumed_executions()
    st.close()


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
            "s.set_halted('from another process'); s.close()")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=30)
    assert st.halted()["reason"] == "from another process"
    st.clear_halted()
    assert st.halted() is None
    st.close()


def test_status_report_reads_the_store(tmp_path):
    path = tmp_path / "s.sqlite"
    st = StateStore(path)
    st.set_meta("account", "DU*****67")
    st.journal(condor_order(), DAY)
    st.heartbeat({"connection": "up", "ready": True})
    st.save_strategy("hedge", {"layers": [{"units": 2.0, "level": 1.0, "qty": [], "held": None}]})
    st.close()
    rep = status_report(path)
    assert rep["account"] == "DU*****67" and rep["heartbeat_age_seconds"] < 60
    assert [w["intent"] for w in rep["working_orders"]] == ["condor-20240110-open-abc"]
    assert rep["layers"]["hedge"][0]["units"] == 2.0


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
        with pytest.raises(LiveAccountRefused) as e:
            check_account("U7654321", flag, conf)
        assert "U7654321" not in str(e.value) and "U7****21" in str(e.value)
    check_account("U7654321", True, True)


def test_cli_status_halt_resume(tmp_path):
    path = tmp_path / "s.sqlite"
    StateStore(path).close()
    run = lambda *a: subprocess.run([*ALVH, *a], check=False, cwd=ROOT, capture_output=True,
                                    text=True, timeout=60)
    r = run("halt", "--state", str(path), "--reason", "test")
    assert r.returncode == 0, r.stderr
    r = run("status", "--state", str(path))
    assert r.returncode == 0 and "halted     YES: test" in r.stdout, r.stdout + r.stderr
    r = run("resume", "--state", str(path))
    assert r.returncode == 0 and "trading resumed" in r.stdout
    r = run("status", "--state", str(tmp_path / "missing.sqlite"))
    assert r.returncode == 1 and "no daemon state" in r.stderr
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM meta WHERE key='halted'").fetchone()[0] == 0
