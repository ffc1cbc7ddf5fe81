"""The layer state machine: when each hedge layer is on, and how much of it.

Each layer owns a trigger with two states, OFF and ON:

    OFF -> ON   when signal >= threshold (and the gates pass, if any), and the layer has been OFF for
                at least ``cooldown_days`` decisions;
    ON  -> OFF  when signal < threshold - hysteresis, and the layer has been ON for at least
                ``min_hold_days`` decisions (optionally also when the gates fail: gates.apply_to_exit).

A NaN signal changes nothing. The hysteresis band and the minimum hold are what stop a VIX that
wiggles around 18 from switching the layer on and off every day. Days are counted in decisions
(one per trading day at the default decision phase).

How triggers map to layer activation (``activation`` in the [hedge] table):
- ``progressive`` (default): layer i is fully on while trigger i is ON (VIX 18 -> layer 1, 22 -> layer 2,
  28 -> layer 3 by default);
- ``scaled``: all layers move together; each is on at k/N of its size where k triggers are ON;
- ``base``: layer 1 is permanently on (a base layer); the others follow their own triggers;
- ``always``: every layer permanently on (the "same layers always on" baseline).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

ActivationMode = Literal["progressive", "scaled", "base", "always"]


@dataclass
class Trigger:
    threshold: float
    hysteresis: float = 0.0
    min_hold_days: int = 0
    cooldown_days: int = 0
    on: bool = False
    since: int = -10**9           # decision number of the last switch
    switches: int = 0

    def update(self, day: int, signal: float, gate_ok: bool = True, gate_exit: bool = False) -> bool:
        """Advance the machine at decision number `day`. Returns True if the state changed."""
        if math.isnan(signal):  # NaN: nothing is known, nothing changes
            return False
        held = day - self.since
        if not self.on:
            if signal >= self.threshold and gate_ok and held >= self.cooldown_days:
                self.on, self.since = True, day
                self.switches += 1
                return True
            return False
        below = signal < self.threshold - self.hysteresis
        if (below or (gate_exit and not gate_ok)) and held >= self.min_hold_days:
            self.on, self.since = False, day
            self.switches += 1
            return True
        return False


def activation_levels(mode: ActivationMode, on: list[bool]) -> list[float]:
    """Fraction (0..1) of each layer's full size given the trigger states."""
    n = len(on)
    if mode == "always":
        return [1.0] * n
    if mode == "progressive":
        return [1.0 if s else 0.0 for s in on]
    if mode == "scaled":
        k = sum(on) / n if n else 0.0
        return [k] * n
    if mode == "base":
        return [1.0] + [1.0 if s else 0.0 for s in on[1:]]
    raise ValueError(f"unknown activation mode {mode!r}")


@dataclass
class LayerSchedule:
    """All triggers of a hedge plus the activation map; ``step`` is the one call per decision."""

    triggers: list[Trigger]
    mode: ActivationMode = "progressive"
    day: int = 0
    levels: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.levels = activation_levels(self.mode, [t.on for t in self.triggers])

    def step(self, signal: float, gate_ok: bool = True, gate_exit: bool = False) -> list[float]:
        for t in self.triggers:
            t.update(self.day, signal, gate_ok, gate_exit)
        self.day += 1
        self.levels = activation_levels(self.mode, [t.on for t in self.triggers])
        return self.levels

    def activate(self, signal: float, gate_ok: bool = True) -> list[int]:
        """Between decisions (intraday checks of the daemon): switch ON any trigger whose threshold the
        signal has crossed, so a spike acts the same day. Never switches off (hysteresis and minimum hold
        are judged at the decision phase) and does not advance the decision count. Returns the indices of
        the triggers switched on."""
        switched = []
        if math.isnan(signal):
            return switched
        for i, t in enumerate(self.triggers):
            if not t.on and signal >= t.threshold and gate_ok and self.day - t.since >= t.cooldown_days:
                t.on, t.since = True, self.day
                t.switches += 1
                switched.append(i)
        if switched:
            self.levels = activation_levels(self.mode, [t.on for t in self.triggers])
        return switched

    @property
    def states(self) -> list[bool]:
        return [t.on for t in self.triggers]
