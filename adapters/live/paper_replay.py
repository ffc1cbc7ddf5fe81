"""Paper replay (`alvh run --paper-replay DATE`): the daemon against the loopback TWS server quoting one
historical day, on an accelerated clock.

The server (adapters.faketws, in-process unless `replay.server = "external"`) quotes SPX/VIX, the VX curve and
ETPs from the validated panel and options from the engine's pricing model with the execution model's spread on
the exchange tick grid (engine.ticks). The pre-day state (ledger, strategy states, positions - also loaded into
the server's account) comes from the replay engine run up to the previous day, so the daemon's orders for the
day can be compared with the replay engine's.

A rehearsal has its own state file (by default `<state_path stem>.rehearsal-<DATE><suffix>` next to the daemon's)
and the store records it as a rehearsal: the paper daemon refuses it, and a rehearsal refuses the daemon's. A
rehearsal restarted on its store loads the server with the positions its ledger holds, as a real account would
still hold them.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from adapters.live.errors import DaemonError
from adapters.live.scheduler import ReplayClock
from adapters.live.state import StateStore
from config.daemon import DaemonParams, ScheduleParams
from config.wiring import build_kernel
from engine.clock import ET
from engine.events import MarketQuotes, MarketSnapshot, Phase
from engine.execution import ExecutionSimulator
from engine.instruments import OptionContract
from engine.kernel import Kernel
from engine.ledger import Ledger
from engine.strategy import Strategy
from engine.ticks import ceil_tick, floor_tick, option_tick

log = structlog.get_logger("alvh.daemon")

SERVER_ACCOUNT = "DU0000001"


def rehearsal_state_path(state_path: str | Path, day: dt.date) -> Path:
    """The rehearsal's own store next to the daemon's: `state/ib_paper.sqlite` -> `state/ib_paper.rehearsal-
    2018-02-05.sqlite` (one per rehearsed day: each starts from the replay engine's pre-day state)."""
    p = Path(state_path)
    return p.with_name(f"{p.stem}.rehearsal-{day.isoformat()}{p.suffix or '.sqlite'}")


@dataclass
class PaperReplay:
    """One historical day served by a FakeTWS: quotes by phase, series IB would not have, pre-day state."""

    cfg: Any
    panel: Any
    day: dt.date
    clock: ReplayClock
    close_at: dt.datetime
    replay: Any = None
    index: int = 0
    _open: MarketQuotes | None = None
    _close: MarketQuotes | None = None
    _models: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from adapters.sim.replay import HistoricalReplay

        self.replay = HistoricalReplay(self.panel, self.day, self.day)
        if self.day not in self.replay.dates:
            raise DaemonError(f"{self.day} is not a trading day in the market data")
        self.index = self.replay.dates.index(self.day)
        self._open = self.replay.open_quotes(self.index)
        self._close = self.replay.close_quotes(self.index)

    def quotes(self, phase: Phase | None = None) -> tuple[Phase, MarketQuotes]:
        if phase is None:
            phase = Phase.CLOSE if self.clock.now() >= self.close_at else Phase.OPEN
        return (Phase.CLOSE, self._close) if phase is Phase.CLOSE else (Phase.OPEN, self._open)

    def supplement(self, phase: Phase, today: dt.date) -> dict:
        _, q = self.quotes(Phase.CLOSE if phase is Phase.CLOSE else Phase.OPEN)
        out: dict[str, Any] = {"rate": q.rate, "vix9d": q.vix9d, "vix3m": q.vix3m, "vix6m": q.vix6m, "vvix": q.vvix,
                               "skew": q.skew, "stale": set(q.stale), "vx": dict(q.vx), "etps": dict(q.etps),
                               "vx_final": dict(q.vx_final)}
        return {k: v for k, v in out.items() if not (isinstance(v, float) and not math.isfinite(v))}

    def model(self, phase: Phase):
        m = self._models.get(phase)
        if m is None:
            from engine.marketmodel import MarketModel

            ph, q = self.quotes(phase)
            t = dt.datetime.combine(self.day, dt.time(9, 30) if ph is Phase.OPEN else dt.time(16, 0), tzinfo=ET)
            m = self._models[phase] = MarketModel(MarketSnapshot(t, self.day, ph, q), self.cfg.pricing)
        return m

    def quote_provider(self):
        """FakeTWS QuoteProvider: the replay's quotes for indices/VX/ETPs, the engine model for options."""
        from adapters.faketws import Quote

        execution = ExecutionSimulator(self.cfg.execution)

        def provide(f: dict):
            phase, q = self.quotes()
            sec, sym = f.get("secType", ""), f.get("symbol", "")
            if sec == "IND":
                lvl = {"SPX": q.spx, "VIX": q.vix}.get(sym)
                if lvl is None or not math.isfinite(lvl):
                    return None
                return Quote(last=lvl, close=lvl, bid_size=0, ask_size=0, last_size=0)
            if sec == "STK":
                px = q.etps.get(sym)
                return None if px is None or not math.isfinite(px) else Quote(bid=px, ask=px, last=px, close=px)
            exp = f.get("lastTradeDateOrContractMonth", "")
            if len(exp) < 8:
                return None
            expiry = dt.date(int(exp[:4]), int(exp[4:6]), int(exp[6:8]))
            if sec == "FUT":
                px = q.vx.get(expiry, q.vx_final.get(expiry))
                return None if px is None or not math.isfinite(px) else Quote(bid=px, ask=px, last=px, close=px)
            if sec == "OPT":
                tc = f.get("tradingClass") or sym
                root = "VIX" if sym == "VIX" else tc
                inst = OptionContract(root, expiry, float(f.get("strike") or 0.0), (f.get("right") or "C")[:1],
                                      "PM" if root == "SPXW" else "AM")
                try:
                    m = self.model(phase)
                    mid = float(m.mids([inst])[0])
                except Exception:  # noqa: BLE001 - unpriceable: no quote
                    return None
                if not math.isfinite(mid):
                    return None
                qt = execution.quotes([inst], [mid], q.vix)[0]
                # quotes on the exchange's tick grid, bid down, ask up
                bid = floor_tick(qt.bid, option_tick(qt.bid))
                ask = ceil_tick(qt.ask, option_tick(qt.ask))
                return Quote(bid=round(bid, 2), ask=round(max(ask, bid + 0.05), 2), last=round(mid, 4),
                             close=round(mid, 4), opt_price=mid)
            return None

        return provide

    def prior_state(self, strategies_factory: Callable[[], list[Strategy]], start: dt.date | None = None):
        """Run the replay engine up to the previous trading day: (ledger, strategies, kernel)."""
        from adapters.sim.broker import SimulatedBroker
        from adapters.sim.replay import HistoricalReplay

        kernel = build_kernel(self.cfg, SimulatedBroker, strategies=strategies_factory())
        if self.index > 0:
            rp = HistoricalReplay(self.panel, start or self.cfg.run.start, self.replay.dates[self.index - 1])
            rp.bind(kernel.bus)
            rp.run()
        return kernel.ledger, kernel.strategies, kernel


def seed_store(store: StateStore, ledger: Ledger, strategies: list[Strategy], kernel: Kernel | None = None) -> None:
    """Write a pre-day state (from the replay engine) into a fresh rehearsal store."""
    with store.transaction():
        store.claim("rehearsal", None, seeded=True)
        store.save_ledger(ledger)
        for s in strategies:
            store.save_strategy(s.book, s.state())
        if kernel is not None:
            store.set_meta("kernel", {"last_interest_date": kernel._last_interest_date})
        store.set_meta("seeded", {"at": dt.datetime.now(dt.UTC).isoformat()})


def ledger_positions(ledger: Ledger) -> dict:
    out: dict = {}
    for p in ledger.positions.values():
        out[p.instrument] = out.get(p.instrument, 0) + p.quantity
    return out


def seed_fake_positions(server, positions: dict) -> None:
    """Give a FakeTWS account the positions {Instrument: qty} (paper replay's pre-day holdings), each contract
    named by the fields the IB adapter would send for it."""
    from adapters.ib.contracts import ib_contract

    def fields(inst) -> dict:
        c = ib_contract(inst)
        keys = ("secType", "symbol", "lastTradeDateOrContractMonth", "strike", "right", "tradingClass", "currency")
        return {k: getattr(c, k) for k in keys if getattr(c, k, None) not in (None, "", 0, 0.0)}

    server.seed_positions([(fields(inst), qty) for inst, qty in positions.items() if qty])


def replay_schedule(params: ScheduleParams, hedge_checks: bool) -> ScheduleParams:
    """Paper replay takes its snapshots when the replay engine does (09:30 open, 16:00 close)."""
    return params.model_copy(update={"open_snapshot": dt.time(9, 30), "close_lead_minutes": 0,
                                     "hedge_every_minutes": params.hedge_every_minutes if hedge_checks else 0,
                                     "misfire_grace_seconds": 0})


async def run_paper_replay(cfg, params: DaemonParams, day: dt.date, panel, *, state_path: str | Path | None = None,
                           speed: float | None = None, server=None) -> int:
    """Rehearse one historical day on an accelerated clock against the loopback test server.

    With a panel: the server (in-process unless `server` is given or replay.server is external) quotes
    that day, and a fresh store is seeded with the replay engine's state at the end of the previous day.
    Without one (replay.use_panel = false): an external server's quotes only, from an empty state."""
    from adapters.live.daemon import Daemon, make_strategies
    from adapters.live.scheduler import session_hours

    sched = replay_schedule(params.schedule, params.replay.hedge_checks)
    _, close = session_hours(day)
    clock = ReplayClock(dt.datetime.combine(day, dt.time(9, 0), tzinfo=ET),
                        params.replay.speed if speed is None else speed)
    paper = None
    if panel is not None:
        paper = PaperReplay(cfg, panel, day, clock, close_at=close - dt.timedelta(minutes=sched.close_lead_minutes))
    if paper is None and server is None and params.replay.server == "internal":
        raise DaemonError("paper replay with the in-process test server needs market data (daemon.replay.use_panel)")
    path = Path(state_path) if state_path is not None else rehearsal_state_path(params.state_path, day)
    fresh = True
    positions: dict = {}
    if path.exists():
        probe = StateStore(path, create=False)
        try:
            probe.check_identity("rehearsal")
            fresh = probe.get_meta("seeded") is None and probe.get_meta("daemon") is None
            if not fresh:  # a restarted rehearsal: its account still holds what its ledger says
                led = Ledger(1.0)
                if probe.load_ledger(led):
                    positions = ledger_positions(led)
        finally:
            probe.close()
    strategies = None
    if fresh and paper is not None:
        ledger, strategies, kernel = paper.prior_state(lambda: make_strategies(cfg, params), params.replay.warmup_start)
        store = StateStore(path)
        seed_store(store, ledger, strategies, kernel)
        store.close()
        positions = ledger_positions(ledger)
    own_server = None
    if server is None and params.replay.server == "internal":
        from adapters.faketws import FakeTWS

        # SPXTR is our synthetic total-return series, not a listed share
        etps = {sym: ("ARCA", sym, px) for sym, px in paper._open.etps.items() if sym != "SPXTR"}
        own_server = FakeTWS(port=0, account=SERVER_ACCOUNT, quote_provider=paper.quote_provider(), now=clock.now,
                             spx=paper._open.spx, etps=etps or None)
        await own_server.start()
        server = own_server
    if server is not None and positions and (fresh or own_server is not None):
        seed_fake_positions(server, positions)  # an external server keeps its own account across restarts
    if server is not None:
        ib = {"host": "127.0.0.1", "port": server.port}
        if own_server is not None:
            ib["account"] = SERVER_ACCOUNT  # the in-process server's login, whatever account the config trades
        params = params.model_copy(update={"ib": params.ib.model_copy(update=ib)})
    md = params.market_data
    # the replay clock jumps: streaming ticks would still show the last push, so every job snapshots
    md = md.model_copy(update={"mode": "snapshot"})
    if paper is not None:
        md = md.model_copy(update={"indices": [], "vx_months": max(md.vx_months, 9)})
    params = params.model_copy(update={"schedule": sched, "market_data": md})
    log.info("paper_replay", day=str(day), port=params.ib.port, seeded=bool(fresh and paper), speed=clock.speed,
             state=str(path))
    daemon = Daemon(cfg, params, clock=clock, paper=paper, state_path=path, strategies=strategies, rehearsal=True)
    try:
        return await daemon.run_day(day, sched)
    finally:
        if own_server is not None:
            await own_server.aclose()
