"""Tradable instruments. Frozen, hashable, with a stable text key used in ledgers and files.

Each serialises one way, on the model: `to_dict()` gives plain JSON values
({"type": "option", "root": "SPXW", "expiry": "2024-01-17", ...}) and `instrument_from_dict()` reads it
back. The daemon's state store, the condor book and the hedge state all use it. Reading also accepts the
three formats written before (the store's `type` tag, the hedge's `t` tag, the condor's untagged option legs
with a date object) so existing state files load unchanged; the next save writes the one format.
"""
from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class OptionContract:
    """European cash-settled index option.

    SPX (monthly, AM-settled on the SOQ), SPXW (PM-settled at the close), VIX (AM-settled on VRO,
    priced off the VX future of the same expiry).
    """

    root: str          # "SPX" | "SPXW" | "VIX"
    expiry: dt.date
    strike: float
    right: str         # "C" | "P"
    settlement: str    # "AM" | "PM"
    multiplier: int = 100
    key: str = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # the key is looked up on every mark and ledger access: build the string once
        object.__setattr__(self, "key", f"{self.root} {self.expiry:%Y-%m-%d} {self.strike:g}{self.right}")

    @property
    def underlying(self) -> str:
        return "VIX" if self.root == "VIX" else "SPX"

    @property
    def is_call(self) -> bool:
        return self.right == "C"

    def intrinsic(self, underlying_price: float) -> float:
        if self.right == "C":
            return max(underlying_price - self.strike, 0.0)
        return max(self.strike - underlying_price, 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "option", "root": self.root, "expiry": self.expiry.isoformat(), "strike": self.strike,
                "right": self.right, "settlement": self.settlement, "multiplier": self.multiplier}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OptionContract:
        return cls(d["root"], _date(d["expiry"]), float(d["strike"]), d["right"], d["settlement"],
                   int(d.get("multiplier", 100)))


@dataclass(frozen=True, slots=True)
class FutureContract:
    symbol: str        # "VX"
    expiry: dt.date
    multiplier: int = 1000
    key: str = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.symbol} {self.expiry:%Y-%m-%d}")

    def to_dict(self) -> dict[str, Any]:
        return {"type": "future", "symbol": self.symbol, "expiry": self.expiry.isoformat(),
                "multiplier": self.multiplier}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FutureContract:
        return cls(d["symbol"], _date(d["expiry"]), int(d.get("multiplier", 1000)))


@dataclass(frozen=True, slots=True)
class Equity:
    """Exchange-traded shares (VIX ETPs)."""

    symbol: str
    multiplier: int = 1

    @property
    def key(self) -> str:
        return self.symbol

    def to_dict(self) -> dict[str, Any]:
        return {"type": "equity", "symbol": self.symbol, "multiplier": self.multiplier}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Equity:
        return cls(d["symbol"], int(d.get("multiplier", 1)))


Instrument = OptionContract | FutureContract | Equity

_KINDS: dict[str, type] = {"option": OptionContract, "future": FutureContract, "equity": Equity}


def instrument_from_dict(d: dict[str, Any]) -> Instrument:
    """The instrument `to_dict()` wrote (older state formats accepted: a `t` tag, or untagged option legs)."""
    kind = d.get("type", d.get("t"))
    if kind is None:  # untagged: condor legs written before the one format
        kind = "option" if "right" in d else "future" if "expiry" in d else "equity"
    if kind not in _KINDS:
        raise ValueError(f"unknown instrument type {kind!r}")
    try:
        return _KINDS[kind].from_dict(d)
    except KeyError as e:
        raise ValueError(f"not an instrument: {d!r} (missing {e})") from None


def _date(v: Any) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    return dt.date.fromisoformat(str(v)[:10])


def spx_option(expiry: dt.date, strike: float, right: str, root: str = "SPX") -> OptionContract:
    return OptionContract(root, expiry, float(strike), right, "AM" if root == "SPX" else "PM")


def vix_option(expiry: dt.date, strike: float, right: str) -> OptionContract:
    return OptionContract("VIX", expiry, float(strike), right, "AM")


@functools.lru_cache(maxsize=4096)
def vx_future(expiry: dt.date) -> FutureContract:
    """The VX future of `expiry`; one shared immutable object per expiry (a blend hedge asks every day)."""
    return FutureContract("VX", expiry)
