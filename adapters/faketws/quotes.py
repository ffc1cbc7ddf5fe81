"""Quotes: the ``Quote`` a provider returns, the default provider (Black-Scholes at a flat vol around
SPX/VIX levels), a combo's quote built from its legs, and the guard the server asks through."""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from .clock import ET, UTC
from .contracts import DEFAULT_ETPS, ContractSpec
from .expiries import parse_yyyymmdd
from .orders import LegRecord
from .pricing import Greeks, black76, bs_price
from .ticks import option_tick, round_to_tick

log = logging.getLogger("alvh.faketws")


@dataclass
class Quote:
    bid: float | None = None
    ask: float | None = None
    last: float | None = None
    iv: float | None = None
    delta: float | None = None
    gamma: float | None = None
    vega: float | None = None
    theta: float | None = None
    und_price: float | None = None
    close: float | None = None
    bid_size: float = 10.0
    ask_size: float = 10.0
    last_size: float = 1.0
    volume: float | None = None
    opt_price: float | None = None  # model price (defaults to mid)

    @property
    def mid(self) -> float | None:
        if self.bid is not None and self.ask is not None and self.ask > 0:
            return (self.bid + self.ask) / 2.0
        return self.last


QuoteProvider = Callable[[dict], "Quote | None"]


class DefaultQuoteProvider:
    """Prices everything off a few levels; options by Black-Scholes at a flat vol.

    * SPX index = ``spx``; VIX index = ``vix``
    * VX future expiring at T (years): ``vx_long_run + (vix - vx_long_run) * exp(-vx_speed*T)``
    * SPX/SPXW options: BS on SPX, vol ``vol``, rate ``rate``, dividend yield ``div_yield``
    * VIX options: Black-76 on the VX future of the same expiry, vol ``vix_vol``
    * ETPs: fixed prices (``etp_prices``)
    Quotes straddle the model price by ``max(tick, spread_frac*mid)`` rounded to the tick.
    """

    def __init__(
        self,
        spx: float = 5000.0,
        vix: float = 15.0,
        vol: float = 0.15,
        vix_vol: float = 0.85,
        rate: float = 0.045,
        div_yield: float = 0.013,
        vx_long_run: float = 19.0,
        vx_speed: float = 3.0,
        etp_prices: dict[str, float] | None = None,
        spread_frac: float = 0.02,
        clock: Callable[[], dt.datetime] | None = None,
    ):
        self.spx = float(spx)
        self.vix = float(vix)
        self.vol = float(vol)
        self.vix_vol = float(vix_vol)
        self.rate = float(rate)
        self.div_yield = float(div_yield)
        self.vx_long_run = float(vx_long_run)
        self.vx_speed = float(vx_speed)
        self.etp_prices = {k: v[2] for k, v in DEFAULT_ETPS.items()}
        if etp_prices:
            self.etp_prices.update(etp_prices)
        self.spread_frac = spread_frac
        self.clock = clock or (lambda: dt.datetime.now(UTC))
        self.overrides: dict[int, Quote | None] = {}

    def set_levels(self, spx=None, vix=None, vol=None, vix_vol=None, **etps) -> None:
        if spx is not None:
            self.spx = float(spx)
        if vix is not None:
            self.vix = float(vix)
        if vol is not None:
            self.vol = float(vol)
        if vix_vol is not None:
            self.vix_vol = float(vix_vol)
        for k, v in etps.items():
            self.etp_prices[k.upper()] = float(v)

    def years_to(self, expiry: dt.date, hhmm: str = "16:00") -> float:
        h, m = (int(x) for x in hhmm.split(":"))
        exp_dt = dt.datetime(expiry.year, expiry.month, expiry.day, h, m, tzinfo=ET)
        return max((exp_dt - self.clock().astimezone(UTC)).total_seconds(), 0.0) / (365.0 * 86400.0)

    def vx_price(self, expiry: dt.date) -> float:
        T = self.years_to(expiry, "09:30")
        px = self.vx_long_run + (self.vix - self.vx_long_run) * math.exp(-self.vx_speed * T)
        return round_to_tick(px, 0.05)

    def __call__(self, f: dict) -> Quote | None:
        con_id = int(f.get("conId") or 0)
        if con_id in self.overrides:
            return self.overrides[con_id]
        sec = f.get("secType", "")
        sym = f.get("symbol", "")
        if sec == "IND":
            lvl = self.spx if sym == "SPX" else self.vix if sym == "VIX" else None
            if lvl is None:
                return None
            return Quote(last=round(lvl, 2), close=round(lvl, 2), bid_size=0, ask_size=0, last_size=0)
        if sec == "STK":
            px = self.etp_prices.get(sym)
            if px is None:
                return None
            return Quote(bid=round(px - 0.01, 2), ask=round(px + 0.01, 2), last=px, close=px,
                         bid_size=500, ask_size=500, last_size=100, volume=1_000_000)
        expiry = parse_yyyymmdd(f.get("lastTradeDateOrContractMonth", ""))
        if expiry is None:
            return None
        if sec == "FUT":
            px = self.vx_price(expiry)
            return Quote(bid=round(px - 0.05, 2), ask=round(px + 0.05, 2), last=px, close=px,
                         bid_size=50, ask_size=50, last_size=1, volume=25_000)
        if sec != "OPT":
            return None
        K = float(f.get("strike") or 0.0)
        right = (f.get("right") or "C")[:1]
        if sym == "SPX":
            settle = "09:30" if f.get("tradingClass") == "SPX" else "16:00"
            S, sigma = self.spx, self.vol
            g = bs_price(S, K, self.years_to(expiry, settle), self.rate, self.div_yield, sigma, right)
        elif sym == "VIX":
            S, sigma = self.vx_price(expiry), self.vix_vol
            g = black76(S, K, self.years_to(expiry, "09:30"), self.rate, sigma, right)
        else:
            return None
        return self.option_quote(g, S, sigma)

    def option_quote(self, g: Greeks, S: float, sigma: float) -> Quote:
        mid = g.price
        tick = option_tick(mid)
        hs = max(tick, self.spread_frac * mid)
        if mid < tick / 2:
            bid, ask = 0.0, tick
        else:
            bid = max(round_to_tick(mid - hs, tick, "down"), 0.0)
            ask = round_to_tick(mid + hs, option_tick(mid + hs), "up")
            if ask <= bid:
                ask = round(bid + tick, 10)
        last = round_to_tick(mid, tick) if mid >= tick / 2 else None
        return Quote(
            bid=bid, ask=ask, last=last, close=last, iv=sigma, delta=g.delta, gamma=g.gamma,
            vega=g.vega, theta=g.theta, und_price=S, opt_price=mid,
            bid_size=10.0 if bid > 0 else 0.0, ask_size=10.0, last_size=1.0, volume=100,
        )



def combo_quote(legs: list[LegRecord], leg_quotes: list[Quote | None]) -> Quote | None:
    """Quote for buying one unit of the combo: ask = pay asks of BUY legs, hit bids of SELL legs."""
    bid = ask = mid = 0.0
    for leg, q in zip(legs, leg_quotes):
        if q is None or q.mid is None:
            return None
        lb = q.bid if q.bid is not None else q.mid
        la = q.ask if q.ask is not None else q.mid
        if leg.sign > 0:
            bid += leg.ratio * lb
            ask += leg.ratio * la
        else:
            bid -= leg.ratio * la
            ask -= leg.ratio * lb
        mid += leg.sign * leg.ratio * q.mid
    return Quote(bid=round(bid, 10), ask=round(ask, 10), last=round(mid, 10), bid_size=10, ask_size=10,
                 last_size=0, opt_price=mid)


class SpecQuotes:
    """The server's way to a contract's quote: asks the provider with the contract's fields. A provider
    that raises is logged and means "no quote", so one bad provider call cannot kill a handler."""

    def __init__(self, provider: Callable[[dict], Quote | None]):
        self.provider = provider

    def __call__(self, spec: ContractSpec) -> Quote | None:
        try:
            return self.provider(spec.fields())
        except Exception:
            log.exception("FakeTWS: quote provider failed for %s", spec.local_symbol)
            return None
