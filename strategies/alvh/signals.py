"""Trigger signals and optional gates for the layered VIX hedge.

Everything here is computed from the snapshot being processed and from the hedge's own record of
earlier snapshots, so a decision at time t can only use what was known at t.

Trigger signals (``signal`` in the [hedge] table):
- ``vix``: spot VIX at the snapshot (the open print at 09:30, the close at 16:00). Default.
- ``vx_front``: the nearest live VX future (at the open: the prior settlement; at the close: today's).
- ``term_ratio``: VIX / VIX3M (above 1 = inverted term structure). Thresholds must then be ratios.
- ``series:NAME``: any scalar the snapshot carries (vix9d, vix6m, vvix, skew, or an ``extra`` column).

Gates (``[hedge.gates]``) are extra conditions a layer needs to switch on:
- ``macd``: MACD(fast, slow) of SPX closes below its signal line (bearish momentum);
- ``rsi``: RSI(period) of SPX closes below ``rsi_below`` (weakness);
- ``inversion``: VIX / VIX3M at or above ``inversion_level`` (term structure inverted).
MACD and RSI are updated from close snapshots only; a decision at the open uses the values as of the
previous close. ``mode = "all"`` needs every gate, ``"any"`` one of them.
"""
from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, StrictBool

from engine.events import MarketSnapshot, Phase
from engine.params import Params

SIGNAL_KINDS = ("vix", "vx_front", "term_ratio")
GATE_SERIES = {"macd": ("spx",), "rsi": ("spx",), "inversion": ("vix", "vix3m")}   # what each gate reads


class GateParams(Params):
    use: list[Literal["macd", "rsi", "inversion"]] = Field(default_factory=list,
                                                          description="gates combined with the threshold")
    mode: Literal["all", "any"] = "all"
    apply_to_exit: StrictBool = Field(False, description="also switch layers off when the gates fail")
    macd_fast: int = Field(12, ge=2)
    macd_slow: int = Field(26, ge=3)
    macd_signal: int = Field(9, ge=2)
    rsi_period: int = Field(14, ge=2)
    rsi_below: float = Field(50.0, gt=0, lt=100)
    inversion_level: float = Field(1.0, gt=0)


def validate_signal(name: str) -> str:
    if name in SIGNAL_KINDS or (name.startswith("series:") and len(name) > len("series:")):
        return name
    raise ValueError(f"unknown signal {name!r}; use one of {list(SIGNAL_KINDS)} or 'series:<name>'")


def signal_series(name: str) -> tuple[str, ...]:
    """The series a signal reads (strategies/needs.py names)."""
    if name == "vx_front":
        return ("vx",)
    if name == "term_ratio":
        return ("vix", "vix3m")
    return (name.split(":", 1)[1],) if name.startswith("series:") else (name,)


def read_signal(name: str, snap: MarketSnapshot) -> float:
    """The trigger value carried by this snapshot (NaN when not available)."""
    q = snap.quotes
    if name == "vix":
        return q.vix
    if name == "vx_front":
        live = sorted((e, p) for e, p in q.vx.items() if e > snap.date and math.isfinite(p))
        return live[0][1] if live else math.nan
    if name == "term_ratio":
        return q.vix / q.vix3m if q.vix3m and math.isfinite(q.vix3m) and q.vix3m > 0 else math.nan
    field = name.split(":", 1)[1]
    v = getattr(q, field, None)
    if isinstance(v, float):
        return v
    return float(q.extra.get(field, math.nan))


class Ema:
    __slots__ = ("alpha", "n", "value")

    def __init__(self, span: int) -> None:
        self.alpha = 2.0 / (span + 1.0)
        self.value = math.nan
        self.n = 0

    def update(self, x: float) -> float:
        self.value = x if self.n == 0 else self.value + self.alpha * (x - self.value)
        self.n += 1
        return self.value


class Macd:
    """MACD line = EMA(fast) - EMA(slow); signal = EMA(signal) of the MACD line."""

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        self.fast, self.slow, self.sig = Ema(fast), Ema(slow), Ema(signal)
        self.warmup = slow + signal
        self.macd = math.nan
        self.signal = math.nan

    def update(self, close: float) -> None:
        self.macd = self.fast.update(close) - self.slow.update(close)
        self.signal = self.sig.update(self.macd)

    @property
    def ready(self) -> bool:
        return self.fast.n >= self.warmup

    @property
    def bearish(self) -> bool:
        return self.ready and self.macd < self.signal


class Rsi:
    """Wilder's RSI: averages of gains and losses smoothed with alpha = 1 / period."""

    def __init__(self, period: int = 14) -> None:
        self.period = period
        self.prev = math.nan
        self.gain = 0.0
        self.loss = 0.0
        self.n = 0
        self.value = math.nan

    def update(self, close: float) -> None:
        if math.isfinite(self.prev):
            ch = close - self.prev
            g, lo = max(ch, 0.0), max(-ch, 0.0)
            self.n += 1
            if self.n <= self.period:
                self.gain += g / self.period
                self.loss += lo / self.period
            else:
                a = 1.0 / self.period
                self.gain += a * (g - self.gain)
                self.loss += a * (lo - self.loss)
            if self.n >= self.period:
                self.value = 100.0 if self.loss == 0 else 100.0 - 100.0 / (1.0 + self.gain / self.loss)
        self.prev = close


class Gates:
    """The optional gates. ``update_close`` at each close snapshot, ``passes`` at each decision."""

    def __init__(self, params: GateParams) -> None:
        self.p = params
        self.macd = Macd(params.macd_fast, params.macd_slow, params.macd_signal)
        self.rsi = Rsi(params.rsi_period)

    @property
    def active(self) -> bool:
        return bool(self.p.use)

    def update_close(self, snap: MarketSnapshot) -> None:
        if not self.p.use or snap.phase is not Phase.CLOSE:
            return
        spx = snap.quotes.spx
        if math.isfinite(spx):
            self.macd.update(spx)
            self.rsi.update(spx)

    def states(self, snap: MarketSnapshot) -> dict[str, bool]:
        out = {}
        for g in self.p.use:
            if g == "macd":
                out[g] = self.macd.bearish
            elif g == "rsi":
                out[g] = math.isfinite(self.rsi.value) and self.rsi.value < self.p.rsi_below
            else:
                r = read_signal("term_ratio", snap)
                out[g] = math.isfinite(r) and r >= self.p.inversion_level
        return out

    def passes(self, snap: MarketSnapshot) -> bool:
        if not self.p.use:
            return True
        s = self.states(snap).values()
        return all(s) if self.p.mode == "all" else any(s)
