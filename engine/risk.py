"""Margin and the pre-trade buying-power check.

Options: for each (underlying, expiry) group the requirement is the worst expiry payoff over the
group's strikes and a stress band around spot (exact for defined-risk spreads such as condors:
width x 100 x qty; approximately Reg-T for an uncovered leg). Futures: a fraction of notional.
Long options and ETP shares are paid in full from cash (no margin loan).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

import numpy as np
from pydantic import Field, StrictBool

from engine.instruments import Equity, FutureContract, Instrument, OptionContract
from engine.params import Params


class MarginParams(Params):
    spx_stress_move: float = Field(0.20, gt=0, description="band around SPX spot for uncovered legs")
    vix_stress_up: float = Field(1.5, gt=0, description="VIX futures/options can rise 150% in a spike")
    vx_margin_fraction: float = Field(0.5, gt=0, le=1, description="VX initial margin as a fraction of notional")
    allow_margin_loan: StrictBool = Field(False, description="allow debit orders that take cash below zero")


def option_group_requirement(legs: list[tuple[OptionContract, int]], underlying: float, down: float,
                             up: float) -> float:
    """Worst loss at expiry of a set of options on one underlying and expiry (premium excluded)."""
    strikes = np.array([opt.strike for opt, _ in legs])
    qty = np.array([q * opt.multiplier for opt, q in legs], dtype=float)
    is_call = np.array([opt.right == "C" for opt, _ in legs])
    lo = max(underlying * (1.0 - down), 0.0)
    hi = underlying * (1.0 + up)
    points = np.concatenate([strikes, [lo, hi]])
    x = points[:, None]
    intrinsic = np.where(is_call, np.maximum(x - strikes, 0.0), np.maximum(strikes - x, 0.0))
    payoff = intrinsic @ qty
    return float(max(0.0, -payoff.min()))


def margin_requirement(holdings: Iterable[tuple[Instrument, int]], spx: float,
                       vx_price: Callable[[object], float], params: MarginParams) -> float:
    groups: dict[tuple, list[tuple[OptionContract, int]]] = defaultdict(list)
    total = 0.0
    for inst, qty in holdings:
        if qty == 0:
            continue
        if isinstance(inst, OptionContract):
            groups[(inst.underlying, inst.expiry)].append((inst, qty))
        elif isinstance(inst, FutureContract):
            px = vx_price(inst.expiry)
            if np.isfinite(px):
                total += abs(qty) * px * inst.multiplier * params.vx_margin_fraction
        elif isinstance(inst, Equity):
            pass  # paid in full
    for (underlying, expiry), legs in groups.items():
        if underlying == "SPX":
            total += option_group_requirement(legs, spx, params.spx_stress_move, params.spx_stress_move)
        else:
            und = vx_price(expiry)
            if not np.isfinite(und):
                und = max(opt.strike for opt, _ in legs)
            total += option_group_requirement(legs, und, 0.9, params.vix_stress_up)
    return total


def check_buying_power(*, equity: float, cash: float, holdings_after: list[tuple[Instrument, int]],
                       order_cash: float, cost_vs_mid: float, spx: float,
                       vx_price: Callable[[object], float], params: MarginParams) -> str | None:
    """Return None when the account can carry the post-trade book, else a one-line reason.

    order_cash: cash the fill moves (negative for a debit), commissions included.
    cost_vs_mid: what the fill costs against model mid (spread, slippage, commissions), >= 0.
    """
    equity_after = equity - cost_vs_mid
    requirement = margin_requirement(holdings_after, spx, vx_price, params)
    if requirement > equity_after:
        return f"insufficient buying power: margin {requirement:,.0f} > equity {equity_after:,.0f}"
    if not params.allow_margin_loan and order_cash < 0 and cash + order_cash < 0:
        return f"insufficient cash: debit {-order_cash:,.0f} > cash {cash:,.0f}"
    return None
