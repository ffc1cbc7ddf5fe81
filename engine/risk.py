"""Margin and the pre-trade buying-power check.

Options: for each (underlying, expiry) group the requirement is the worst expiry payoff over the
group's strikes and a stress band around spot (exact for defined-risk spreads such as condors:
width x 100 x qty; approximately Reg-T for an uncovered leg). Futures: a fraction of notional.
Long options and ETP shares are paid in full from cash (no margin loan).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from pydantic import Field, StrictBool

from engine.instruments import FutureContract, OptionContract
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


def _group_requirement(legs: list[tuple[OptionContract, int]], underlying: float, down: float, up: float,
                       memo: dict | None) -> float:
    """option_group_requirement, remembered in `memo` (a snapshot's memo: the same book is checked by several
    orders of a snapshot and, in a sweep, by many runs)."""
    if memo is None:
        return option_group_requirement(legs, underlying, down, up)
    key = (underlying, down, up, tuple([(o.strike, o.right, o.multiplier, q) for o, q in legs]))
    hit = memo.get(key)
    if hit is None:
        hit = memo[key] = option_group_requirement(legs, underlying, down, up)
    return hit


def margin_requirement(holdings: Iterable[Sequence], spx: float,
                       vx_price: Callable[[object], float], params: MarginParams, memo: dict | None = None) -> float:
    """`holdings`: (instrument, quantity) pairs. `memo`: optional dict remembering each option group's
    requirement (see _group_requirement)."""
    # checked before every order: exact types first (the instruments are these final classes), isinstance after
    groups: dict[tuple, list[tuple[OptionContract, int]]] = {}
    total = 0.0
    for inst, qty in holdings:
        if qty == 0:
            continue
        t = type(inst)
        if t is OptionContract or (t is not FutureContract and isinstance(inst, OptionContract)):
            g = ("VIX" if inst.root == "VIX" else "SPX", inst.expiry)
            legs = groups.get(g)
            if legs is None:
                groups[g] = [(inst, qty)]
            else:
                legs.append((inst, qty))
        elif t is FutureContract or isinstance(inst, FutureContract):
            px = vx_price(inst.expiry)
            if math.isfinite(px):
                total += abs(qty) * px * inst.multiplier * params.vx_margin_fraction
        # an Equity is paid in full: no requirement
    for (underlying, expiry), legs in groups.items():
        if underlying == "SPX":
            total += _group_requirement(legs, spx, params.spx_stress_move, params.spx_stress_move, memo)
        else:
            und = vx_price(expiry)
            if not math.isfinite(und):
                und = max(opt.strike for opt, _ in legs)
            total += _group_requirement(legs, und, 0.9, params.vix_stress_up, memo)
    return total


def check_buying_power(*, equity: float, cash: float, holdings_after: Iterable[Sequence],
                       order_cash: float, cost_vs_mid: float, spx: float,
                       vx_price: Callable[[object], float], params: MarginParams,
                       memo: dict | None = None) -> str | None:
    """Return None when the account can carry the post-trade book, else a one-line reason.

    order_cash: cash the fill moves (negative for a debit), commissions included.
    cost_vs_mid: what the fill costs against model mid (spread, slippage, commissions), >= 0.
    """
    equity_after = equity - cost_vs_mid
    requirement = margin_requirement(holdings_after, spx, vx_price, params, memo)
    if requirement > equity_after:
        return f"insufficient buying power: margin {requirement:,.0f} > equity {equity_after:,.0f}"
    if not params.allow_margin_loan and order_cash < 0 and cash + order_cash < 0:
        return f"insufficient cash: debit {-order_cash:,.0f} > cash {cash:,.0f}"
    return None
