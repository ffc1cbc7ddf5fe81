"""The three readings of "4/4/2", and the sensitivities they need.

``reading`` in [hedge.budget] picks one; every layer i gets weight_i of the total:

(a) ``vega``: a vega-offset budget. At full activation the hedge's expected P&L for a +1 point move in
    spot VIX offsets ``vega_offset`` of the condor book's loss for a +1 point rise in SPX implied vol:
        target_i = weight_i * vega_offset * condor_vol_beta * |condor vega in $ per vol point|
    measured in $ of hedge P&L per VIX point. The condor's vega is taken from the open condors' legs
    on the model surface at the decision snapshot. Each instrument's $ per VIX point comes from a
    trailing regression (below).
(b) ``equity``: weight_i * ``equity_pct`` of account equity (0.10 -> 4%/4%/2%), as ``notional``
    (futures: price x 1000; ETPs: price x shares; options: the VX future x 100 for long legs) or as
    ``premium`` (options: price x 100; futures and ETPs have no premium and use notional).
(c) ``contracts``: weight_i * ``contracts`` per ``risk_unit`` dollars of open condor max loss
    (10 per $100k -> 4/4/2 contracts; an ETP "contract" is ``shares_per_contract`` shares).

Trailing sensitivities (reading a): the beta of an instrument's daily close-to-close price change on
the daily change in spot VIX over the last ``beta_window`` (60) days, estimated only from closes
already seen. A VX future's beta (VX points per VIX point) is estimated on its own settlement
history; a VIX call's sensitivity is its Black-76 delta times the beta of the VX future it is written
on; an ETP's beta is relative (fraction of its price per VIX point, on its own closes), times its price.
With fewer than ``beta_min_obs`` (20) paired changes the beta is the prior (VX ``beta_prior`` = 0.5;
ETP 0.03); betas are clipped (VX to [beta_min, beta_max]; ETP to [0.002, 0.2]) so one noisy window
cannot blow up a position.
"""
from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

from pydantic import Field

from engine.instruments import Equity, FutureContract, Instrument, OptionContract
from engine.marketmodel import MarketModel, snapshot_memo
from engine.params import Params
from engine.risk import option_group_requirement

Reading = Literal["vega", "equity", "contracts"]
# ETP betas are relative (fraction of the share price per VIX point): a 1-month VIX ETP moves ~3-5% per
# VIX point at VIX 20. Prior and clip range for them (VX betas use the configurable ones).
ETP_PRIOR, ETP_MIN, ETP_MAX = 0.03, 0.002, 0.2


class BudgetParams(Params):
    reading: Reading = "vega"
    vega_offset: float = Field(0.5, gt=0, le=5, description="(a) fraction of the condor's vol-point loss to offset")
    condor_vol_beta: float = Field(1.0, gt=0, le=3, description="(a) SPX implied-vol points per VIX point")
    equity_pct: float = Field(0.10, gt=0, le=1, description="(b) total across layers, fraction of equity")
    equity_measure: Literal["notional", "premium"] = "notional"
    contracts: float = Field(10.0, gt=0, description="(c) total contracts per risk_unit of condor max loss")
    risk_unit: float = Field(100_000.0, gt=0, description="(c) dollars of condor max loss per unit")
    shares_per_contract: int = Field(100, ge=1)
    beta_window: int = Field(60, ge=10, le=500)
    beta_min_obs: int = Field(20, ge=5)
    beta_prior: float = Field(0.5, gt=0)
    beta_min: float = Field(0.05, gt=0)
    beta_max: float = Field(1.5, gt=0)


# ---------------------------------------------------------------------------------------------------
# trailing betas
# ---------------------------------------------------------------------------------------------------
def series_key(inst: Instrument):
    if isinstance(inst, FutureContract):
        return ("VX", inst.expiry)
    if isinstance(inst, OptionContract):
        return ("VX", inst.expiry)      # an option's sensitivity runs through its own VX future
    if isinstance(inst, Equity):
        return ("ETP", inst.symbol)
    raise TypeError(inst)


class _Window:
    """Running sums of the last n paired daily changes (dv = VIX change, dp = price change)."""

    __slots__ = ("n", "pairs", "sp", "sv", "svp", "svv")

    def __init__(self, n: int) -> None:
        self.pairs: deque[tuple[float, float]] = deque()
        self.n = n
        self.sv = self.sp = self.svv = self.svp = 0.0

    def add(self, dv: float, dp: float) -> None:
        if len(self.pairs) == self.n:
            ov, op = self.pairs.popleft()
            self.sv -= ov
            self.sp -= op
            self.svv -= ov * ov
            self.svp -= ov * op
        self.pairs.append((dv, dp))
        self.sv += dv
        self.sp += dp
        self.svv += dv * dv
        self.svp += dv * dp

    def slope(self) -> float:
        k = len(self.pairs)
        var = self.svv - self.sv * self.sv / k
        if var <= 1e-12:
            return math.nan
        return (self.svp - self.sv * self.sp / k) / var


class TrailingBetas:
    """Close-to-close betas on spot VIX from the closes recorded so far (never anything later).

    Only changes between consecutive closes (one session apart) are paired; a missing price breaks the
    chain for that instrument. Running sums over the last ``beta_window`` pairs keep this O(1) a day."""

    def __init__(self, p: BudgetParams) -> None:
        self.p = p
        self.day = -1
        self.prev_vix: tuple[int, float] | None = None
        self.prev: dict[tuple, tuple[int, float]] = {}
        self.win: dict[tuple, _Window] = {}
        self._cache: dict[tuple, float] = {}
        self._tape: _BetaTape | None = None   # set by record_close: the windows live there

    def record_close(self, snap, etps: tuple[str, ...]) -> None:
        """record() of a close snapshot: spot VIX, every VX contract and the `etps` symbols. The betas of the same
        closes (same first snapshot, window and symbols) are computed once per process and read by every run
        (_BetaTape)."""
        day = self.day + 1
        tape = self._tape
        if tape is None:
            if day != 0:
                self.record(snap.quotes.vix, close_prices(snap, etps))
                return
            tape = self._tape = _BetaTape.of(snap, self.p.beta_window, etps)
        if day < len(tape.snaps) and tape.snaps[day] is not snap:
            # another run went on with other closes (live: today's snapshot is not the replay's): go on privately
            tape = self._tape = tape.fork(day)
        if day == len(tape.snaps):
            tape.advance(snap)
        self.day = day
        self._cache.clear()

    def record(self, vix: float, prices: dict[tuple, float]) -> list[tuple]:
        """One close: spot VIX and instrument prices (series key -> price). Returns the series whose window moved."""
        self.day += 1
        self._cache.clear()
        day = self.day
        moved: list[tuple] = []
        if not math.isfinite(vix):
            return moved
        pv = self.prev_vix
        dv = vix - pv[1] if pv is not None and pv[0] == day - 1 else math.nan
        self.prev_vix = (day, vix)
        for key, px in prices.items():
            if not (math.isfinite(px) and px > 0):
                continue
            last = self.prev.get(key)
            self.prev[key] = (day, px)
            if last is None or last[0] != day - 1 or math.isnan(dv):
                continue
            dp = (px - last[1]) / last[1] if key[0] == "ETP" else px - last[1]
            w = self.win.get(key)
            if w is None:
                w = self.win[key] = _Window(self.p.beta_window)
            w.add(dv, dp)
            moved.append(key)
        return moved

    def beta(self, key) -> float:
        """VX keys: VX points per VIX point. ETP keys: fractional price change per VIX point."""
        b = self._cache.get(key)
        if b is not None:
            return b
        p = self.p
        relative = key[0] == "ETP"
        prior, lo, hi = (ETP_PRIOR, ETP_MIN, ETP_MAX) if relative else (p.beta_prior, p.beta_min, p.beta_max)
        b = prior
        if self._tape is not None:
            n, est = self._tape.stats(key, self.day)
            if n >= p.beta_min_obs and math.isfinite(est):
                b = est
        else:
            w = self.win.get(key)
            if w is not None and len(w.pairs) >= p.beta_min_obs:
                est = w.slope()
                if math.isfinite(est):
                    b = est
        b = min(max(b, lo), hi)
        self._cache[key] = b
        return b

    def observations(self, key) -> int:
        if self._tape is not None:
            return self._tape.stats(key, self.day)[0]
        w = self.win.get(key)
        return 0 if w is None else len(w.pairs)


class _BetaTape:
    """Every run of a sweep or verdict records the same closes: the windows are kept once per process, with each
    series' (pairs, slope) after every day it moved, for the runs that come after (bounded: a few tapes)."""

    _tapes: ClassVar[dict[tuple, _BetaTape]] = {}

    def __init__(self, window: int, etps: tuple[str, ...]) -> None:
        self.window = window
        self.etps = etps
        self.engine = TrailingBetas(BudgetParams(beta_window=window))
        self.snaps: list = []
        self.moves: dict[tuple, tuple[list[int], list[tuple[int, float]]]] = {}

    @classmethod
    def of(cls, first_snap, window: int, etps: tuple[str, ...]) -> _BetaTape:
        key = (id(first_snap), window, etps)
        tape = cls._tapes.get(key)
        if tape is None or not tape.snaps or tape.snaps[0] is not first_snap:
            if len(cls._tapes) >= 8:
                cls._tapes.pop(next(iter(cls._tapes)))
            tape = cls._tapes[key] = cls(window, etps)
        return tape

    def advance(self, snap) -> None:
        e = self.engine
        day = len(self.snaps)
        for k in e.record(snap.quotes.vix, close_prices(snap, self.etps)):
            w = e.win[k]
            days, stats = self.moves.setdefault(k, ([], []))
            days.append(day)
            stats.append((len(w.pairs), w.slope()))
        self.snaps.append(snap)

    def fork(self, day: int) -> _BetaTape:
        """A private tape with this one's first `day` closes, to go on with other closes."""
        t = _BetaTape(self.window, self.etps)
        for snap in self.snaps[:day]:
            t.advance(snap)
        return t

    def stats(self, key, day: int) -> tuple[int, float]:
        """(pairs, slope) of a series' window as of the close of `day`."""
        m = self.moves.get(key)
        if m is None:
            return 0, math.nan
        i = bisect.bisect_right(m[0], day) - 1
        return m[1][i] if i >= 0 else (0, math.nan)


def close_prices(snap, etps: tuple[str, ...]) -> dict[tuple, float]:
    """The series a close records: every VX contract, and the ETPs the hedge may hold (NaN when unpriced)."""
    q = snap.quotes
    prices: dict[tuple, float] = {("VX", e): p for e, p in q.vx.items()}
    for sym in etps:
        prices[("ETP", sym)] = q.etps.get(sym, math.nan)
    return prices


# ---------------------------------------------------------------------------------------------------
# the condor book's risk, as the hedge sees it
# ---------------------------------------------------------------------------------------------------
class CondorRiskView(Protocol):
    def legs(self) -> list[tuple[OptionContract, int]]: ...


class BookRiskView:
    """Reads the open (and just-submitted) condors of an IronCondorBook: legs and signed quantities.

    Works the same in replay and live: it only needs the book object the daemon also runs."""

    def __init__(self, book) -> None:
        self.book = book

    def legs(self) -> list[tuple[OptionContract, int]]:
        out = []
        for c in self.book.condors.values():
            if c.status not in ("pending", "open"):
                continue  # closing condors are being bought back at this snapshot
            units = c.quantity - getattr(c, "closed_units", 0)   # pending: the whole order is about to fill
            if units > 0:
                out.extend((leg, r * units) for leg, r in zip(c.legs, c.ratios))
        return out


class StaticRiskView:
    """A fixed list of legs (tests, or a hedge run without a condor book)."""

    def __init__(self, legs: list[tuple[OptionContract, int]] | None = None) -> None:
        self._legs = list(legs or [])

    def legs(self) -> list[tuple[OptionContract, int]]:
        return self._legs


def condor_vega_dollars(market: MarketModel, legs: list[tuple[OptionContract, int]]) -> float:
    """$ change of the condor legs for a +1 point (0.01) parallel rise in SPX implied vol."""
    if not legs:
        return 0.0
    memo = snapshot_memo(market, "spx_vega")   # per-unit vega of a contract: a function of the snapshot alone
    total = 0.0
    for o, n in legs:
        vega = memo.get(o.key, _MISSING)
        if vega is _MISSING:
            vega = memo[o.key] = _unit_vega(market, o)
        if vega is not None:
            total += vega * n * o.multiplier
    return total * 0.01


_MISSING = object()


def _unit_vega(market: MarketModel, o: OptionContract) -> float | None:
    """Scalar BSM vega at the surface vol (cheaper than numpy for a dozen legs); None when it has no vega."""
    T = market.years_to(o)
    if T <= 0:
        return None
    s = market.surface
    sigma = float(s.vol(o.strike, T))
    v = sigma * math.sqrt(T)
    if v <= 1e-12:
        return None
    F = s.forward(T)
    d1 = (math.log(F / o.strike) + 0.5 * v * v) / v
    return s.spot * math.exp(-s.div_yield * T) * math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi) * math.sqrt(T)


def condor_max_loss(market: MarketModel, legs: list[tuple[OptionContract, int]]) -> float:
    """Worst expiry loss of the open condors (width x 100 x qty per condor; premium excluded)."""
    groups: dict = {}
    for o, n in legs:
        groups.setdefault(o.expiry, []).append((o, n))
    return sum(option_group_requirement(g, market.spot, 0.5, 0.5) for g in groups.values())


# ---------------------------------------------------------------------------------------------------
# per-unit measures of a basket
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measures:
    sensitivity: float   # $ per +1 point of spot VIX
    notional: float      # $
    premium: float       # $ (options: price x 100; futures/ETPs: notional)
    contracts: float     # contracts (ETP shares / shares_per_contract)


def basket_measures(basket: dict[Instrument, float], market: MarketModel, betas: TrailingBetas,
                    p: BudgetParams) -> Measures:
    sens = notional = premium = contracts = 0.0
    opts = [i for i in basket if isinstance(i, OptionContract)]
    deltas = {}
    mids = {}
    if opts:
        memo = snapshot_memo(market, "vix_delta")   # an option's delta is a function of the snapshot alone
        for o, m in zip(opts, market.mid_list(opts)):
            mids[o] = float(m)
            d = memo.get(o.key)
            if d is None:
                surf = market.vix_surface(o.expiry)
                d = memo[o.key] = float(surf.delta(o.strike, market.years_to(o), o.right == "C"))
            deltas[o] = d
    for inst, r in basket.items():
        if isinstance(inst, FutureContract):
            px = market.vx(inst.expiry)
            beta = betas.beta(series_key(inst))
            sens += r * beta * inst.multiplier
            notional += abs(r) * px * inst.multiplier
            premium += abs(r) * px * inst.multiplier
            contracts += abs(r)
        elif isinstance(inst, Equity):
            px = market.etp(inst.symbol)
            beta = betas.beta(series_key(inst))
            sens += r * beta * px
            notional += abs(r) * px
            premium += abs(r) * px
            contracts += abs(r) / p.shares_per_contract
        else:
            F = market.vx(inst.expiry)
            beta = betas.beta(series_key(inst))
            sens += r * deltas[inst] * beta * inst.multiplier
            premium += r * mids[inst] * inst.multiplier
            if r > 0:
                notional += r * F * inst.multiplier
                contracts += r
    return Measures(sens, notional, max(premium, 0.0), contracts)


def layer_target(p: BudgetParams, weight: float, *, equity: float, condor_vega: float,
                 condor_risk: float) -> float:
    """Full-activation size of one layer, in the unit of the reading's measure."""
    if p.reading == "vega":
        return weight * p.vega_offset * p.condor_vol_beta * max(-condor_vega, 0.0)
    if p.reading == "equity":
        return weight * p.equity_pct * max(equity, 0.0)
    return weight * p.contracts * max(condor_risk, 0.0) / p.risk_unit


def unit_measure(p: BudgetParams, m: Measures) -> float:
    if p.reading == "vega":
        return m.sensitivity
    if p.reading == "equity":
        return m.notional if p.equity_measure == "notional" else m.premium
    return m.contracts
