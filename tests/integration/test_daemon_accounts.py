"""Whose account, whose store: the daemon trades the login's own paper account (checked against managedAccounts,
not the config string), in a store written for that account and mode only; every refusal names both sides
(masked) and leaves the store as it was. And an execId a restarted TWS hands out again is a new fill."""
from __future__ import annotations

import datetime as dt

import pytest

pytest.importorskip("ib_async")

from daemon_drill import (
    job,
    make_daemon,
    run,
    run_jobs,
    server_filled,
    server_orders_by_ref,
    server_positions,
    start_refused,
    start_server,
    store_summary,
)

import adapters.faketws.book as fake_book
from adapters.live.errors import AccountRefused, StateError
from adapters.live.paper_replay import run_paper_replay
from adapters.live.state import StateStore
from engine.events import Phase


def test_a_live_login_with_a_paper_account_in_the_config_is_refused_before_any_order(tmp_path):
    async def go():
        srv = await start_server(account="U7654321")
        try:
            return await start_refused(srv, tmp_path, AccountRefused, ib={"account": "DU0000001"})
        finally:
            await srv.aclose()

    message, placed = run(go(), 30)
    assert "DU*****01" in message and "U7****21" in message and "U7654321" not in message
    assert placed == [] and not (tmp_path / "state.sqlite").exists()   # no order, no store left behind


def test_a_store_of_another_account_is_refused_and_left_unchanged(tmp_path):
    path = tmp_path / "state.sqlite"
    st = StateStore(path)
    st.claim("paper", "DU7777777")
    st.close()
    before = path.read_bytes()

    async def go():
        srv = await start_server()                    # logs in as DU1234567
        try:
            return await start_refused(srv, tmp_path, StateError)
        finally:
            await srv.aclose()

    message, placed = run(go(), 30)
    assert "DU*****77" in message and "DU*****67" in message and placed == []
    assert path.read_bytes() == before


def test_the_daemon_and_a_rehearsal_never_share_a_store(tmp_path):
    rehearsal = tmp_path / "rehearsal.sqlite"
    st = StateStore(rehearsal)
    st.claim("rehearsal", None)
    st.close()

    async def go():
        srv = await start_server()
        try:
            (tmp_path / "d").mkdir()
            with pytest.raises(StateError, match="written by a rehearsal"):
                make_daemon(srv, tmp_path / "d", state_path=str(rehearsal))
            paper = tmp_path / "paper.sqlite"
            st = StateStore(paper)
            st.claim("paper", "DU1234567")
            st.close()
            d = make_daemon(srv, tmp_path / "d")
            with pytest.raises(StateError, match="written by a paper-account daemon, not by this rehearsal"):
                await run_paper_replay(d.cfg, d.p, dt.date(2024, 1, 10), None, state_path=paper, server=srv)
            d.store.discard()
        finally:
            await srv.aclose()

    run(go(), 30)


def test_an_exec_id_a_restarted_tws_hands_out_again_is_a_new_fill(tmp_path, monkeypatch):
    """A restarted server (the account's positions carried over) repeats the execIds of the first one for new
    orders: keyed by (execId, permId) every one of them is booked."""

    async def go():
        first = await start_server()
        d = make_daemon(first, tmp_path)
        try:
            assert await d._start()
            await run_jobs(d, job("open", Phase.OPEN, 9, 30))
        finally:
            await d.shutdown()
        stems = sorted({e.exec_id.rsplit(".", 2)[0] for e in first.book.executions})
        second = await start_server(positions=list(first.book.positions.values()))
        await first.aclose()
        again = iter(stems * 3)
        monkeypatch.setattr(fake_book, "exec_id_stem", lambda: next(again))
        d = make_daemon(second, tmp_path)
        try:
            assert await d._start()
            await run_jobs(d, job("close", Phase.CLOSE, 15, 45))
            reused = d.store.db.execute("SELECT COUNT(*) FROM (SELECT exec_id FROM executions GROUP BY exec_id "
                                        "HAVING COUNT(*) > 1)").fetchone()[0]
            return reused, server_orders_by_ref(second), server_filled(second), server_positions(second), \
                store_summary(tmp_path / "state.sqlite")
        finally:
            await d.shutdown()
            await second.aclose()

    reused, orders, filled, positions, store = run(go(), 60)
    assert reused >= 1                                              # the same execIds, twice in the store
    assert len(orders) == 2 and all(store["filled"][ref] == int(q) for ref, q in filled.items())
    assert store["ledger"] == positions and set(store["states"].values()) == {"filled"}
