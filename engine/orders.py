"""Order intents: what a strategy asks a broker to do.

An intent id is the one key shared by the strategy, the journal, the broker (IB orderRef) and the
ledger, so replay, paper trading and restart recovery all reconcile on it.
"""
from __future__ import annotations

from dataclasses import dataclass

from engine.instruments import Instrument


@dataclass(frozen=True, slots=True)
class OrderLeg:
    instrument: Instrument
    ratio: int  # signed: +1 buy one per combo unit, -1 sell one

    @property
    def key(self) -> str:
        return self.instrument.key


@dataclass(frozen=True, slots=True)
class OrderRequest:
    intent_id: str
    book: str
    legs: tuple[OrderLeg, ...]
    quantity: int                 # combo units (> 0); direction is in the leg ratios
    limit: float | None = None    # net price per combo unit; positive = debit paid, negative = credit received
    purpose: str = ""             # "open" | "close" | "hedge" | "roll" | ...
    tif: str = "DAY"

    def __post_init__(self) -> None:
        if self.quantity <= 0:
            raise ValueError(f"order {self.intent_id}: quantity must be positive, got {self.quantity}")
        if not self.legs:
            raise ValueError(f"order {self.intent_id}: no legs")

    @property
    def is_combo(self) -> bool:
        return len(self.legs) > 1

    def signed_quantities(self) -> dict[str, int]:
        return {leg.key: leg.ratio * self.quantity for leg in self.legs}
