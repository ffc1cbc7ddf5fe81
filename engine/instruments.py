"""Tradable instruments. Frozen, hashable, with a stable text key used in ledgers and files."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


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


@dataclass(frozen=True, slots=True)
class FutureContract:
    symbol: str        # "VX"
    expiry: dt.date
    multiplier: int = 1000
    key: str = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.symbol} {self.expiry:%Y-%m-%d}")


@dataclass(frozen=True, slots=True)
class Equity:
    """Exchange-traded shares (VIX ETPs)."""

    symbol: str
    multiplier: int = 1

    @property
    def key(self) -> str:
        return self.symbol


Instrument = OptionContract | FutureContract | Equity


def spx_option(expiry: dt.date, strike: float, right: str, root: str = "SPX") -> OptionContract:
    return OptionContract(root, expiry, float(strike), right, "AM" if root == "SPX" else "PM")


def vix_option(expiry: dt.date, strike: float, right: str) -> OptionContract:
    return OptionContract("VIX", expiry, float(strike), right, "AM")


def vx_future(expiry: dt.date) -> FutureContract:
    return FutureContract("VX", expiry)
