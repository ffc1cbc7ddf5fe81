"""`alvh signal` says what the strategies do on a day without a broker: its orders for the 2018-02-05 spike are the
orders the daemon's paper replay sends for that day (same intent ids, books, purposes, quantities, legs and
limits), and the report explains them (condor exits with their reason, hedge layers against their thresholds)."""
from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("ib_async")

from test_daemon_replay import SPIKE_DAY, START, spike_config, spike_panel

from adapters.live.daemon import daemon_params
from adapters.live.paper_replay import rehearsal_state_path, run_paper_replay
from adapters.live.state import StateStore
from analysis.signal import compute_signal, instrument_label
from analysis.signal_report import format_text, to_json


def key(intent, book, purpose, quantity, legs, limit) -> tuple:
    return (intent, book, purpose, quantity, tuple(legs), None if limit is None else round(limit, 6))


def test_the_signal_sends_what_the_daemons_paper_replay_sends(tmp_path):
    panel = spike_panel()
    cfg = spike_config(tmp_path)
    sig = compute_signal(cfg, panel, SPIKE_DAY, START)
    ours = sorted(key(o.intent_id, o.book, o.purpose, o.quantity, o.legs, o.limit) for o in sig.orders)
    assert {o.purpose for o in sig.orders} >= {"open", "close"} and any(o.book == "hedge" for o in sig.orders)

    params = daemon_params(cfg)
    assert asyncio.run(asyncio.wait_for(run_paper_replay(cfg, params, SPIKE_DAY, panel), 120)) == 0
    st = StateStore(rehearsal_state_path(params.state_path, SPIKE_DAY))  # a rehearsal keeps its own store
    try:
        rows = st.intents(session=SPIKE_DAY)
        daemon = sorted(key(r.order.intent_id, r.order.book, r.order.purpose, r.order.quantity,
                            [(instrument_label(leg.instrument), leg.ratio) for leg in r.order.legs], r.order.limit)
                        for r in rows)
    finally:
        st.close()
    assert ours == daemon


def test_the_report_explains_the_spike_day(tmp_path):
    sig = compute_signal(spike_config(tmp_path), spike_panel(), SPIKE_DAY, START)
    assert sig.condor_closes and all(c.reason for c in sig.condor_closes)
    assert sig.condor_opens and all(c.limit < 0 and len(c.strikes) == 4 for c in sig.condor_opens)
    near = sig.layers[0]
    assert (near.name, near.on_at, near.off_below) == ("near", 18.0, 16.0)
    assert sig.signal_value == pytest.approx(sig.vix) and sig.signal_value >= near.on_at and near.is_on
    assert any(la.is_on and not la.was_on for la in sig.layers), "the spike switches a layer on"
    changed = [p for p in sig.positions if p.target != p.held]
    assert changed and all(p.traded == p.target - p.held or p.traded == 0 for p in changed)
    text = format_text(sig)
    for part in ("Condors to close", "Condors to open", "Hedge layers: signal vix = 37.32", "(switched today)", "Orders ("):
        assert part in text
    doc = to_json(sig)
    assert doc["day"] == "2018-02-05" and len(doc["orders"]) == len(sig.orders) == len(doc["orders_text"])


def test_alvh_signal_on_real_history(data_dir, tmp_path, monkeypatch, capsys):
    import json

    from adapters.cli import main as cli

    monkeypatch.setattr(cli, "configure_logging", lambda **kw: None)
    monkeypatch.setenv("ALVH_CACHE_DIR", str(tmp_path / "cache"))
    page = tmp_path / "signal.html"
    assert cli.main(["signal", "--date", "2020-03-09", "--json", "--html", str(page), "--data-dir", str(data_dir)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["day"] == "2020-03-09" and doc["vix"] == pytest.approx(54.46)
    assert [la["name"] for la in doc["layers"]] == ["near", "intermediate", "long"]
    assert all(la["is_on"] for la in doc["layers"])            # VIX 54 is above every threshold
    assert "<h2>Hedge layers</h2>" in page.read_text()
