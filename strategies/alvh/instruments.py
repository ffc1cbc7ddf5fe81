"""What each hedge layer holds, and when it rolls.

A layer's exposure is a *basket*: instrument -> units held per one unit of exposure. The sizing code
(budget.py) decides how many units; the layer then holds round(units * ratio) of each instrument.

- ``vx``: the k-th monthly VX future (month 1 = front), rolled ``roll_days`` NYSE sessions before its
  expiry into the k-th contract that still has more than ``roll_days`` sessions left.
- ``cm``: a constant-maturity blend of real VX futures, weighted as the S&P VIX futures indices are
  (engine.vixfutures): ``short`` = months 1-2 (~1 month, like VXX/VIXY), ``mid`` = months 4-7 (~5 months,
  like VIXM). Held as whole VX contracts: with N contracts of exposure, contract e gets round(N * w_e),
  so at small budgets the blend is only approximated (docs/alvh.md has the rounding error).
- ``etp``: VIX ETP shares (VIXY, VXX, VIXM, ...) at their real closes. The files are split-adjusted: before
  the last reverse split the "price" of one share can be $100,000+, so when a target is under
  ``min_shares`` shares (or the ETP has no price yet) the layer holds the blend the ETP tracks instead
  (``fallback``; VIXM -> cm mid, others -> cm short).
- ``vix_call``: one VIX call on the monthly expiry nearest ``target_dte`` (within [min_entry_dte,
  max_entry_dte]), strike by Black-76 delta or % out of the money of its VX future; rolled when its DTE
  falls to ``roll_dte``.
- ``vix_calendar``: long a VIX call near ``far_dte``, short the same strike near ``near_dte``; the strike is
  picked on the far leg; both legs roll when the near leg reaches ``roll_dte``.
VIX options are priced on the VX future of their own expiry (engine.marketmodel), so only expiries with a
VX price in the snapshot are eligible.
"""
from __future__ import annotations

import bisect
import datetime as dt
import math
from functools import lru_cache
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from engine.calendar import trading_days, vix_expiry
from engine.instruments import Equity, FutureContract, Instrument, OptionContract, vix_option
from engine.instruments import vx_future as _new_vx_future
from engine.marketmodel import MarketModel, snapshot_memo
from engine.params import Params
from engine.strikes import vix_strike_grid
from engine.vixfutures import RollSchedule

Basket = dict[Instrument, float]

# Instruments are immutable values: the blends ask for the same few VX contracts every day.
vx_future = lru_cache(maxsize=1024)(_new_vx_future)

# ---------------------------------------------------------------------------------------------------
# parameters (one model per instrument type; `type` picks it)
# ---------------------------------------------------------------------------------------------------


class VxParams(Params):
    type: Literal["vx"] = "vx"
    month: int = Field(1, ge=1, le=8, description="1 = front monthly VX future")
    roll_days: int = Field(5, ge=0, le=20, description="roll this many NYSE sessions before expiry")


class CmParams(Params):
    type: Literal["cm"] = "cm"
    term: Literal["short", "mid"] = Field("short", description="short = months 1-2 (~1M), mid = months 4-7 (~5M)")


class EtpParams(Params):
    type: Literal["etp"] = "etp"
    symbol: Literal["VIXY", "VXX", "VXX_A", "VIXM", "UVXY"] = "VIXY"
    fallback: Literal["cm_short", "cm_mid", "none"] | None = Field(
        None, description="what to hold when the ETP has no usable price (default: the blend it tracks)")
    min_shares: int = Field(20, ge=1, description="below this many shares the adjusted price is too coarse")

    @property
    def fallback_term(self) -> str | None:
        fb = self.fallback or ("cm_mid" if self.symbol == "VIXM" else "cm_short")
        return None if fb == "none" else fb.split("_", 1)[1]


class VixCallParams(Params):
    type: Literal["vix_call"] = "vix_call"
    target_dte: int = Field(38, ge=7, le=400)
    min_entry_dte: int = Field(20, ge=1)
    max_entry_dte: int = Field(250, ge=1)
    roll_dte: int = Field(14, ge=0, description="sell and re-buy when DTE falls to this (0 = hold to settlement)")
    select: Literal["delta", "otm"] = "delta"
    delta: float = Field(0.30, gt=0, lt=1)
    otm_pct: float = Field(0.20, ge=-0.5, le=3.0, description="strike = VX future * (1 + otm_pct)")

    @model_validator(mode="after")
    def _window(self):
        if not self.min_entry_dte <= self.target_dte <= self.max_entry_dte:
            raise ValueError("vix_call: need min_entry_dte <= target_dte <= max_entry_dte")
        if self.roll_dte >= self.min_entry_dte:
            raise ValueError("vix_call: roll_dte must be below min_entry_dte")
        return self


class VixCalendarParams(Params):
    type: Literal["vix_calendar"] = "vix_calendar"
    near_dte: int = Field(30, ge=7, le=120)
    far_dte: int = Field(120, ge=30, le=400)
    roll_dte: int = Field(7, ge=0, description="roll both legs when the near leg's DTE falls to this")
    select: Literal["delta", "otm"] = "delta"
    delta: float = Field(0.30, gt=0, lt=1)
    otm_pct: float = Field(0.20, ge=-0.5, le=3.0)

    @model_validator(mode="after")
    def _order(self):
        if self.far_dte <= self.near_dte + 20:
            raise ValueError("vix_calendar: far_dte must exceed near_dte by more than 20 days")
        if self.roll_dte >= self.near_dte:
            raise ValueError("vix_calendar: roll_dte must be below near_dte")
        return self


InstrumentParams = Annotated[VxParams | CmParams | EtpParams | VixCallParams | VixCalendarParams,
                             Field(discriminator="type")]

# ---------------------------------------------------------------------------------------------------
# calendar helpers
# ---------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _sessions() -> list[int]:
    return [d.toordinal() for d in trading_days("2000-01-01", "2030-12-31").date]


def sessions_left(today: dt.date, expiry: dt.date) -> int:
    """NYSE sessions d with today < d <= expiry (the expiry day itself counts; VX settle at its open)."""
    s = _sessions()
    return bisect.bisect_right(s, expiry.toordinal()) - bisect.bisect_right(s, today.toordinal())


@lru_cache(maxsize=4096)
def is_monthly_vix_expiry(e: dt.date) -> bool:
    try:
        return vix_expiry(e.year, e.month).date() == e
    except ValueError:
        return False


def live_monthly(market: MarketModel) -> list[tuple[dt.date, float]]:
    """Monthly VX contracts with a finite price that expire after today, nearest first."""
    today = market.date
    return sorted((e, p) for e, p in market.quotes.vx.items()
                  if e > today and math.isfinite(p) and p > 0 and is_monthly_vix_expiry(e))


# Constant-maturity weights depend only on the date, the blend and the monthly expiries seen so far, which every
# run of a sweep or verdict over the same history shares: kept per process (bounded), keyed by an id per set.
_EXPIRY_SETS: dict[tuple[dt.date, ...], int] = {}
_SCHEDULES: dict[int, RollSchedule] = {}
_WEIGHTS: dict[tuple[int, dt.date, str], dict[dt.date, float]] = {}
_MAX_WEIGHTS = 200_000


class ExpiryBook:
    """Every monthly VX expiry seen so far (past ones are needed as the start of a roll period)."""

    def __init__(self) -> None:
        self.seen: set[dt.date] = set()
        self._set_id: int | None = None

    def observe(self, market: MarketModel) -> None:
        memo = snapshot_memo(market, "monthly_vx")
        monthly = memo.get(None)
        if monthly is None:
            monthly = memo[None] = tuple(e for e in market.quotes.vx if is_monthly_vix_expiry(e))
        if not self.seen.issuperset(monthly):   # a tuple, not a set, in every snapshot's memo: a tenth of the memory
            self.seen.update(monthly)
            self._set_id = None

    def weights(self, date: dt.date, term: str) -> dict[dt.date, float]:
        sid = self._set_id
        if sid is None:
            key = tuple(sorted(self.seen))
            sid = _EXPIRY_SETS.get(key)
            if sid is None:
                if len(_EXPIRY_SETS) > 4096:
                    _EXPIRY_SETS.clear()
                    _SCHEDULES.clear()
                    _WEIGHTS.clear()
                sid = _EXPIRY_SETS[key] = len(_EXPIRY_SETS)
            self._set_id = sid
        wkey = (sid, date, term)
        w = _WEIGHTS.get(wkey)
        if w is None:
            sched = _SCHEDULES.get(sid)
            if sched is None:
                if len(_SCHEDULES) > 8:
                    _SCHEDULES.clear()
                sched = _SCHEDULES[sid] = RollSchedule(sorted(self.seen))
            if len(_WEIGHTS) > _MAX_WEIGHTS:
                _WEIGHTS.clear()
            w = _WEIGHTS[wkey] = sched.weights(date, "short" if term == "short" else "mid")
        return dict(w)


# ---------------------------------------------------------------------------------------------------
# handlers
# ---------------------------------------------------------------------------------------------------


class Holding:
    """What one layer instrument handler needs to know: the basket now held, and when it was chosen."""

    __slots__ = ("basket", "fallback", "label")

    def __init__(self, basket: Basket, label: str, fallback: bool = False) -> None:
        self.basket = basket
        self.label = label
        self.fallback = fallback


def _option_dte(o: OptionContract, today: dt.date) -> int:
    return (o.expiry - today).days


def _pick_expiry(live: list[tuple[dt.date, float]], today: dt.date, target: int, lo: int, hi: int):
    best = None
    for e, f in live:
        dte = (e - today).days
        if lo <= dte <= hi:
            score = abs(dte - target)
            if best is None or score < best[0]:
                best = (score, e, f)
    return None if best is None else (best[1], best[2])


def _pick_strike(market: MarketModel, expiry: dt.date, F: float, select: str, delta: float, otm: float) -> float:
    memo = snapshot_memo(market, "vix_strikes")   # a function of the snapshot: shared by the runs of a sweep
    key = (expiry, F, select, delta, otm)
    K = memo.get(key)
    if K is None:
        K = memo[key] = _strike_on_grid(market, expiry, F, select, delta, otm)
    return K


def _strike_on_grid(market: MarketModel, expiry: dt.date, F: float, select: str, delta: float, otm: float) -> float:
    grid = vix_strike_grid(F)
    if select == "otm":
        return float(grid[int(np.argmin(np.abs(grid - F * (1.0 + otm))))])
    surf = market.vix_surface(expiry)
    probe = vix_option(expiry, F, "C")
    T = market.years_to(probe)
    d = np.asarray(surf.delta(grid, np.full(len(grid), T), np.ones(len(grid), dtype=bool)))
    return float(grid[int(np.argmin(np.abs(d - delta)))])


class LayerInstrument:
    """Base: choose a basket (`select`) and say when the held one must be replaced (`roll_due`)."""

    dynamic = False  # True: the basket is re-chosen at every decision (constant-maturity blends)

    def __init__(self, params, expiries: ExpiryBook) -> None:
        self.p = params
        self.expiries = expiries

    def select(self, market: MarketModel) -> Holding | None:
        raise NotImplementedError

    def roll_due(self, held: Holding, market: MarketModel) -> bool:
        return False


class VxHandler(LayerInstrument):
    def select(self, market: MarketModel) -> Holding | None:
        p = self.p
        today = market.date
        live = [(e, f) for e, f in live_monthly(market) if sessions_left(today, e) > p.roll_days]
        if len(live) < p.month:
            return None
        e = live[p.month - 1][0]
        return Holding({vx_future(e): 1.0}, f"VX {e:%Y-%m}")

    def roll_due(self, held: Holding, market: MarketModel) -> bool:
        today = market.date
        for inst in held.basket:
            if isinstance(inst, FutureContract) and sessions_left(today, inst.expiry) <= self.p.roll_days:
                return True
        return False


class CmHandler(LayerInstrument):
    dynamic = True

    def __init__(self, params, expiries: ExpiryBook, term: str | None = None) -> None:
        super().__init__(params, expiries)
        self.term = term or params.term

    def select(self, market: MarketModel) -> Holding | None:
        w = self.expiries.weights(market.date, self.term)
        if not w:
            return None
        prices = market.quotes.vx
        if not all(math.isfinite(prices.get(e, math.nan)) for e in w):
            return None
        return Holding({vx_future(e): float(x) for e, x in w.items()}, f"VX cm-{self.term}")


class EtpHandler(LayerInstrument):
    def __init__(self, params: EtpParams, expiries: ExpiryBook) -> None:
        super().__init__(params, expiries)
        term = params.fallback_term
        self.fallback = CmHandler(CmParams(term=term), expiries, term) if term else None
        self.inst = Equity(params.symbol)

    def priced(self, market: MarketModel) -> bool:
        px = market.etp(self.p.symbol)
        return math.isfinite(px) and px > 0

    def select(self, market: MarketModel) -> Holding | None:
        if self.priced(market):
            return Holding({self.inst: 1.0}, self.p.symbol)
        return self.fallback_holding(market)

    def fallback_holding(self, market: MarketModel) -> Holding | None:
        if self.fallback is None:
            return None
        h = self.fallback.select(market)
        if h is not None:
            h.fallback = True
            h.label = f"{self.p.symbol}->{h.label}"
        return h

    def roll_due(self, held: Holding, market: MarketModel) -> bool:
        # holding the fallback: switch to the ETP as soon as it is priced; holding the ETP: leave if it is not
        return held.fallback or not self.priced(market)

    @property
    def dynamic(self) -> bool:  # the fallback blend is re-weighted daily
        return True


class VixCallHandler(LayerInstrument):
    def select(self, market: MarketModel) -> Holding | None:
        p = self.p
        pick = _pick_expiry(live_monthly(market), market.date, p.target_dte, p.min_entry_dte, p.max_entry_dte)
        if pick is None:
            return None
        e, F = pick
        K = _pick_strike(market, e, F, p.select, p.delta, p.otm_pct)
        return Holding({vix_option(e, K, "C"): 1.0}, f"VIX {e:%Y-%m} {K:g}C")

    def roll_due(self, held: Holding, market: MarketModel) -> bool:
        today = market.date
        return any(isinstance(i, OptionContract) and _option_dte(i, today) <= self.p.roll_dte for i in held.basket)


class VixCalendarHandler(LayerInstrument):
    def select(self, market: MarketModel) -> Holding | None:
        p = self.p
        live = live_monthly(market)
        today = market.date
        far = _pick_expiry(live, today, p.far_dte, p.near_dte + 21, 400)
        near = _pick_expiry(live, today, p.near_dte, p.roll_dte + 1, p.near_dte + 20)
        if far is None or near is None or near[0] >= far[0]:
            return None
        K = _pick_strike(market, far[0], far[1], p.select, p.delta, p.otm_pct)
        basket = {vix_option(far[0], K, "C"): 1.0, vix_option(near[0], K, "C"): -1.0}
        return Holding(basket, f"VIX {near[0]:%Y-%m}/{far[0]:%Y-%m} {K:g}C cal")

    def roll_due(self, held: Holding, market: MarketModel) -> bool:
        today = market.date
        near = min(i.expiry for i in held.basket if isinstance(i, OptionContract))
        return (near - today).days <= self.p.roll_dte


def make_handler(params, expiries: ExpiryBook) -> LayerInstrument:
    return {
        "vx": VxHandler, "cm": CmHandler, "etp": EtpHandler, "vix_call": VixCallHandler,
        "vix_calendar": VixCalendarHandler,
    }[params.type](params, expiries)


def basket_quantities(basket: Basket, units: float) -> dict[Instrument, int]:
    """Whole contracts/shares for `units` of exposure.

    Single instruments and spreads: round(units * ratio). Blends (several instruments, all long): the
    total is round(units) contracts, split by largest remainder (floor each share, then hand the
    leftover contracts to the largest fractional parts), so a small blend keeps its size and only its
    maturity mix is approximate."""
    if len(basket) < 2 or any(r <= 0 for r in basket.values()):
        return {inst: round(units * r) for inst, r in basket.items()}
    exact = [(inst, units * r) for inst, r in basket.items()]
    total = round(units * sum(basket.values()))
    out = {inst: math.floor(x) for inst, x in exact}
    left = total - sum(out.values())
    for inst, x in sorted(exact, key=lambda kv: kv[1] - math.floor(kv[1]), reverse=True)[:max(left, 0)]:
        out[inst] += 1
    return out


def rounding_error(basket: Basket, units: float, quantities: dict[Instrument, int] | None = None) -> float:
    """Share of the exposure not held where the exact blend holds it:
    sum |q - u w| / (2 u sum |w|) with q the whole-contract holding (0 = exact, 1 = nothing right).
    `quantities`: basket_quantities(basket, units) when the caller has it already."""
    if units <= 0:
        return 0.0
    q = basket_quantities(basket, units) if quantities is None else quantities
    miss = sum(abs(q[i] - units * r) for i, r in basket.items())
    return miss / (2.0 * units * sum(abs(r) for r in basket.values()))
