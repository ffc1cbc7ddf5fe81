"""Risk limits and the kill switch, checked by the kernel for every order whatever the broker.

Replay and live share them: a limit that stops an order in the daemon stops the same order in a backtest.
Every limit is optional (None = no limit); a config with a [daemon] table gets `LIVE_DEFAULTS` for the order
limits it leaves unset, so the daemon never trades without them. A breached loss limit halts trading (the same
state as the kill switch) with the reason; only a resume clears it.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable

from pydantic import Field, StrictBool

from engine.instruments import Equity, FutureContract, OptionContract
from engine.orders import OrderRequest
from engine.params import Params

LIVE_DEFAULTS = {"max_contracts_per_order": 50, "max_orders_per_day": 30, "max_hedge_notional": 500_000.0}


class RiskLimits(Params):
    max_contracts_per_order: int | None = Field(None, ge=1, description="options/futures per leg (ETP shares: "
                                                                        "max_hedge_notional)")
    max_orders_per_day: int | None = Field(None, ge=1, description="orders accepted per session")
    max_hedge_notional: float | None = Field(None, gt=0, description="per order: VX/VIX-option underlying or ETP value")
    max_position_contracts: int | None = Field(None, ge=1, description="net contracts held in any one option or "
                                                                       "future after the order")
    max_daily_loss: float | None = Field(None, gt=0, lt=1, description="halt when equity falls this fraction below "
                                                                       "the session's opening equity")
    max_total_loss: float | None = Field(None, gt=0, lt=1, description="halt when equity falls this fraction below "
                                                                       "the account's starting equity")
    halt_on_position_mismatch: StrictBool = Field(True, description="(daemon) halt when the broker's positions "
                                                                    "differ from the ledger's")

    def with_live_defaults(self) -> RiskLimits:
        unset = {k: v for k, v in LIVE_DEFAULTS.items() if getattr(self, k) is None}
        return self.model_copy(update=unset) if unset else self

    @property
    def watches_losses(self) -> bool:
        return self.max_daily_loss is not None or self.max_total_loss is not None


def hedge_notional(order: OrderRequest, vx: Callable[[dt.date], float], etp: Callable[[str], float]) -> float | None:
    """Underlying value of the VIX-complex legs (VX futures, VIX options, ETP shares); SPX legs count 0.
    None when a needed price is missing: an order that cannot be valued is not sent."""
    total = 0.0
    for leg in order.legs:
        inst = leg.instrument
        qty = abs(leg.ratio) * order.quantity
        if isinstance(inst, OptionContract) and inst.root != "VIX":
            continue
        if isinstance(inst, (FutureContract, OptionContract)):
            px = vx(inst.expiry)
        elif isinstance(inst, Equity):
            px = etp(inst.symbol)
        else:
            return None
        if not math.isfinite(px):
            return None
        total += qty * px * inst.multiplier
    return total


class RiskGate:
    """The kill switch state and the pre-trade limits. `orders_today` counts the orders already accepted in a
    session: in replay the gate counts them itself; the daemon hands in its journal's count, which survives a
    restart."""

    def __init__(self, limits: RiskLimits | None = None,
                 orders_today: Callable[[dt.date], int] | None = None) -> None:
        self.limits = limits or RiskLimits()
        self.halted: str | None = None
        self._counted: dict[dt.date, int] = {}
        self._orders_today = orders_today or (lambda d: self._counted.get(d, 0))
        self._session: dt.date | None = None
        self._session_equity = math.nan

    # ---- the kill switch ---------------------------------------------------------------------------
    def halt(self, reason: str) -> bool:
        """Set the halted state; True if it was not set before."""
        first = self.halted is None
        if first:
            self.halted = reason or "halted"
        return first

    def resume(self) -> None:
        self.halted = None

    # ---- per order ---------------------------------------------------------------------------------
    def refusal(self, order: OrderRequest, *, today: dt.date, vx: Callable[[dt.date], float],
                etp: Callable[[str], float], held: Callable[[str], int]) -> str | None:
        """None when the order may go to the broker, else the one-line reason."""
        if self.halted is not None:
            return f"trading halted (kill switch): {self.halted}"
        r = self.limits
        derivs = [leg for leg in order.legs if not isinstance(leg.instrument, Equity)]
        if r.max_contracts_per_order is not None:
            contracts = max((abs(leg.ratio) for leg in derivs), default=0) * order.quantity
            if contracts > r.max_contracts_per_order:
                return f"{contracts} contracts per leg exceeds max_contracts_per_order {r.max_contracts_per_order}"
        if r.max_orders_per_day is not None and self._orders_today(today) >= r.max_orders_per_day:
            return f"max_orders_per_day {r.max_orders_per_day} reached"
        if r.max_hedge_notional is not None:
            notional = hedge_notional(order, vx, etp)
            if notional is None:
                return "cannot value the hedge notional (no price)"
            if notional > r.max_hedge_notional:
                return f"hedge notional {notional:,.0f} exceeds max_hedge_notional {r.max_hedge_notional:,.0f}"
        if r.max_position_contracts is not None:
            for leg in derivs:
                after = held(leg.instrument.key) + leg.ratio * order.quantity
                if abs(after) > r.max_position_contracts:
                    return (f"{leg.instrument.key}: position {after:+d} would exceed max_position_contracts "
                            f"{r.max_position_contracts}")
        return None

    def accepted(self, today: dt.date) -> None:
        self._counted[today] = self._counted.get(today, 0) + 1
        for d in [d for d in self._counted if d < today]:
            del self._counted[d]

    # ---- losses ------------------------------------------------------------------------------------
    def loss_breach(self, today: dt.date, equity: float, initial_equity: float) -> str | None:
        """The reason to halt when a loss limit is breached at this mark, else None. The first mark of a
        session sets that session's reference equity."""
        r = self.limits
        if self._session != today:
            self._session, self._session_equity = today, equity
        if r.max_daily_loss is not None and self._session_equity > 0:
            loss = 1.0 - equity / self._session_equity
            if loss > r.max_daily_loss:
                return (f"daily loss {loss:.1%} exceeds max_daily_loss {r.max_daily_loss:.1%} "
                        f"(equity {equity:,.0f} vs {self._session_equity:,.0f} at the session's first mark)")
        if r.max_total_loss is not None and initial_equity > 0:
            loss = 1.0 - equity / initial_equity
            if loss > r.max_total_loss:
                return (f"total loss {loss:.1%} exceeds max_total_loss {r.max_total_loss:.1%} "
                        f"(equity {equity:,.0f} vs {initial_equity:,.0f} at the start)")
        return None

