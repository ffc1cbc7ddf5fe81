"""Fill policies: what happens to an order when it is placed or re-evaluated (fill, rest or reject), and
how a combo's fill price is split over its legs."""

from __future__ import annotations

from dataclasses import dataclass

from .orders import LegRecord, OrderRecord
from .quotes import Quote


@dataclass
class FillDecision:
    action: str  # "fill" | "rest" | "reject"
    qty: float = 0.0
    price: float | None = None
    code: int = 201
    message: str = ""
    advanced_json: str = ""


class FillPolicy:
    """Decides what happens to an order when it is placed or re-evaluated.

    ``quote`` is the order instrument's quote (for a BAG: the combo quote built from the
    legs: bid = natural sell price, ask = natural buy price)."""

    def __call__(self, order: OrderRecord, quote: Quote | None) -> FillDecision:  # pragma: no cover
        raise NotImplementedError


def _limit_or_quote(order: OrderRecord, quote: Quote | None) -> float | None:
    if order.order_type.upper() in ("LMT", "REL", "STP LMT") and order.lmt_price is not None:
        return order.lmt_price
    if quote is None:
        return order.lmt_price
    if order.signed_side > 0:
        return quote.ask if quote.ask is not None else quote.mid
    return quote.bid if quote.bid is not None else quote.mid


class MarketableFill(FillPolicy):
    """Default: fill the whole remainder if the order is marketable, else rest.

    MKT fills at the natural side.  LMT: a BUY crossing the ask fills at the ask (a SELL
    crossing the bid at the bid); otherwise, when the reference is "mid", a limit at or
    through the mid fills at the limit.  ``combo_reference`` applies to BAGs,
    ``single_reference`` to single contracts ("natural" or "mid")."""

    def __init__(self, combo_reference: str = "mid", single_reference: str = "natural"):
        self.combo_reference = combo_reference
        self.single_reference = single_reference

    def __call__(self, order, quote):
        if quote is None:
            return FillDecision("rest")
        qty = order.remaining
        side = order.signed_side
        otype = order.order_type.upper()
        if otype == "MKT":
            px = (quote.ask if side > 0 else quote.bid)
            if px is None:
                px = quote.mid
            return FillDecision("fill", qty, px) if px is not None else FillDecision("rest")
        lmt = order.lmt_price
        if lmt is None:
            return FillDecision("rest")
        natural = quote.ask if side > 0 else quote.bid
        if natural is not None and (side > 0 and lmt >= natural - 1e-9 or side < 0 and lmt <= natural + 1e-9):
            if side < 0 and natural <= 0 and not order.is_bag:
                return FillDecision("rest")  # no bid
            return FillDecision("fill", qty, natural)
        ref = self.combo_reference if order.is_bag else self.single_reference
        mid = quote.mid
        if ref == "mid" and mid is not None and (side > 0 and lmt >= mid - 1e-9 or side < 0 and lmt <= mid + 1e-9):
            return FillDecision("fill", qty, lmt)
        return FillDecision("rest")


class FillAll(FillPolicy):
    """Fill the whole remainder at once, at ``price`` or the limit (or the quote for MKT)."""

    def __init__(self, price: float | None = None):
        self.price = price

    def __call__(self, order, quote):
        px = self.price if self.price is not None else _limit_or_quote(order, quote)
        if px is None:
            return FillDecision("rest")
        return FillDecision("fill", order.remaining, px)


class FillPartial(FillPolicy):
    """Fill ``qty`` immediately, then rest until ``FakeTWS.fill_rest(order_id)``."""

    def __init__(self, qty: float = 1, price: float | None = None):
        self.qty = qty
        self.price = price

    def __call__(self, order, quote):
        if order.policy_state.get("partial_done"):
            return FillDecision("rest")
        px = self.price if self.price is not None else _limit_or_quote(order, quote)
        if px is None:
            return FillDecision("rest")
        order.policy_state["partial_done"] = True
        return FillDecision("fill", min(self.qty, order.remaining), px)


class Reject(FillPolicy):
    """Reject the order: error ``code`` (201) with an empty advanced-reject json by default."""

    def __init__(self, code: int = 201, message: str = "Order rejected - reason:FakeTWS rejected the order",
                 advanced_json: str = ""):
        self.code = code
        self.message = message
        self.advanced_json = advanced_json

    def __call__(self, order, quote):
        return FillDecision("reject", code=self.code, message=self.message, advanced_json=self.advanced_json)


class NeverFill(FillPolicy):
    """Accept and rest forever (until cancelled or filled through the server API)."""

    def __call__(self, order, quote):
        return FillDecision("rest")


def allocate_leg_prices(legs: list[LegRecord], leg_mids: list[float], combo_price: float) -> list[float]:
    """Per-leg fill prices (>= 0.01, 2 decimals) whose signed, ratio-weighted sum equals
    ``combo_price`` exactly (to 1e-6)."""
    prices = [max(float(m if m is not None else 0.05), 0.01) for m in leg_mids]
    for _ in range(10):
        cur = sum(leg.sign * leg.ratio * p for leg, p in zip(legs, prices))
        resid = combo_price - cur
        if abs(resid) < 1e-9:
            break
        free = [i for i, (leg, p) in enumerate(zip(legs, prices)) if not (p <= 0.01 + 1e-12 and resid * leg.sign < 0)]
        if not free:
            break
        share = resid / sum(legs[i].ratio for i in free)
        for i in free:
            prices[i] = max(prices[i] + legs[i].sign * share, 0.01)
    prices = [round(p, 2) for p in prices]
    # put the rounding residue on the priciest leg
    cur = sum(leg.sign * leg.ratio * p for leg, p in zip(legs, prices))
    resid = combo_price - cur
    if abs(resid) > 1e-9:
        j = max(range(len(prices)), key=lambda i: prices[i])
        prices[j] = round(prices[j] + legs[j].sign * resid / legs[j].ratio, 6)
    return prices

