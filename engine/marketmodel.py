"""The priced view of the market at one snapshot: surfaces, model mids, greeks, settlement times.

Built once per snapshot from MarketQuotes; everything a strategy, the simulated broker or the ledger
prices goes through here, so replay and live use the same numbers.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import fields
from functools import lru_cache
from typing import Literal

import numpy as np
from pydantic import Field, StrictBool, model_validator

from engine.clock import ET
from engine.events import MarketSnapshot, Phase
from engine.instruments import Equity, FutureContract, Instrument, OptionContract
from engine.params import Params
from engine.pricing import black76_greeks, bsm_greeks
from engine.regime_surface import RegimeParams, RegimeSurface, SurfaceState
from engine.volsurface import SkewParams, SpxSurface, VixOptionParams, VixOptionSurface, front_future

YEAR_SECONDS = 365.0 * 86400.0
# Tenors (calendar days) of the Cboe volatility indices used as term-structure points.
TERM_DAYS = {"vix9d": 9, "vix": 30, "vix3m": 91, "vix6m": 182}
# Without a shared price store, up to this many SPX options in one request are priced one by one, more as one
# numpy batch (the two agree to a few ulps; with a store every option is priced on its own).
_SCALAR_MAX = 32


class PricingParams(Params):
    div_yield: float = Field(0.018, ge=0, le=0.1, description="SPX continuous dividend yield (constant)")
    spx_model: Literal["regime", "index"] = Field(
        "regime", description="SPX surface: regime (engine.regime_surface, fitted on real chains 2004-2024) or "
                              "index (engine.volsurface.SpxSurface, the 2022-24 model kept for comparison)")
    spx_surface: dict[str, float] = Field(default_factory=dict, description="overrides of RegimeParams fields")
    spx_skew: dict[str, float] = Field(default_factory=dict, description="overrides of SkewParams fields (index model)")
    vix_options: dict[str, float] = Field(default_factory=dict, description="overrides of VixOptionParams fields")
    use_term_structure: StrictBool = Field(True, description="use VIX9D/VIX3M/VIX6M when available, else VIX alone")

    @model_validator(mode="after")
    def _known_fields(self):
        for name, cls, given in (("spx_skew", SkewParams, self.spx_skew), ("vix_options", VixOptionParams, self.vix_options),
                                 ("spx_surface", RegimeParams, self.spx_surface)):
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(given) - known)
            if unknown:
                raise ValueError(f"pricing.{name}: unknown key(s) {unknown}; known: {sorted(known)}")
        vo = self.vix_option_params()
        if vo.contango_min > vo.contango_max:   # the clip would then pin every state to contango_max
            raise ValueError(f"pricing.vix_options.contango_min ({vo.contango_min:g}) is above contango_max "
                             f"({vo.contango_max:g})")
        scale = self.spx_surface.get("level_scale", 1.0)
        if not scale > 0:   # a zero level has no surface: the theta solve would fail mid-replay
            raise ValueError(f"pricing.spx_surface.level_scale must be above 0 (got {scale:g})")
        return self

    def skew(self) -> SkewParams:
        return SkewParams(**self.spx_skew)

    def vix_option_params(self) -> VixOptionParams:
        return VixOptionParams(**self.vix_options)

    def regime_params(self) -> RegimeParams:
        return _regime_params(tuple(sorted(self.spx_surface.items())))


@lru_cache(maxsize=32)
def _regime_params(overrides: tuple[tuple[str, float], ...]) -> RegimeParams:
    # one instance per distinct override set: the surface caches its node arrays and coefficients by instance
    return RegimeParams(**dict(overrides))


def settlement_datetime(opt_or_fut: OptionContract | FutureContract) -> dt.datetime:
    pm = isinstance(opt_or_fut, OptionContract) and opt_or_fut.settlement == "PM"
    return _settles_at(opt_or_fut.expiry, pm)


@lru_cache(maxsize=8192)
def _settles_at(d: dt.date, pm: bool = False) -> dt.datetime:
    """PM settlement at the 16:00 ET close; AM (SOQ/VRO) at the 09:30 ET open."""
    return dt.datetime(d.year, d.month, d.day, 16, 0, tzinfo=ET) if pm else dt.datetime(d.year, d.month, d.day, 9, 30, tzinfo=ET)


@lru_cache(maxsize=1024)
def _vx_key(expiry: dt.date) -> str:
    return FutureContract("VX", expiry).key


class SnapshotPrices:
    """What has been priced at one snapshot under one set of pricing parameters: times to settlement, model mids
    and any per-snapshot memo a caller keeps (``MarketModel.memo``). The surfaces are not kept (a run that meets
    a contract no earlier run priced rebuilds the snapshot's surface: a few microseconds, far less memory). Every value is a pure
    function of the snapshot's quotes and the parameters, so runs that replay the same snapshot (a sweep's
    configurations, a verdict's scenarios) can share one: a contract is priced once per snapshot per worker."""

    __slots__ = ("T", "cache", "memos", "mids", "snap")

    def __init__(self, snap: MarketSnapshot, cache: PriceCache | None = None) -> None:
        self.snap = snap
        self.cache = cache   # told how many values are added, for its bound
        self.T: dict[tuple, float] = {}
        self.mids: dict[str, float] = {}
        self.memos: dict[str, dict] = {}

    def size(self) -> int:
        return len(self.mids) + len(self.T) + sum(len(m) for m in self.memos.values()) + 8


class PriceCache:
    """Snapshot prices shared by the runs of one process, bounded by the number of cached values.

    Keyed by the snapshot object (replays of one panel reuse the same snapshot objects, see
    adapters/sim/replay.py) and the pricing parameters. Past ``max_values`` the oldest snapshots are dropped
    (a run still holding one keeps it until it moves on). Results are the same with or without sharing: every
    cached value is what the run would have computed itself (tests/integration/test_shared_prices_replay.py)."""

    def __init__(self, max_values: int = 3_000_000) -> None:
        self.max_values = max_values
        self._entries: dict[tuple[int, str], SnapshotPrices] = {}
        self.values = 0   # prices added to the entries (memo values are not counted: a small multiple)
        self.hits = 0
        self.misses = 0

    def entry(self, snap: MarketSnapshot, pricing_key: str) -> SnapshotPrices:
        key = (id(snap), pricing_key)
        e = self._entries.get(key)
        if e is not None and e.snap is snap:   # the entry holds the snapshot, so its id cannot be reused
            self.hits += 1
            return e
        self.misses += 1
        if self.values > self.max_values:
            self._evict()
        e = self._entries[key] = SnapshotPrices(snap, self)
        self.values += 8
        return e

    def _evict(self) -> None:
        """Drop the oldest snapshots down to 3/4 of the bound (a run holding one keeps it until it moves on)."""
        goal = self.max_values * 3 // 4
        total = sum(e.size() for e in self._entries.values())
        for key in list(self._entries):
            if total <= goal:
                break
            total -= self._entries.pop(key).size()
        self.values = total

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self.values = 0


def snapshot_memo(market, name: str) -> dict:
    """market.memo(name) for a MarketModel; a throwaway dict for a stand-in market without one (tests)."""
    memo = getattr(market, "memo", None)
    return memo(name) if memo is not None else {}


def pricing_key(params: PricingParams) -> str:
    """The pricing parameters as text: part of a price's cache key."""
    return params.model_dump_json()


class MarketModel:
    def __init__(self, snap: MarketSnapshot, params: PricingParams, skew: SkewParams | None = None,
                 vix_params: VixOptionParams | None = None, prices: SnapshotPrices | None = None) -> None:
        self.snapshot = snap
        self.ts = snap.ts
        self.date = snap.date
        self.phase = snap.phase
        q = snap.quotes
        self.quotes = q
        self.spot = q.spx
        self.vix = q.vix
        self.rate = q.rate if math.isfinite(q.rate) else 0.0
        self.params = params
        self._skew = skew   # index model only; built on first use
        self._vix_params = vix_params or params.vix_option_params()
        # With `prices` (replay: shared across the runs of a process) every SPX option is priced on its own, so
        # a price does not depend on which other contracts were asked for with it. Without (live, analyses) a
        # request for more than _SCALAR_MAX SPX options is priced as one numpy batch.
        self._prices = prices
        if prices is None:
            prices = SnapshotPrices(snap)
        self._store = prices
        self._surface: SpxSurface | RegimeSurface | None = None
        self._vix_surfaces: dict[dt.date, VixOptionSurface] = {}
        self._T = prices.T
        self._mid_cache = prices.mids

    # ---- basic quotes ----------------------------------------------------------------------------
    @property
    def is_close(self) -> bool:
        return self.phase is Phase.CLOSE

    def vx(self, expiry: dt.date) -> float:
        return self.quotes.vx.get(expiry, math.nan)

    def vx_curve(self) -> list[tuple[dt.date, float]]:
        """Live VX contracts (expiry, price), nearest first, excluding any that expire at this instant."""
        return sorted((e, p) for e, p in self.quotes.vx.items() if _settles_at(e) > self.ts)

    def fresh(self, inst: Instrument) -> bool:
        """Whether `inst`'s price is from this instant, so a fill or a stop check may use it.

        A VX future needs its own price; an SPX option needs the SPX and VIX levels (the surface's level; the
        term points, VVIX and SKEW only shape it); a VIX option needs its VX forward and VVIX, which sets its
        vol level (VVIX is close-only in the data, so VIX options are never fresh at the replay's open); an ETP
        its own price."""
        stale = self.quotes.stale
        if not stale:
            return True
        if inst.key in stale:
            return False
        if type(inst) is OptionContract:
            if inst.root == "VIX":
                return "vvix" not in stale and "vx" not in stale and _vx_key(inst.expiry) not in stale
            return "spx" not in stale and "vix" not in stale
        if type(inst) is FutureContract:
            return "vx" not in stale
        return "etps" not in stale

    def etp(self, symbol: str) -> float:
        return self.quotes.etps.get(symbol, math.nan)

    def series(self, name: str) -> float:
        """Any scalar series by name (spx, vix, vix3m, ..., or an extra column)."""
        q = self.quotes
        if hasattr(q, name) and isinstance(getattr(q, name), float):
            return getattr(q, name)
        return q.extra.get(name, math.nan)

    def years_to(self, inst: OptionContract | FutureContract) -> float:
        key = (inst.expiry, getattr(inst, "settlement", "AM"))
        T = self._T.get(key)
        if T is None:
            T = self._T[key] = max((settlement_datetime(inst) - self.ts).total_seconds() / YEAR_SECONDS, 0.0)
        return T

    def memo(self, name: str) -> dict:
        """A dict for values derived from this snapshot alone (e.g. a strike picked by delta, a leg's vega),
        shared like the prices: whatever is stored must depend only on the snapshot, the pricing parameters
        and the key."""
        m = self._store.memos.get(name)
        if m is None:
            m = self._store.memos[name] = {}
        return m

    # ---- surfaces ------------------------------------------------------------------------------
    @property
    def surface(self) -> SpxSurface | RegimeSurface:
        if self._surface is None:
            q = self.quotes
            if self.params.spx_model == "regime":
                ts = self.params.use_term_structure
                nan = math.nan
                state = SurfaceState(q.vix, q.vix9d if ts else nan, q.vix3m if ts else nan, q.vix6m if ts else nan,
                                     q.vvix, q.skew)
                self._surface = RegimeSurface(self.spot, self.rate, self.params.div_yield, state,
                                              self.params.regime_params())
                return self._surface
            points = []
            if self.params.use_term_structure:
                for name, days in TERM_DAYS.items():
                    level = getattr(q, name)
                    if math.isfinite(level) and level > 0:
                        points.append((days / 365.0, level / 100.0))
            if not points:
                points = [(30 / 365.0, q.vix / 100.0)]
            self._surface = SpxSurface(self.spot, self.rate, self.params.div_yield, points,
                                      self._skew or self.params.skew())
        return self._surface

    def vix_surface(self, expiry: dt.date) -> VixOptionSurface:
        s = self._vix_surfaces.get(expiry)
        if s is None:
            F = self.vx(expiry)
            if not math.isfinite(F):
                raise KeyError(f"no VX price for {expiry} on {self.date}: cannot price VIX options of that expiry")
            s = self._vix_surfaces[expiry] = VixOptionSurface(F, self.rate, self.quotes.vvix, self._vix_params,
                                                              vix=self.vix,
                                                              front=self.vx_front() if self._vix_params.long_vol_contango else None)
        return s

    def vx_front(self) -> float:
        """The front VX future's price (engine.volsurface.front_future; NaN if none)."""
        return front_future(self.quotes.vx, self.date, self._vix_params)

    # ---- prices --------------------------------------------------------------------------------
    def mids(self, instruments: Sequence[Instrument]) -> np.ndarray:
        """Model mid of each instrument, memoised for this snapshot (strategies, the broker and the
        end-of-day marks ask for the same contracts)."""
        return np.array(self.mid_list(instruments), dtype=float)

    def mid_list(self, instruments: Sequence[Instrument]) -> list[float]:
        """mids() as a list of floats: the hot callers do scalar arithmetic on a handful of legs."""
        cache = self._mid_cache
        get = cache.get
        out = [get(i.key) for i in instruments]
        if None in out:
            missing = [k for k, px in enumerate(out) if px is None]
            fresh = self._compute_mids([instruments[k] for k in missing])
            for k, px in zip(missing, fresh):
                out[k] = px
                cache[instruments[k].key] = px
            if self._prices is not None and self._prices.cache is not None:
                self._prices.cache.values += len(missing)
        return out

    def _compute_mids(self, instruments: Sequence[Instrument]) -> list[float]:
        out = [math.nan] * len(instruments)
        spx_idx: list[int] = []
        vix_idx: dict[dt.date, list[int]] = {}
        for i, inst in enumerate(instruments):
            if isinstance(inst, OptionContract):
                if inst.root == "VIX":
                    vix_idx.setdefault(inst.expiry, []).append(i)
                else:
                    spx_idx.append(i)
            elif isinstance(inst, FutureContract):
                out[i] = self.vx(inst.expiry)
            elif isinstance(inst, Equity):
                out[i] = self.etp(inst.symbol)
        if spx_idx and (self._prices is not None or len(spx_idx) <= _SCALAR_MAX):
            # the scalar path: per contract, and faster than numpy's per-call overhead on small batches
            price1 = self.surface.price1
            times = self._T
            for i in spx_idx:
                o = instruments[i]
                T = times.get((o.expiry, o.settlement))
                if T is None:
                    T = self.years_to(o)
                out[i] = price1(o.strike, T, o.right == "C")
        elif spx_idx:
            opts = [instruments[i] for i in spx_idx]
            K = np.array([o.strike for o in opts])
            T = np.array([self.years_to(o) for o in opts])
            call = np.array([o.right == "C" for o in opts])
            for i, px in zip(spx_idx, self.surface.price(K, T, call).tolist()):
                out[i] = px
        for expiry, idx in vix_idx.items():
            opts = [instruments[i] for i in idx]
            K = np.array([o.strike for o in opts])
            T = np.array([self.years_to(o) for o in opts])
            call = np.array([o.right == "C" for o in opts])
            for i, px in zip(idx, np.atleast_1d(self.vix_surface(expiry).price(K, T, call)).tolist()):
                out[i] = px
        return out

    def mid(self, inst: Instrument) -> float:
        return float(self.mids([inst])[0])

    def greeks(self, instruments: Sequence[OptionContract]) -> list:
        """Greeks (per unit, before multiplier; vega per 1.00 vol) of each option at the surface vol."""
        out = []
        for o in instruments:
            T = self.years_to(o)
            if o.root == "VIX":
                s = self.vix_surface(o.expiry)
                out.append(black76_greeks(s.future, o.strike, T, self.rate, s.vol(o.strike, T), o.right == "C"))
            else:
                sig = self.surface.vol(o.strike, T)
                out.append(bsm_greeks(self.spot, o.strike, T, self.rate, self.params.div_yield, sig, o.right == "C"))
        return out

    def deltas(self, instruments: Sequence[OptionContract]) -> np.ndarray:
        return np.array([float(g.delta) for g in self.greeks(instruments)])

    def vegas(self, instruments: Sequence[OptionContract]) -> np.ndarray:
        """Vega per 1.00 vol for each option (per unit, before multiplier)."""
        return np.array([float(g.vega) for g in self.greeks(instruments)])

    def marks(self, instruments: Iterable[Instrument]) -> dict[str, float]:
        insts = list(instruments)
        return dict(zip((i.key for i in insts), self.mids(insts).tolist()))

