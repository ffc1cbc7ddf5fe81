"""The same [risk] table stops the same kind of order in a replay and in the daemon (issue 8, acceptance 4): the
limits are the engine's, checked by the kernel whatever the broker."""
from __future__ import annotations

import pytest

from adapters.sim.backtest import run_backtest
from config.settings import load_config

RISK = {"max_contracts_per_order": 1}


def test_a_risk_limit_stops_an_order_in_replay():
    from test_daemon_replay import SPIKE_DAY, START, spike_panel

    def config(risk: dict):
        return load_config("config/condor.toml", overrides={
            "run": {"start": START.isoformat(), "end": SPIKE_DAY.isoformat()},
            "condor": {"risk_per_trade": 0.05, "max_book_risk": 0.3}, "risk": risk})

    panel = spike_panel()
    free = run_backtest(config({}), panel)
    assert free.fills["quantity"].abs().max() > 1          # unlimited, the condors trade several lots
    limited = run_backtest(config(RISK), panel)
    reasons = limited.rejections["reason"].tolist()
    assert reasons and all("exceeds max_contracts_per_order 1" in r for r in reasons)
    assert limited.fills.empty or limited.fills["quantity"].abs().max() <= 1


def test_the_same_risk_limit_stops_an_order_in_the_daemon_and_the_daily_count_survives_a_restart(tmp_path):
    pytest.importorskip("ib_async")
    from daemon_drill import job, make_daemon, run, run_jobs, server_orders_by_ref, start_server

    from engine.events import Phase

    async def go():
        srv = await start_server()
        out = {}
        d = make_daemon(srv, tmp_path, risk=RISK)
        try:
            assert await d._start()
            await run_jobs(d, job("open", Phase.OPEN, 9, 30))
            out["limited"] = (sorted(server_orders_by_ref(srv)), [r for _, _, r in d.kernel.records.rejections])
        finally:
            await d.shutdown()
            await srv.aclose()
        # max_orders_per_day counts the journal's orders of the session, so a restart does not reset it
        srv = await start_server()
        (tmp_path / "b").mkdir()
        d = make_daemon(srv, tmp_path / "b", risk={"max_orders_per_day": 2})
        try:
            assert await d._start()
            await run_jobs(d, job("open", Phase.OPEN, 9, 30))
        finally:
            await d.shutdown()
        d = make_daemon(srv, tmp_path / "b", risk={"max_orders_per_day": 2})
        try:
            assert await d._start()
            await run_jobs(d, job("close", Phase.CLOSE, 15, 45))
            out["count"] = (len(server_orders_by_ref(srv)), [r for _, _, r in d.kernel.records.rejections])
        finally:
            await d.shutdown()
            await srv.aclose()
        return out

    out = run(go(), 120)
    refs, reasons = out["limited"]
    assert [r.split("-")[0] for r in refs] == ["hedge"]          # only the VIXY shares went out
    assert len(reasons) == 2 and all("exceeds max_contracts_per_order 1" in r for r in reasons)
    n, reasons = out["count"]
    assert n == 2                                                 # the open's first two, none at the close
    assert reasons and all("max_orders_per_day 2 reached" in r for r in reasons)
