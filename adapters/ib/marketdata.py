"""IB quotes -> the engine's MarketQuotes, with stale and missing values detected, never silently used.

Subscribed: SPX and VIX (required), optional indices (VIX9D, VIX3M, VIX6M, VVIX, SKEW where the
account has them), the next N monthly VX futures, VIX ETPs. Two modes:
- stream: streaming reqMktData; at each snapshot a value older than `max_age_seconds` is refreshed
  with a one-off snapshot request before use;
- snapshot: one snapshot request for everything at each scheduled snapshot.
Option quotes (bid/ask/greeks) are requested on demand for order pricing.

A value is *missing* when IB sends nothing usable (NaN, <= 0, ask < bid) and *stale* when its last
update is older than `max_age_seconds` even after a refresh. Missing/stale values are set to NaN in
MarketQuotes and named in `MarketQuotes.stale`; if SPX or VIX is missing/stale, no snapshot is built
at all (the daemon skips that decision and logs why).

Prices: indices use the last value; futures and ETPs the mid when both sides are valid, else last.
IB has no T-bill quote: the rate comes from config (`rate`). Settlement values: at the OPEN snapshot
`spx_soq` is the SPX opening value (the replay's SOQ proxy) and on a VX expiry day the expiring
contract's price (or the VRO index when subscribed) is its final settlement.
"""
from __future__ import annotations

import contextlib
import copy
import datetime as dt
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from pydantic import StrictBool

from adapters.ib.connection import Pacer, bounded
from adapters.ib.contracts import ContractError, ContractResolver
from config.daemon import MarketDataParams
from engine.events import MarketQuotes, Phase
from engine.instruments import Instrument

log = structlog.get_logger("alvh.ib")

INDEX_FIELDS = {"SPX": "spx", "VIX": "vix", "VIX9D": "vix9d", "VIX3M": "vix3m", "VIX6M": "vix6m", "VVIX": "vvix",
                "SKEW": "skew"}
REQUIRED = ("SPX", "VIX")


def _finite_pos(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@dataclass(frozen=True)
class LegQuote:
    bid: float
    ask: float
    mid: float
    ok: bool
    reason: str = ""
    iv: float = math.nan
    delta: float = math.nan
    gamma: float = math.nan
    vega: float = math.nan
    theta: float = math.nan
    underlying: float = math.nan


def leg_quote(ticker, max_spread: float = 0.5) -> LegQuote:
    bid, ask = ticker.bid, ticker.ask
    if not _finite_pos(ask):
        return LegQuote(math.nan, math.nan, math.nan, False, "no ask")
    if bid is None or not math.isfinite(bid) or bid < 0:
        bid = 0.0  # IB sends -1 when nobody bids: a no-bid option
    if ask < bid:
        return LegQuote(bid, ask, math.nan, False, "crossed")
    mid = 0.5 * (bid + ask)
    if mid > 1.0 and (ask - bid) / mid > max_spread:
        return LegQuote(bid, ask, mid, False, f"spread {(ask - bid):.2f} wider than {max_spread:.0%} of mid")
    g = getattr(ticker, "modelGreeks", None)
    return LegQuote(bid, ask, mid, True, "",
                    *(float(getattr(g, k)) if g is not None and getattr(g, k) is not None else math.nan
                      for k in ("impliedVol", "delta", "gamma", "vega", "theta", "undPrice")))


@dataclass
class _Line:
    name: str           # "SPX", "VX 2020-04-15", "VIXY"
    kind: str           # "index" | "vx" | "etp"
    contract: object
    expiry: dt.date | None = None
    ticker: object = None
    answered: StrictBool = True   # snapshot mode: did the last snapshot request bring an update?


@dataclass
class BuildReport:
    missing: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    refreshed: int = 0

    @property
    def usable(self) -> bool:
        return not any(n in REQUIRED for n in self.missing + self.stale)


class MarketData:
    def __init__(self, ib, resolver: ContractResolver, pacer: Pacer, params: MarketDataParams, *,
                 request_timeout: float = 10.0, supplement: Callable[[Phase, dt.date], dict[str, float]] | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        self.ib = ib
        self.resolver = resolver
        self.pacer = pacer
        self.p = params
        self.request_timeout = request_timeout
        self.supplement = supplement
        self.wall = wall
        self.lines: list[_Line] = []
        self.unavailable: set[str] = set()
        self.subscribed = False
        self.subscriptions = 0

    # ---- subscriptions -------------------------------------------------------------------------
    async def discover(self) -> None:
        """Resolve the contracts to watch (indices, VX months, ETPs)."""
        from engine.instruments import Equity

        lines: list[_Line] = []
        for sym in list(REQUIRED) + [s for s in self.p.indices if s not in REQUIRED]:
            try:
                c = await self.resolver.index(sym)
            except (ContractError, TimeoutError) as e:
                if sym in REQUIRED:
                    raise
                if sym not in self.unavailable:
                    log.warning("index_unavailable", symbol=sym, error=str(e))
                self.unavailable.add(sym)
                continue
            lines.append(_Line(sym, "index", c))
        if self.p.vx_months:
            for expiry, c in await self.resolver.vx_futures(self.p.vx_months):
                lines.append(_Line(f"VX {expiry:%Y-%m-%d}", "vx", c, expiry))
        for sym in self.p.etps:
            try:
                c = (await self.resolver.resolve([Equity(sym)]))[sym]
            except (ContractError, TimeoutError) as e:
                if sym not in self.unavailable:
                    log.warning("etp_unavailable", symbol=sym, error=str(e))
                self.unavailable.add(sym)
                continue
            lines.append(_Line(sym, "etp", c))
        self.lines = lines

    async def subscribe(self) -> None:
        """(Re)discover and, in stream mode, (re)subscribe every line. Safe to call after a reconnect."""
        await self.discover()
        if self.p.mode == "stream":
            for line in self.lines:
                await self.pacer.acquire()
                line.ticker = self.ib.reqMktData(line.contract, "", False, False)
        self.subscribed = True
        self.subscriptions += 1
        log.info("market_data_subscribed", mode=self.p.mode, lines=len(self.lines),
                 unavailable=sorted(self.unavailable))

    async def roll(self) -> None:
        """Move to the next session's contracts while connected (a VX month expired, a new one listed):
        streaming lines no longer watched are cancelled, new ones subscribed, the rest kept."""
        old = {hash(ln.contract): ln for ln in self.lines}
        await self.discover()
        if self.p.mode == "stream":
            now = {hash(ln.contract) for ln in self.lines}
            for key, ln in old.items():
                if key not in now:
                    with contextlib.suppress(Exception):  # an expired contract IB no longer knows
                        self.ib.cancelMktData(ln.contract)
            for ln in self.lines:
                prev = old.get(hash(ln.contract))
                if prev is not None and prev.ticker is not None:
                    ln.ticker = prev.ticker
                else:
                    await self.pacer.acquire()
                    ln.ticker = self.ib.reqMktData(ln.contract, "", False, False)
        log.info("market_data_rolled", lines=len(self.lines), dropped=len(set(old) - {hash(ln.contract)
                                                                                       for ln in self.lines}))

    def unsubscribe(self) -> None:
        if self.p.mode == "stream" and self.ib.isConnected():
            for line in self.lines:
                with contextlib.suppress(Exception):  # best effort on shutdown
                    self.ib.cancelMktData(line.contract)
        self.subscribed = False

    def prune(self) -> int:
        """Forget finished snapshot requests and tickers of contracts no longer watched (end of day): ib_async
        keeps a Ticker per contract and a reqId entry per snapshot request for the connection's life."""
        w = self.ib.wrapper
        streaming = w.ticker2ReqId.get("mktData", {})
        keep_req = set(streaming.values()) | {k for k in w._futures if isinstance(k, int)}
        stale = [r for r in w.reqId2Ticker if r not in keep_req]
        for r in stale:
            del w.reqId2Ticker[r]
        watched = {hash(ln.contract) for ln in self.lines} | {hash(t.contract) for t in streaming}
        for k in [k for k in w.tickers if k not in watched]:
            del w.tickers[k]
        return len(stale)

    def _age(self, ticker) -> float:
        ts = getattr(ticker, "timestamp", None)
        if ts is None or ts <= 0:
            return math.inf
        return self.wall() - ts

    @staticmethod
    def _value(line: _Line) -> float:
        t = line.ticker
        if t is None:
            return math.nan
        if line.kind == "index":
            return float(t.last) if _finite_pos(t.last) else math.nan
        if _finite_pos(t.bid) and _finite_pos(t.ask) and t.ask >= t.bid:
            return 0.5 * (t.bid + t.ask)
        return float(t.last) if _finite_pos(t.last) else math.nan

    async def _snapshot(self, lines: list[_Line]) -> None:
        if not lines:
            return
        await self.pacer.acquire(len(lines))
        contracts = [ln.contract for ln in lines]
        started = time.time()  # ib_async stamps ticker updates with time.time()
        for ln in lines:
            ln.answered = False
        tickers = await bounded(self.ib.reqTickersAsync(*contracts), self.p.snapshot_timeout,
                                f"snapshot of {len(lines)} quotes")
        for ln, t in zip(lines, tickers):
            ln.ticker = t
            # ib_async hands back the same Ticker object for a contract: values that did not change
            # during this request are left-overs from an earlier one, not an answer
            ln.answered = (getattr(t, "timestamp", None) or 0.0) >= started

    async def refresh(self) -> int:
        """Bring the quotes up to date; returns how many lines were re-requested."""
        if self.p.mode == "snapshot":
            todo = list(self.lines)
        else:
            todo = [ln for ln in self.lines if ln.ticker is None or self._age(ln.ticker) > self.p.max_age_seconds
                    or not math.isfinite(self._value(ln))]
        if todo:
            try:
                await self._snapshot(todo)
            except TimeoutError as e:
                log.warning("market_data_timeout", lines=len(todo), error=str(e))
        return len(todo)

    # ---- building the engine snapshot ----------------------------------------------------------
    def build(self, phase: Phase, today: dt.date, refreshed: int = 0) -> tuple[MarketQuotes | None, BuildReport]:
        rep = BuildReport(refreshed=refreshed)
        values: dict[str, float] = {}
        vx: dict[dt.date, float] = {}
        vx_final: dict[dt.date, float] = {}
        etps: dict[str, float] = {}
        for ln in self.lines:
            v = self._value(ln)
            if not math.isfinite(v) or (self.p.mode == "snapshot" and not ln.answered):
                rep.missing.append(ln.name)
                continue
            if self._age(ln.ticker) > self.p.max_age_seconds:
                rep.stale.append(ln.name)
                continue
            if ln.kind == "index":
                values[ln.name] = v
            elif ln.kind == "vx":
                if ln.expiry < today:
                    continue
                if ln.expiry == today:
                    if phase is Phase.OPEN:
                        vx[ln.expiry] = v
                        vx_final[ln.expiry] = values.get("VRO", v)
                    continue
                vx[ln.expiry] = v
            else:
                etps[ln.name] = v
        for sym in REQUIRED:
            if sym not in values and sym not in rep.missing and sym not in rep.stale:
                rep.missing.append(sym)
        extra_fields: dict[str, float] = {}
        supplement = self.supplement(phase, today) if self.supplement is not None else {}
        stale_fields = set()
        for name in rep.missing + rep.stale:
            if name in INDEX_FIELDS:
                stale_fields.add(INDEX_FIELDS[name])
            elif name.startswith("VX "):
                stale_fields.add("vx")
            else:
                stale_fields.add("etps")
        if not rep.usable:
            return None, rep
        f = {INDEX_FIELDS[k]: v for k, v in values.items() if k in INDEX_FIELDS}
        for k, v in values.items():
            if k not in INDEX_FIELDS:
                extra_fields[k] = v
        rate = self.p.rate
        for k, v in supplement.items():   # paper replay: series the test server does not quote
            if k == "rate":
                rate = v
            elif k == "stale":
                stale_fields |= set(v)
            elif k == "vx":
                for e, px in v.items():
                    if e not in vx and (e > today or (e == today and phase is Phase.OPEN)):
                        vx[e] = px
            elif k == "vx_final":
                vx_final.update(v)
            elif k == "etps":
                for sym, px in v.items():
                    etps.setdefault(sym, px)
            elif k in INDEX_FIELDS.values() and k not in f:
                f[k] = v
                stale_fields.discard(k)
        spx = f.pop("spx")
        vix = f.pop("vix")
        q = MarketQuotes(
            spx=spx, vix=vix, rate=rate, vix9d=f.get("vix9d", math.nan), vix3m=f.get("vix3m", math.nan),
            vix6m=f.get("vix6m", math.nan), vvix=f.get("vvix", math.nan), skew=f.get("skew", math.nan),
            vx=vx, etps=etps, extra=extra_fields, spx_soq=spx if phase is Phase.OPEN else math.nan,
            vx_final=vx_final, stale=frozenset(stale_fields))
        return q, rep

    async def snapshot(self, phase: Phase, today: dt.date) -> tuple[MarketQuotes | None, BuildReport]:
        n = await self.refresh()
        return self.build(phase, today, n)

    # ---- option quotes for order pricing -------------------------------------------------------
    async def leg_quotes(self, instruments: list[Instrument]) -> dict[str, LegQuote]:
        """Snapshot bid/ask/greeks for order legs; legs without a usable quote come back with ok=False."""
        contracts = await self.resolver.resolve(instruments)
        uniq = list(dict.fromkeys(i.key for i in instruments))
        cs = [copy.copy(contracts[k]) for k in uniq]
        await self.pacer.acquire(len(cs))
        try:
            tickers = await bounded(self.ib.reqTickersAsync(*cs), self.p.snapshot_timeout,
                                    f"quotes for {len(cs)} order legs")
        except TimeoutError as e:
            log.warning("leg_quotes_timeout", legs=uniq, error=str(e))
            return {k: LegQuote(math.nan, math.nan, math.nan, False, "timeout") for k in uniq}
        return {k: leg_quote(t, self.p.max_option_spread) for k, t in zip(uniq, tickers)}
