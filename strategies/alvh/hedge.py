"""LayeredVixHedge: the "ALVH 4/4/2" layered VIX hedge as a Strategy with its own book.

At each decision (default: the close snapshot) the hedge
1. reads the trigger signal and the gates from the snapshot (signals.py),
2. steps the layer triggers (layers.py) and turns them into an activation level per layer,
3. for every layer: picks or rolls its instrument (instruments.py), sizes it from the budget reading
   (budget.py), and trades the difference between the target and what the layer holds. A layer is
   sized when it switches on or rolls; while it is on, its size is reviewed every ``rebalance_days``
   decisions and changed only when target/held leaves [1/(1+band), 1+band] (``rebalance_band``) - the
   "adaptive rebalance", without daily churn from small changes in the condor's vega. Constant-
   maturity blends follow their index roll every day at the held size.

The hedge reads the condor book's risk through a small view object (BookRiskView) given at
construction. Nothing it uses comes from later than the snapshot being processed: trailing betas and
MACD/RSI are built from snapshots it has already seen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import structlog
from pydantic import Field, StrictBool, field_validator, model_validator

from engine.events import FillEvent, MarketSnapshot, OrderState, OrderStatusEvent, Phase, SettlementEvent
from engine.instruments import Instrument, instrument_from_dict
from engine.orders import OrderLeg
from engine.params import Params
from engine.strategy import Strategy, StrategyContext, add_fill
from strategies.alvh.budget import (
    BudgetParams,
    CondorRiskView,
    TrailingBetas,
    basket_measures,
    condor_max_loss,
    condor_vega_dollars,
    layer_target,
    series_key,
    unit_measure,
)
from strategies.alvh.instruments import (
    CmParams,
    EtpHandler,
    ExpiryBook,
    Holding,
    InstrumentParams,
    VixCallParams,
    VxParams,
    basket_quantities,
    make_handler,
    rounding_error,
)
from strategies.alvh.layers import ActivationMode, LayerSchedule, Trigger, activation_levels
from strategies.alvh.signals import (
    GATE_SERIES,
    GateParams,
    Gates,
    read_signal,
    signal_series,
    validate_signal,
)
from strategies.needs import SeriesNeed, merge_needs

log = structlog.get_logger("alvh.hedge")


class LayerParams(Params):
    name: str
    weight: float = Field(ge=0, le=1)
    threshold: float = Field(description="signal level at which this layer's trigger switches on")
    hysteresis: float = Field(2.0, ge=0, description="switch off only below threshold - hysteresis")
    min_hold_days: int = Field(10, ge=0, description="decisions a layer stays on once switched on")
    cooldown_days: int = Field(0, ge=0, description="decisions a layer stays off once switched off")
    instrument: InstrumentParams = Field(default_factory=VxParams)


def default_layers() -> list[LayerParams]:
    return [
        LayerParams(name="near", weight=0.4, threshold=18.0, instrument=VxParams(month=1, roll_days=5)),
        LayerParams(name="intermediate", weight=0.4, threshold=22.0, instrument=CmParams(term="mid")),
        LayerParams(name="long", weight=0.2, threshold=28.0,
                    instrument=VixCallParams(target_dte=150, min_entry_dte=120, max_entry_dte=250, roll_dte=60)),
    ]


class AlvhParams(Params):
    kind: Literal["alvh", "static"] = Field("alvh", description="'static' = the same layers, always on")
    book: str = "hedge"
    condor_book: str = Field("condor", description="book whose risk the hedge offsets")
    signal: str = "vix"
    activation: ActivationMode = "progressive"
    decision_phase: Literal["open", "close"] = "close"
    intraday_activation: StrictBool = True   # INTRADAY snapshots (the daemon's hedge checks) may switch layers on
    rebalance_band: float = Field(0.5, ge=0, le=10,
                                  description="resize a live layer only when target/held leaves [1/(1+band), 1+band]")
    rebalance_days: int = Field(5, ge=0, description="a live layer's size is reviewed every this many decisions")
    budget: BudgetParams = Field(default_factory=BudgetParams)
    gates: GateParams = Field(default_factory=GateParams)
    layers: list[LayerParams] = Field(default_factory=default_layers, min_length=1, max_length=8)
    record_activity: StrictBool = Field(True, description="keep a per-decision log (plots, tests)")

    @field_validator("signal")
    @classmethod
    def _signal(cls, v: str) -> str:
        return validate_signal(v)

    @model_validator(mode="after")
    def _static(self):
        if self.kind == "static":
            self.activation = "always"
        if sum(layer.weight for layer in self.layers) <= 0:
            raise ValueError("layers: weights must not all be zero")
        return self

    def needs(self) -> list[SeriesNeed]:
        """The trigger signal's series, the gates' series, VIX (the budget's trailing regressions) and each
        layer's instrument: VX settlements for futures, blends and VIX options; an ETP's closes where they
        exist (before that, and below min_shares, the layer holds the blend the ETP tracks)."""
        out = [SeriesNeed(s, f"the hedge signal '{self.signal}'") for s in signal_series(self.signal)]
        for gate in self.gates.use:
            out += [SeriesNeed(s, f"the hedge gate '{gate}'") for s in GATE_SERIES[gate]]
        out.append(SeriesNeed("vix", f"the hedge budget '{self.budget.reading}'"))
        for lp in self.layers:
            inst = lp.instrument
            why = f"hedge layer '{lp.name}' ({inst.type})"
            if inst.type == "etp":
                out.append(SeriesNeed(f"etp:{inst.symbol}", why, whole_window=False))
                if inst.fallback != "none":
                    out.append(SeriesNeed("vx", why + " falls back to a VX blend"))
            else:
                out.append(SeriesNeed("vx", why))
        return merge_needs(out)


@dataclass
class Layer:
    p: LayerParams
    handler: object
    held: Holding | None = None
    qty: dict[Instrument, int] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)     # intent id -> purpose
    units: float = 0.0
    level: float = 0.0
    retry: StrictBool = False
    sized_day: int = -10**9

    def holding(self) -> bool:
        return any(self.qty.values())   # whole contracts/shares: a quantity is held when it is not 0


class LayeredVixHedge(Strategy):
    def __init__(self, params: AlvhParams | None = None, risk: CondorRiskView | None = None) -> None:
        self.p = params or AlvhParams()
        self.book = self.p.book
        self.risk = risk
        self.expiries = ExpiryBook()
        self.betas = TrailingBetas(self.p.budget)
        self.gates = Gates(self.p.gates)
        self.schedule = LayerSchedule(
            [Trigger(lp.threshold, lp.hysteresis, lp.min_hold_days, lp.cooldown_days) for lp in self.p.layers],
            self.p.activation)
        self.layers = [Layer(lp, make_handler(lp.instrument, self.expiries)) for lp in self.p.layers]
        self.by_intent: dict[str, int] = {}
        self._condor: tuple[float, float] | None = None
        self.activity: list[tuple] = []
        self.rounding: list[tuple] = []        # (date, layer, units, relative rounding error) for blends
        self.rejections = 0
        self._etps = tuple(sorted({lp.instrument.symbol for lp in self.p.layers if lp.instrument.type == "etp"}))
        self.trades: list[dict] = []           # hedge trades are fills; the condor book reports its own trades

    # ---- wiring --------------------------------------------------------------------------------
    def on_start(self, ctx: StrategyContext) -> None:
        if self.risk is None and self.p.budget.reading in ("vega", "contracts"):
            # these readings size against the condor book: build_hedge(raw, condor=book) hands it in
            log.warning("hedge_without_condor_view", book=self.book, reading=self.p.budget.reading)

    # ---- market --------------------------------------------------------------------------------
    def on_snapshot(self, snap: MarketSnapshot, ctx: StrategyContext) -> None:
        market = ctx.market
        self.expiries.observe(market)
        if snap.phase is Phase.CLOSE:
            self._record_close(snap)
            self.gates.update_close(snap)
        if snap.phase == self.p.decision_phase:
            self._decide(snap, ctx)
        elif snap.phase is Phase.INTRADAY and self.p.intraday_activation:
            self._intraday(snap, ctx)

    def _intraday(self, snap: MarketSnapshot, ctx: StrategyContext) -> None:
        """A threshold crossed between decisions switches its layer on now (replay has no intraday
        snapshots, so replay results are unaffected; live, the hedge acts the same day)."""
        before = list(self.schedule.levels)
        if not self.schedule.activate(read_signal(self.p.signal, snap), self.gates.passes(snap)):
            return
        self._condor = None
        for i, (layer, old, new) in enumerate(zip(self.layers, before, self.schedule.levels)):
            if new > old:
                self._manage(i, layer, new, snap, ctx)

    def _record_close(self, snap: MarketSnapshot) -> None:
        self.betas.record_close(snap, self._etps)

    def _decide(self, snap: MarketSnapshot, ctx: StrategyContext) -> None:
        signal = read_signal(self.p.signal, snap)
        gate_ok = self.gates.passes(snap)
        levels = self.schedule.step(signal, gate_ok, self.p.gates.apply_to_exit)
        self._condor = None   # the condor's vega / max loss, computed only if a layer needs sizing today
        for i, (layer, level) in enumerate(zip(self.layers, levels)):
            self._manage(i, layer, level, snap, ctx)
        if self.p.record_activity:
            vega, risk = self._condor if self._condor is not None else (math.nan, math.nan)
            self.activity.append((snap.date, signal, *self.schedule.states, *levels,
                                  *[layer.units for layer in self.layers], vega, risk))

    def _condor_numbers(self, market) -> tuple[float, float]:
        if self._condor is None:
            vega = risk = 0.0
            reading = self.p.budget.reading
            if self.risk is not None and reading in ("vega", "contracts"):
                legs = self.risk.legs()
                if reading == "vega":
                    vega = condor_vega_dollars(market, legs)
                else:
                    risk = condor_max_loss(market, legs)
            self._condor = (vega, risk)
        return self._condor

    # ---- one layer -----------------------------------------------------------------------------
    def _manage(self, i: int, layer: Layer, level: float, snap: MarketSnapshot, ctx: StrategyContext) -> None:
        if layer.pending:
            return  # wait for the working orders (next_snapshot fills) before deciding again
        if level <= 0.0:
            if layer.holding():
                self._trade(i, layer, {}, ctx, "hedge-off")
            layer.held, layer.units, layer.level = None, 0.0, 0.0
            return
        market = ctx.market
        handler = layer.handler
        switched = level != layer.level or layer.retry
        held = layer.held
        new = held is None or handler.dynamic or handler.roll_due(held, market)
        rolled = False
        if new:
            choice = handler.select(market)
            if choice is None:
                if held is None or handler.roll_due(held, market):
                    if layer.holding():
                        self._trade(i, layer, {}, ctx, "hedge-off")
                    layer.held, layer.units = None, 0.0
                return
            rolled = held is None or set(choice.basket) != set(held.basket)
            held = choice
        day = self.schedule.day
        steady = layer.units > 0 and not switched and not rolled
        if steady and day - layer.sized_day < self.p.rebalance_days:
            if not handler.dynamic:
                return
            units = layer.units   # blends: keep the size, follow the index roll
        else:
            p = self.p.budget
            vega, risk = self._condor_numbers(market)
            equity = ctx.equity if p.reading == "equity" else 0.0
            goal = level * layer_target(p, layer.p.weight, equity=equity, condor_vega=vega, condor_risk=risk)
            units = self._units(p, held, market, goal)
            if isinstance(handler, EtpHandler) and not held.fallback and 0 < units < handler.p.min_shares:
                fb = handler.fallback_holding(market)
                if fb is not None:
                    held, rolled = fb, True
                    units = self._units(p, held, market, goal)
            layer.sized_day = day
            if steady and _within(units, layer.units, self.p.rebalance_band):
                if not handler.dynamic:
                    return
                units = layer.units
        whole = basket_quantities(held.basket, units)
        target = {k: v for k, v in whole.items() if v != 0}
        if len(held.basket) > 1 and handler.dynamic:
            self.rounding.append((snap.date, layer.p.name, units, rounding_error(held.basket, units, whole)))
        purpose = "hedge-roll" if rolled and layer.holding() else ("hedge-on" if switched else "hedge-rebalance")
        layer.held, layer.units, layer.level, layer.retry = held, units, level, False
        self._trade(i, layer, target, ctx, purpose)

    def _units(self, p: BudgetParams, held: Holding, market, target: float) -> float:
        if target <= 0:
            return 0.0
        m = unit_measure(p, basket_measures(held.basket, market, self.betas, p))
        if not math.isfinite(m) or m <= 0:
            return 0.0
        return target / m

    def _trade(self, i: int, layer: Layer, target: dict[Instrument, int], ctx: StrategyContext, purpose: str) -> None:
        diff = {}
        for inst in set(target) | set(layer.qty):
            d = target.get(inst, 0) - layer.qty.get(inst, 0)
            if d:
                diff[inst] = d
        if not diff:
            return
        items = sorted(diff.items(), key=lambda kv: kv[0].key)
        if len(items) == 2 and items[0][1] == -items[1][1]:
            n = abs(items[0][1])
            orders = [([OrderLeg(inst, 1 if d > 0 else -1) for inst, d in items], n)]
        else:
            orders = [([OrderLeg(inst, 1 if d > 0 else -1)], abs(d)) for inst, d in items]
        for legs, n in orders:
            intent = ctx.submit(legs, n, purpose=purpose)
            self.by_intent[intent] = i
            layer.pending[intent] = purpose

    # ---- order events --------------------------------------------------------------------------
    def on_fill(self, fill: FillEvent, ctx: StrategyContext) -> None:
        i = self.by_intent.get(fill.intent_id)
        if i is None:
            return
        layer = self.layers[i]
        add_fill(layer.qty, fill)
        layer.pending.pop(fill.intent_id, None)

    def on_order_status(self, event: OrderStatusEvent, ctx: StrategyContext) -> None:
        if event.state not in (OrderState.CANCELLED, OrderState.REJECTED):
            return
        i = self.by_intent.get(event.intent_id)
        if i is None:
            return
        layer = self.layers[i]
        if layer.pending.pop(event.intent_id, None) is not None:
            layer.retry = True
            self.rejections += 1

    def on_settlement(self, event: SettlementEvent, ctx: StrategyContext) -> None:
        left = event.quantity
        for layer in self.layers:
            q = layer.qty.get(event.instrument, 0)
            if q and left:
                take = q if abs(q) <= abs(left) else left
                layer.qty[event.instrument] = q - take
                left -= take
                if layer.qty[event.instrument] == 0:
                    del layer.qty[event.instrument]

    # ---- reporting -----------------------------------------------------------------------------
    def activity_frame(self):
        import pandas as pd

        names = [lp.name for lp in self.p.layers]
        cols = (["date", "signal"] + [f"on_{x}" for x in names] + [f"level_{x}" for x in names]
                + [f"units_{x}" for x in names] + ["condor_vega", "condor_risk"])
        df = pd.DataFrame(self.activity, columns=cols)
        df["date"] = pd.to_datetime(df["date"])
        return df.set_index("date")

    # ---- persistence (daemon) ------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "day": self.schedule.day,
            "triggers": [{"on": t.on, "since": t.since, "switches": t.switches} for t in self.schedule.triggers],
            "layers": [{"units": la.units, "level": la.level,
                        "qty": [[k.to_dict(), v] for k, v in la.qty.items()],
                        "held": None if la.held is None else {
                            "label": la.held.label, "fallback": la.held.fallback,
                            "basket": [[k.to_dict(), v] for k, v in la.held.basket.items()]},
                        # orders in flight: after a restart their fills must still reach this layer
                        "pending": dict(la.pending)}
                       for la in self.layers],
        }

    def restore(self, state: dict) -> None:
        self.schedule.day = state.get("day", 0)
        for t, s in zip(self.schedule.triggers, state.get("triggers", [])):
            t.on, t.since, t.switches = s["on"], s["since"], s["switches"]
        self.schedule.levels = activation_levels(self.schedule.mode, self.schedule.states)
        for la, s in zip(self.layers, state.get("layers", [])):
            la.units, la.level = s["units"], s["level"]
            la.qty = {instrument_from_dict(k): v for k, v in s["qty"]}
            h = s.get("held")
            la.held = None if h is None else Holding({instrument_from_dict(k): v for k, v in h["basket"]},
                                                     h["label"], h["fallback"])
            la.pending = dict(s.get("pending", {}))
        self.by_intent = {intent: i for i, la in enumerate(self.layers) for intent in la.pending}


def _within(target: float, held: float, band: float) -> bool:
    """target/held inside [1/(1+band), 1+band]."""
    if held <= 0 or target <= 0:
        return False
    r = target / held
    return 1.0 / (1.0 + band) <= r <= 1.0 + band


__all__ = ["AlvhParams", "LayerParams", "LayeredVixHedge", "default_layers", "series_key"]
