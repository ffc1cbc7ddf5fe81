"""Engine instruments <-> IB contracts, resolved once and cached.

- SPX options: symbol SPX, exchange SMART, multiplier 100, tradingClass SPX (AM-settled monthlies)
  or SPXW (PM-settled weeklies/dailies) - without the class a third-Friday strike is ambiguous.
- VIX options: symbol VIX, tradingClass VIX. VX futures: symbol VIX, exchange CFE, tradingClass VX,
  multiplier 1000, by month. ETPs: Stock(symbol, SMART, USD). Indices on CBOE.
- Chains come from reqSecDefOptParams (cached per underlying and day) and are used to check an
  expiry/strike exists before asking for contract details.
- A BAG (combo) is built locally from the legs' conIds: contract details are never requested for a
  BAG (TWS answers error 321, or nothing).
The conId of every resolved instrument is also written to a contract cache (the engine's ContractCache port,
the daemon's state store), so executions and positions can be mapped back to engine instruments after a
restart; contracts that expired before today are not loaded back.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from adapters.ib.connection import Pacer, bounded
from engine.instruments import Equity, FutureContract, Instrument, OptionContract, instrument_from_dict
from engine.orders import OrderLeg
from engine.ports import ContractCache

log = structlog.get_logger("alvh.ib")

INDEX_EXCHANGE = {"SPX": "CBOE", "VIX": "CBOE", "VIX9D": "CBOE", "VIX3M": "CBOE", "VIX6M": "CBOE",
                  "VVIX": "CBOE", "SKEW": "CBOE", "VRO": "CBOE"}


class ContractError(LookupError):
    """An instrument could not be resolved to exactly one IB contract."""


@dataclass(frozen=True)
class Chain:
    trading_class: str
    expirations: frozenset[dt.date]
    strikes: frozenset[float]
    multiplier: str


def ib_contract(inst: Instrument):
    """The (unqualified) ib_async contract for an engine instrument."""
    from ib_async import Future, Option, Stock

    if isinstance(inst, OptionContract):
        symbol = "VIX" if inst.root == "VIX" else "SPX"
        return Option(symbol, f"{inst.expiry:%Y%m%d}", float(inst.strike), inst.right, "SMART",
                      multiplier=str(inst.multiplier), currency="USD", tradingClass=inst.root)
    if isinstance(inst, FutureContract):
        return Future("VIX", f"{inst.expiry:%Y%m%d}", "CFE", multiplier=str(inst.multiplier), currency="USD",
                      tradingClass="VX")
    if isinstance(inst, Equity):
        return Stock(inst.symbol, "SMART", "USD")
    raise TypeError(f"no IB contract for {inst!r}")


def _parse_date(s: str) -> dt.date | None:
    s = (s or "").strip()
    if len(s) >= 8 and s[:8].isdigit():
        return dt.date(int(s[:4]), int(s[4:6]), int(s[6:8]))
    return None


def instrument_from_contract(c) -> Instrument | None:
    """Engine instrument for an IB contract (positions/executions of contracts not in the cache)."""
    sec = (c.secType or "").upper()
    if sec == "OPT":
        expiry = _parse_date(c.lastTradeDateOrContractMonth)
        if expiry is None:
            return None
        tclass = (c.tradingClass or c.symbol or "").upper()
        mult = int(float(c.multiplier or 100))
        if c.symbol == "VIX" or tclass == "VIX":
            return OptionContract("VIX", expiry, float(c.strike), c.right[:1], "AM", mult)
        if c.symbol == "SPX":
            if tclass == "SPX" and expiry.weekday() == 3:
                expiry += dt.timedelta(days=1)  # IB may report the Thursday last-trade date of an AM monthly
            root = "SPX" if tclass == "SPX" else "SPXW"
            return OptionContract(root, expiry, float(c.strike), c.right[:1], "AM" if root == "SPX" else "PM", mult)
        return None
    if sec == "FUT" and c.symbol == "VIX":
        expiry = _parse_date(c.lastTradeDateOrContractMonth)
        if expiry is None:
            return None
        return FutureContract("VX", expiry, int(float(c.multiplier or 1000)))
    if sec == "STK":
        return Equity(c.symbol)
    return None


def contract_fields(c) -> dict:
    return {k: getattr(c, k) for k in ("conId", "symbol", "secType", "lastTradeDateOrContractMonth", "strike", "right",
                                        "multiplier", "exchange", "currency", "localSymbol", "tradingClass")}


class ContractResolver:
    def __init__(self, ib, pacer: Pacer, timeout: float = 10.0, store: ContractCache | None = None,
                 today=dt.date.today) -> None:
        self.ib = ib
        self.today = today  # the daemon's clock (simulated in paper replay)
        self.pacer = pacer
        self.timeout = timeout
        self.store = store
        self._by_key: dict[str, object] = {}
        self._by_con_id: dict[int, Instrument] = {}
        self._indices: dict[str, object] = {}
        self._chains: dict[tuple[str, dt.date], list[Chain]] = {}
        self.requests = 0
        if store is not None:
            now = today()
            for key, con_id, raw in store.contracts():
                inst = instrument_from_dict(raw["instrument"])
                if getattr(inst, "expiry", now) < now:
                    continue
                self._by_con_id[con_id] = inst
                self._by_key[key] = self._rebuild(inst, con_id)

    @staticmethod
    def _rebuild(inst: Instrument, con_id: int):
        c = ib_contract(inst)
        c.conId = con_id
        return c

    # ---- lookups -------------------------------------------------------------------------------
    def cached(self, inst: Instrument):
        return self._by_key.get(inst.key)

    def instrument_for(self, contract) -> Instrument | None:
        inst = self._by_con_id.get(int(contract.conId or 0))
        if inst is None:
            inst = instrument_from_contract(contract)
            if inst is not None and contract.conId:
                self._by_con_id[int(contract.conId)] = inst
        return inst

    def instrument_for_key(self, key: str) -> Instrument | None:
        return next((inst for inst in self._by_con_id.values() if inst.key == key), None)

    def prune(self) -> int:
        """Forget contracts that expired before today (end of day): the caches hold what can still trade."""
        today = self.today()
        gone = {cid: inst for cid, inst in self._by_con_id.items() if getattr(inst, "expiry", today) < today}
        for cid, inst in gone.items():
            del self._by_con_id[cid]
            self._by_key.pop(inst.key, None)
        return len(gone)

    def con_id(self, inst: Instrument) -> int | None:
        c = self._by_key.get(inst.key)
        return int(c.conId) if c is not None and c.conId else None

    def _remember(self, inst: Instrument, contract) -> None:
        self._by_key[inst.key] = contract
        self._by_con_id[int(contract.conId)] = inst
        if self.store is not None:
            self.store.save_contract(inst.key, int(contract.conId),
                                     {"instrument": inst.to_dict(), "ib": contract_fields(contract)})

    async def _details(self, contract) -> list:
        await self.pacer.acquire()
        self.requests += 1
        return await bounded(self.ib.reqContractDetailsAsync(contract), self.timeout,
                             f"contract details for {contract.symbol} {contract.secType}")

    # ---- resolution ----------------------------------------------------------------------------
    async def resolve(self, instruments: Iterable[Instrument]) -> dict[str, object]:
        """Qualified contracts for the instruments (cached); raises ContractError naming the first failure."""
        insts = list(dict.fromkeys(instruments))
        todo = [i for i in insts if i.key not in self._by_key]
        if todo:
            results = await asyncio.gather(*(self._resolve_one(i) for i in todo), return_exceptions=True)
            for inst, res in zip(todo, results):
                if isinstance(res, BaseException):
                    if isinstance(res, (ContractError, TimeoutError)):
                        raise res
                    raise ContractError(f"{inst.key}: {res}") from res
        return {i.key: self._by_key[i.key] for i in insts}

    async def _resolve_one(self, inst: Instrument) -> None:
        if isinstance(inst, OptionContract):
            await self._check_chain(inst)
        want = ib_contract(inst)
        details = await self._details(want)
        matches = [d.contract for d in details if d.contract is not None and d.contract.secType == want.secType]
        if isinstance(inst, OptionContract):
            matches = [c for c in matches if (c.tradingClass or "") == inst.root]
        if isinstance(inst, FutureContract):
            matches = [c for c in matches if (c.tradingClass or "VX") == "VX"]
        if len(matches) != 1:
            raise ContractError(f"{inst.key}: {'no' if not matches else len(matches)} matching IB contract(s)")
        c = matches[0]
        if want.exchange == "SMART":
            c.exchange = "SMART"
        self._remember(inst, c)

    async def index(self, symbol: str):
        """A qualified index contract (SPX, VIX, VIX9D, VIX3M, VIX6M, VVIX, SKEW...)."""
        from ib_async import Index

        c = self._indices.get(symbol)
        if c is not None:
            return c
        details = await self._details(Index(symbol, INDEX_EXCHANGE.get(symbol, "CBOE"), "USD"))
        if len(details) != 1:
            raise ContractError(f"index {symbol}: {len(details)} matching IB contract(s)")
        c = details[0].contract
        self._indices[symbol] = c
        return c

    async def vx_futures(self, months: int) -> list[tuple[dt.date, object]]:
        """The next `months` monthly VX futures (expiry >= today), nearest first."""
        from ib_async import Future

        today = self.today()
        details = await self._details(Future("VIX", "", "CFE", currency="USD", tradingClass="VX"))
        out = []
        for d in details:
            c = d.contract
            if c is None or (c.tradingClass or "VX") != "VX":
                continue
            expiry = _parse_date(c.lastTradeDateOrContractMonth)
            if expiry is None or expiry < today:
                continue
            inst = FutureContract("VX", expiry, int(float(c.multiplier or 1000)))
            self._remember(inst, c)
            out.append((expiry, c))
        out.sort(key=lambda x: x[0])
        return out[:months]

    async def chains(self, symbol: str) -> list[Chain]:
        today = self.today()
        key = (symbol, today)
        hit = self._chains.get(key)
        if hit is not None:
            return hit
        und = await self.index(symbol)
        await self.pacer.acquire()
        self.requests += 1
        raw = await bounded(self.ib.reqSecDefOptParamsAsync(symbol, "", "IND", und.conId), self.timeout,
                            f"option chain for {symbol}")
        merged: dict[str, tuple[set, set, str]] = {}
        for ch in raw:
            exps, strikes, _ = merged.setdefault(ch.tradingClass, (set(), set(), ch.multiplier))
            exps.update(d for d in (_parse_date(e) for e in ch.expirations) if d is not None)
            strikes.update(float(k) for k in ch.strikes)
        out = [Chain(tc, frozenset(e), frozenset(s), m) for tc, (e, s, m) in sorted(merged.items())]
        self._chains = {k: v for k, v in self._chains.items() if k[1] == today}
        self._chains[key] = out
        return out

    async def _check_chain(self, inst: OptionContract) -> None:
        """Pre-check an option against the chain. Contract details stay the authority: a strike or expiry
        the chain does not list is logged (it often means a typo or an unlisted date) and then asked for."""
        symbol = "VIX" if inst.root == "VIX" else "SPX"
        try:
            chains = await self.chains(symbol)
        except (ContractError, TimeoutError) as e:
            log.warning("option_chain_unavailable", symbol=symbol, error=str(e))
            return
        ch = next((c for c in chains if c.trading_class == inst.root), None)
        if ch is None:
            raise ContractError(f"{inst.key}: no {inst.root} option chain at IB")
        listed = inst.expiry in ch.expirations or (inst.root == "SPX" and inst.expiry - dt.timedelta(days=1) in ch.expirations)
        if not listed or inst.strike not in ch.strikes:
            log.warning("option_not_in_chain", instrument=inst.key, expiry_listed=listed,
                        strike_listed=inst.strike in ch.strikes)

    # ---- combos ----------------------------------------------------------------------------
    def bag(self, legs: Iterable[OrderLeg]):
        """A BAG contract built from cached leg conIds (resolve the legs first). Never sent for details."""
        from ib_async import Bag, ComboLeg

        legs = list(legs)
        kinds = {type(leg.instrument) for leg in legs}
        if len(kinds) > 1:
            raise ContractError("IB cannot combine futures, options and stock in one BAG: "
                                + ", ".join(leg.key for leg in legs))
        exchange = "CFE" if kinds == {FutureContract} else "SMART"
        combo = []
        symbol = ""
        for leg in legs:
            c = self._by_key.get(leg.key)
            if c is None:
                raise ContractError(f"{leg.key}: leg not resolved")
            symbol = symbol or c.symbol
            combo.append(ComboLeg(conId=int(c.conId), ratio=abs(int(leg.ratio)), action="BUY" if leg.ratio > 0 else "SELL",
                                  exchange=exchange))
        return Bag(symbol=symbol, exchange=exchange, currency="USD", comboLegs=combo)
