"""No fill at a stale price, on real data: at the open snapshot VX trades at the day's opening print or not at all
(VIX options, ETPs, and SPX options on a day without an SPX opening print wait for the close), and in
next_snapshot mode a condor stop decided on a gap day fills at the very next snapshot, never expiring."""
import datetime as dt
import itertools
import math

import pandas as pd
import pytest

from adapters.data.validation import report as data_report
from adapters.sim import broker as sim_broker
from adapters.sim.backtest import format_summary, run_backtest
from adapters.sim.replay import HistoricalReplay
from config.settings import load_config
from engine.execution import ExecutionSimulator
from engine.instruments import FutureContract
from engine.marketmodel import MarketModel


@pytest.fixture
def statuses(monkeypatch):
    """Every order status the simulated broker publishes: (ts, intent, purpose, state, reason, is a market order)."""
    seen = []
    original = sim_broker.SimulatedBroker._status

    def record(self, order, state, filled, reason=""):
        seen.append((self.bus.now, order.intent_id, order.purpose, state.value, reason, order.limit is None))
        return original(self, order, state, filled, reason)

    monkeypatch.setattr(sim_broker.SimulatedBroker, "_status", record)
    return seen


def _vx_by_day(panel) -> pd.DataFrame:
    vx = panel.vx.copy()
    vx["expiry"] = pd.to_datetime(vx["expiry"]).dt.date
    vx["date"] = pd.to_datetime(vx["date"]).dt.date
    return vx.set_index(["date", "expiry"])


def test_open_decisions_fill_only_at_prices_of_the_snapshot(panel):
    """A full hedged year around 2018-02-05 with the hedge deciding at 09:30: every fill leg is fresh in its
    snapshot, and every VX fill is the execution price of the day's open (09:30) or the day's settle (16:00)."""
    cfg = load_config("config/alvh.toml", {"hedge": {"decision_phase": "open"}})
    res = run_backtest(cfg, panel, start="2018-01-01", end="2018-12-31")
    replay = HistoricalReplay(panel, "2018-01-01", "2018-12-31")
    index = {d: i for i, d in enumerate(replay.dates)}
    vx = _vx_by_day(panel)
    ex = ExecutionSimulator(cfg.execution)
    fills = res.fills
    assert (fills["book"] == "hedge").sum() > 20 and (fills["time"] == "09:30").any()
    checked_vx = {"09:30": 0, "16:00": 0}
    for (intent, day, time), legs in fills.groupby(["intent_id", "date", "time"], sort=False):
        day = pd.Timestamp(day).date()
        snap = replay.market.snapshots(index[day])[0 if time == "09:30" else 1]
        m = MarketModel(snap, cfg.pricing)
        if not legs["instrument"].str.startswith("VX ").all():
            # options and ETPs: nothing but SPX options may fill at the open, and only on a real SPX open
            if time == "09:30":
                assert legs["instrument"].str.startswith(("SPX ", "SPXW ")).all(), (day, intent)
                assert "spx" not in snap.quotes.stale and "vix" not in snap.quotes.stale
            continue
        insts = [FutureContract("VX", dt.date.fromisoformat(k.split()[1])) for k in legs["instrument"]]
        for inst in insts:
            assert m.fresh(inst), f"{day} {time} {inst.key} filled at a stale price"
        rows = [vx.loc[(day, inst.expiry)] for inst in insts]
        source = [r["open"] if time == "09:30" else r["settle"] for r in rows]
        assert all(map(math.isfinite, source)), f"{day} {time} {intent}: no price of that snapshot"
        n = int(legs["quantity"].abs().min())
        want = ex.fill_price_list(insts, [int(q) // n for q in legs["quantity"]], source, m.vix)
        assert legs["price"].tolist() == pytest.approx(want, abs=1e-6), (day, time, intent)
        checked_vx[time] += len(insts)
    assert checked_vx["09:30"] > 10
    # 2018-02-05: VIX opened above the near layer's threshold; the Feb VX is bought at its opening trade (16.15),
    # not at the prior settlement (15.625) as before
    feb5 = fills[(fills["date"].astype(str) == "2018-02-05") & fills["instrument"].str.startswith("VX ")]
    assert len(feb5) and (feb5["time"] == "09:30").all()
    assert (feb5["price"] > 16.0).all()


@pytest.mark.parametrize(("start", "end", "decided", "filled"), [
    ("2017-12-15", "2018-02-16", "2018-02-05 16:00", "2018-02-06 09:30"),   # Volmageddon: after the close
    ("2020-01-20", "2020-03-20", "2020-03-09 09:30", "2020-03-09 16:00"),   # limit-down open
    ("2008-08-25", "2008-10-24", "2008-10-09 16:00", "2008-10-10 09:30"),   # the Oct-2008 crash week
])
def test_condor_stops_on_gap_days_fill_at_the_next_snapshot(panel, statuses, start, end, decided, filled):
    cfg = load_config("config/condor.toml", {"execution": {"fill_timing": "next_snapshot"}})
    res = run_backtest(cfg, panel, start=start, end=end)
    st = pd.DataFrame(statuses, columns=["ts", "intent", "purpose", "state", "reason", "market"])
    st["at"] = st["ts"].map(lambda t: t.strftime("%Y-%m-%d %H:%M"))
    # stops and time exits are market orders; only a take-profit carries a limit, and only it may expire
    close = st[(st["purpose"] == "close") & st["market"]]
    assert len(close) and not (close["state"] == "cancelled").any(), close[close["state"] == "cancelled"]
    snaps = [f"{d} {t}" for d in HistoricalReplay(panel, start, end).dates if start <= str(d) <= end
             for t in ("09:30", "16:00")]
    nxt = dict(itertools.pairwise(snaps))
    sent = close[close["state"] == "working"].set_index("intent")["at"]
    done = close[close["state"] == "filled"].set_index("intent")["at"]
    assert set(sent.index) == set(done.index)   # every stop filled: none expired while its condor was open
    for intent, at in sent.items():
        assert done[intent] == nxt[at], f"{intent}: sent {at}, filled {done[intent]}"
    stop_intents = {c.close_intent for s in res.strategies for c in getattr(s, "closed", []) if c.exit_reason == "stop"}
    assert stop_intents and stop_intents <= set(sent.index)
    on_day = sent[sent == decided]
    assert len(on_day) >= 1 and (done[on_day.index] == filled).all()
    stops = res.trades[res.trades["exit_reason"] == "stop"]
    assert (pd.to_datetime(stops["exit_date"]).dt.strftime("%Y-%m-%d") == filled[:10]).any()


def test_stale_spx_opens_are_missing_at_the_open_and_counted(panel, data_dir):
    """2006: 107 sessions have open == prior close. The open snapshot names SPX stale there, no condor fills at
    it, and the count is in the replay summary and the data check."""
    cfg = load_config("config/condor.toml")
    res = run_backtest(cfg, panel, start="2006-01-01", end="2006-12-31")
    assert res.extras["stale_spx_opens"] == {2006: 107}
    assert "stale SPX opens" in format_summary(res) and "2006: 107" in format_summary(res)
    replay = HistoricalReplay(panel, "2006-01-01", "2006-12-31")
    stale_days = set()
    for i, d in enumerate(replay.dates):
        if d.year != 2006:
            continue
        q = replay.market.snapshots(i)[0].quotes
        if "spx" in q.stale:
            stale_days.add(d)
            assert q.spx == replay.market.c["spx"][i - 1]   # the prior close, carried as information only
    assert len(stale_days) == 107
    at_open = pd.to_datetime(res.fills.loc[res.fills["time"] == "09:30", "date"]).dt.date
    assert not set(at_open) & stale_days
    rep = data_report.check_data(data_dir)
    assert rep.stale_spx_opens[2006] == 107 and rep.stale_spx_opens[2007] == 39 and 2016 not in rep.stale_spx_opens


def test_a_holiday_friday_moves_the_weekly_entry_to_monday(panel):
    """Good Friday 2018-03-30: the Friday ladder enters on Monday 2018-04-02, and that week's own Friday
    (04-06) still gets its entry; one entry per scheduled slot."""
    cfg = load_config("config/condor.toml", {"condor": {"entry_weekday": 4, "max_open": 20, "max_book_risk": 1.0}})
    res = run_backtest(cfg, panel, start="2018-03-12", end="2018-04-20")
    entries = sorted(pd.to_datetime(res.trades["entry_date"]).dt.date.astype(str).tolist()
                     + [c.entry_date.isoformat() for s in res.strategies for c in getattr(s, "condors", {}).values()])
    assert entries == ["2018-03-16", "2018-03-23", "2018-04-02", "2018-04-06", "2018-04-13", "2018-04-20"]
