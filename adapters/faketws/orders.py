"""The server's records of orders (with their combo legs) and executions."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from .contracts import ContractSpec


@dataclass
class LegRecord:
    spec: ContractSpec
    ratio: int
    action: str
    exchange: str = "SMART"
    open_close: int = 0
    short_sale_slot: int = 0
    designated_location: str = ""
    exempt_code: int = -1

    @property
    def sign(self) -> int:
        """+1 if the leg is bought when the combo is bought."""
        return 1 if self.action.upper() == "BUY" else -1


WORKING = ("PendingSubmit", "PreSubmitted", "Submitted")
DONE = ("Filled", "Cancelled", "ApiCancelled", "Inactive")


@dataclass
class OrderRecord:
    client_id: int
    order_id: int
    perm_id: int
    contract: dict  # contract fields as the client sent them (echoed in openOrder)
    spec: ContractSpec | None  # single-contract orders
    legs: list[LegRecord]  # BAG orders
    action: str
    total_qty: float
    order_type: str
    lmt_price: float | None = None
    aux_price: float | None = None
    tif: str = "DAY"
    account: str = ""
    order_ref: str = ""
    oca_group: str = ""
    open_close: str = ""
    origin: int = 0
    transmit: bool = True
    parent_id: int = 0
    outside_rth: bool = False
    what_if: bool = False
    good_till_date: str = ""
    good_after_time: str = ""
    order_combo_prices: list = field(default_factory=list)
    smart_combo_params: list = field(default_factory=list)
    status: str = "PendingSubmit"
    filled: float = 0.0
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    why_held: str = ""
    created: dt.datetime | None = None
    completed_time: str = ""
    done_at: dt.datetime | None = None  # when it was filled, cancelled or rejected
    completed_status: str = ""
    policy_state: dict = field(default_factory=dict)
    executions: list = field(default_factory=list)

    @property
    def is_bag(self) -> bool:
        return bool(self.legs)

    @property
    def remaining(self) -> float:
        return max(self.total_qty - self.filled, 0.0)

    @property
    def is_working(self) -> bool:
        return self.status in WORKING

    @property
    def is_done(self) -> bool:
        return self.status in DONE

    @property
    def signed_side(self) -> int:
        return 1 if self.action.upper() == "BUY" else -1

    @property
    def symbol(self) -> str:
        return self.contract.get("symbol") or (self.spec.symbol if self.spec else "")


@dataclass
class ExecutionRecord:
    exec_id: str
    order: OrderRecord
    contract: dict  # fields for the execDetails contract part
    spec: ContractSpec | None  # None for the combo-level execution
    time: dt.datetime
    side: str  # BOT / SLD
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    exchange: str
    account: str
    commission: float = 0.0
    realized_pnl: float | None = None
    combo_level: bool = False
    liquidity: int = 1

    @property
    def sec_type(self) -> str:
        return self.contract.get("secType", "")
