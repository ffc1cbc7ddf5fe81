"""The one place a configuration becomes running objects: the strategies of a RunConfig, and the kernel that drives
them with a broker. Replay, verdict, sweep, the daemon and its paper replay all build through here, so a
configuration means the same thing in every mode."""
from __future__ import annotations

from collections.abc import Callable

from config.settings import RunConfig
from engine.bus import EventBus
from engine.clock import Clock, SimulatedClock
from engine.execution import ExecutionSimulator
from engine.kernel import Kernel
from engine.ledger import Ledger
from engine.ports import Broker
from engine.strategy import Strategy
from strategies.hedges import build_hedge, parse_hedge
from strategies.iron_condor import IronCondorBook
from strategies.needs import SeriesNeed, merge_needs


def build_strategies(cfg: RunConfig) -> list[Strategy]:
    """The condor book (if configured) and the hedge that protects it (if configured), in that order."""
    out: list[Strategy] = []
    condor = IronCondorBook(cfg.condor) if cfg.condor is not None else None
    if condor is not None:
        out.append(condor)
    out.extend(build_hedge(cfg.hedge, condor=condor))
    if not out:
        raise ValueError(f"{cfg.source}: no strategy configured (add a [condor] or [hedge] section)")
    return out


def build_kernel(cfg: RunConfig, make_broker: Callable[[ExecutionSimulator], Broker], *,
                 clock: Callable[[EventBus], Clock] | None = None, strategies: list[Strategy] | None = None,
                 orders_today: Callable | None = None, strict_settlement: bool = True) -> Kernel:
    """Bus, clock, ledger, execution model, broker and strategies, joined by a Kernel with the config's pricing,
    margin and risk limits. `make_broker` receives the execution model (the IB broker prices its working orders
    with it); `clock` builds the clock on the bus (default: simulated time from the events)."""
    bus = EventBus()
    execution = ExecutionSimulator(cfg.execution)
    return Kernel(bus=bus, clock=(clock or SimulatedClock)(bus), broker=make_broker(execution),
                  ledger=Ledger(cfg.run.initial_equity),
                  strategies=strategies if strategies is not None else build_strategies(cfg),
                  pricing=cfg.pricing, execution=execution, margin=cfg.margin, limits=cfg.risk,
                  orders_today=orders_today, strict_settlement=strict_settlement)


def series_needs(cfg: RunConfig) -> list[SeriesNeed]:
    """Every market series the configured condor book and hedge read (strategies/needs.py). A daemon
    `strategy_factory` builds other strategies: those declare nothing here."""
    groups = [cfg.condor.needs()] if cfg.condor is not None else []
    hedge = parse_hedge(cfg.hedge) if cfg.hedge is not None else None
    if hedge is not None:
        groups.append(hedge.needs())
    return merge_needs(*groups)
