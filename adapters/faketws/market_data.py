"""Market data: reqMktData snapshots and streaming subscriptions (prices, sizes, option computations,
delayed tick ids), refreshed on a timer or on demand, and the levels that move the default provider."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .contract_details import MSG_NO_SECDEF, ambiguous
from .contracts import BagContractError, ContractSpec, ContractUniverse
from .orders import LegRecord
from .outbox import Outbox
from .quotes import Quote, SpecQuotes, combo_quote
from .sessions import MarketSubscription, Session, Sessions
from .settings import Settings
from .wire import OUT, FieldReader, fmt_float, read_contract

log = logging.getLogger("alvh.faketws")

MSG_NOT_SUBSCRIBED = "Requested market data is not subscribed."
# live tick id -> delayed tick id (TWS tick types 66..75)
DELAYED_TICKS = {1: 66, 2: 67, 4: 68, 9: 75, 0: 69, 3: 70, 5: 71, 8: 74}


class MarketData:
    def __init__(self, settings: Settings, universe: ContractUniverse, sessions: Sessions, outbox: Outbox,
                 quotes: SpecQuotes):
        self.settings = settings
        self.universe = universe
        self.sessions = sessions
        self.outbox = outbox
        self.quotes = quotes
        self._tick_task: asyncio.Task | None = None

    # ------------------------------------------------------------ requests
    def req_mkt_data(self, conn: Session, r: FieldReader) -> None:
        r.int()  # version
        req_id = r.int()
        q = read_contract(r)
        legs_raw = []
        if q["secType"].upper() == "BAG":
            for _ in range(r.int()):
                legs_raw.append((r.int(), r.int(), r.str(), r.str()))
        if r.bool():
            r.skip(3)  # delta-neutral contract
        generic = r.str()
        snapshot = r.bool()
        r.bool()  # regulatory snapshot
        if r.remaining():
            r.str()  # mktDataOptions
        legs: list[LegRecord] = []
        specs: list[ContractSpec] = []
        if legs_raw:
            for con_id, ratio, action, exch in legs_raw:
                spec = self.universe.get(con_id)
                if spec is None:
                    self.outbox.error(conn, req_id, 200, MSG_NO_SECDEF)
                    return
                legs.append(LegRecord(spec, ratio or 1, action or "BUY", exch))
        else:
            try:
                specs = self.universe.resolve(q)
            except BagContractError:
                specs = []
            if not specs:
                self.outbox.error(conn, req_id, 200, MSG_NO_SECDEF)
                return
            if len(specs) > 1:
                self.outbox.error(conn, req_id, 200, ambiguous(q["symbol"]))
                return
        delayed = False
        if not self.settings.market_data_entitled:
            if conn.md_type in (3, 4):
                delayed = True
            else:
                self.outbox.error(conn, req_id, 354, MSG_NOT_SUBSCRIBED)
                return
        sub = MarketSubscription(req_id, specs, legs, bool(legs))
        quote = self.quote_for(sub)
        if quote is None:
            code = self.settings.no_quote_error
            self.outbox.error(conn, req_id, code, MSG_NO_SECDEF if code == 200 else MSG_NOT_SUBSCRIBED)
            return
        self.outbox.send(conn, [OUT.MARKET_DATA_TYPE, 1, req_id, 3 if delayed else 1])
        min_tick = specs[0].min_tick if specs else 0.05
        self.outbox.send(conn, [OUT.TICK_REQ_PARAMS, req_id, fmt_float(min_tick), "9c0001", 3])
        sub.last_sent["delayed"] = delayed
        self.send_ticks(conn, sub, quote, generic=generic)
        if snapshot:
            self.outbox.send(conn, [OUT.TICK_SNAPSHOT_END, 1, req_id])
        else:
            conn.mkt[req_id] = sub

    def cancel_mkt_data(self, conn: Session, r: FieldReader) -> None:
        r.int()
        conn.mkt.pop(r.int(), None)

    def quote_for(self, sub: MarketSubscription) -> Quote | None:
        if sub.is_bag:
            return combo_quote(sub.legs, [self.quotes(leg.spec) for leg in sub.legs])
        return self.quotes(sub.specs[0])

    # ------------------------------------------------------------ ticks
    def send_ticks(self, conn: Session, sub: MarketSubscription, q: Quote, generic: str = "",
                   only_changed: bool = False) -> None:
        delayed = bool(sub.last_sent.get("delayed"))
        tt = DELAYED_TICKS if delayed else {}
        d = 1 if delayed else 0
        rid = sub.req_id
        prev = sub.last_sent

        def changed(key, value):
            if only_changed and prev.get(key) == value:
                return False
            prev[key] = value
            return True

        def k(tick: int) -> int:
            return tt.get(tick, tick)

        if q.bid is not None and changed("bid", (q.bid, q.bid_size)):
            self.outbox.send(conn, [OUT.TICK_PRICE, 6, rid, k(1), fmt_float(q.bid), fmt_float(q.bid_size), 0])
            self.outbox.send(conn, [OUT.TICK_SIZE, 6, rid, k(0), fmt_float(q.bid_size)])
        if q.ask is not None and changed("ask", (q.ask, q.ask_size)):
            self.outbox.send(conn, [OUT.TICK_PRICE, 6, rid, k(2), fmt_float(q.ask), fmt_float(q.ask_size), 0])
            self.outbox.send(conn, [OUT.TICK_SIZE, 6, rid, k(3), fmt_float(q.ask_size)])
        if q.last is not None and changed("last", (q.last, q.last_size)):
            self.outbox.send(conn, [OUT.TICK_PRICE, 6, rid, k(4), fmt_float(q.last), fmt_float(q.last_size), 0])
            self.outbox.send(conn, [OUT.TICK_SIZE, 6, rid, k(5), fmt_float(q.last_size)])
        if q.close is not None and changed("close", q.close):
            self.outbox.send(conn, [OUT.TICK_PRICE, 6, rid, k(9), fmt_float(q.close), 0, 0])
        if q.volume is not None and changed("volume", q.volume):
            self.outbox.send(conn, [OUT.TICK_SIZE, 6, rid, k(8), fmt_float(q.volume)])
        is_opt = not sub.is_bag and sub.specs and sub.specs[0].sec_type == "OPT"
        if is_opt and (q.iv is not None or q.delta is not None):
            key = (q.iv, q.delta, q.gamma, q.vega, q.theta, q.und_price, q.bid, q.ask)
            if changed("greeks", key):
                self.send_greeks(conn, rid, q, d)
        if "106" in (generic or "").split(",") and q.iv is not None and changed("iv106", q.iv):
            self.outbox.send(conn, [OUT.TICK_GENERIC, 6, rid, 24, fmt_float(q.iv)])

    def send_greeks(self, conn: Session, rid: int, q: Quote, d: int) -> None:
        def g(v, sentinel):
            return fmt_float(v) if v is not None else str(sentinel)

        model_px = q.opt_price if q.opt_price is not None else q.mid
        base = [OUT.TICK_OPTION_COMPUTATION, rid]

        def comp(tick, iv, px):
            return base + [tick, 0, g(iv, -1), g(q.delta, -2), g(px, -1), "0", g(q.gamma, -2), g(q.vega, -2),
                           g(q.theta, -2), g(q.und_price, -1)]

        def iv_at(px):
            if q.iv is None or px is None or model_px is None or not q.vega:
                return q.iv
            return max(q.iv + (px - model_px) / (q.vega * 100.0), 0.0001)

        ofs = 70 if d else 0  # 10->80 bid, 11->81 ask, 12->82 last, 13->83 model
        if q.bid is not None and q.bid > 0:
            self.outbox.send(conn, comp(10 + ofs, iv_at(q.bid), q.bid))
        if q.ask is not None:
            self.outbox.send(conn, comp(11 + ofs, iv_at(q.ask), q.ask))
        if q.last is not None:
            self.outbox.send(conn, comp(12 + ofs, iv_at(q.last), q.last))
        self.outbox.send(conn, comp(13 + ofs, q.iv, model_px))

    # ------------------------------------------------------------ streaming
    def publish(self) -> None:
        """Re-query the provider for every streaming subscription and send what changed."""
        for conn in self.sessions.ready():
            for sub in list(conn.mkt.values()):
                q = self.quote_for(sub)
                if q is not None:
                    self.send_ticks(conn, sub, q, only_changed=True)

    def start_ticking(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.settings.tick_interval and self.settings.tick_interval > 0:
            self._tick_task = loop.create_task(self._tick_loop())

    async def stop_ticking(self) -> None:
        if self._tick_task:
            self._tick_task.cancel()
            with contextlib.suppress(BaseException):
                await self._tick_task
            self._tick_task = None

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_interval)
            try:
                self.publish()
            except Exception:  # pragma: no cover
                log.exception("FakeTWS: tick loop failed")

    # ------------------------------------------------------------ the default provider's levels
    def set_levels(self, spx: float | None = None, vix: float | None = None, vol: float | None = None,
                   **etps: float) -> None:
        setter = getattr(self.quotes.provider, "set_levels", None)
        if setter is None:
            raise TypeError("custom quote provider has no set_levels()")
        setter(spx=spx, vix=vix, vol=vol, **etps)
        self.publish()

    def set_quote(self, con_id: int, quote: Quote | None) -> None:
        overrides = getattr(self.quotes.provider, "overrides", None)
        if overrides is None:
            raise TypeError("custom quote provider has no overrides")
        overrides[int(con_id)] = quote
        self.publish()
