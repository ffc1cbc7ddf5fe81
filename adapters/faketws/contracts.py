"""What the fake server can describe: contract specs, deterministic conIds, and the universe of SPX and
VIX indices, VX futures, SPX/SPXW and VIX options and a few VIX ETPs. Lookups behave like TWS contract
details: every contract that matches all the given fields comes back, so an under-specified request
(an SPX option on a 3rd Friday without tradingClass) yields several matches."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from .clock import ET
from .expiries import MONTH_CODES, add_months, parse_yyyymmdd, third_friday, vx_expiry
from .ticks import on_tick, round_to_tick

SPX_CONID = 416904
VIX_CONID = 13455763
BAG_CONID = 28812380  # what TWS reports as the conId of any BAG contract

EPS = 1e-9


@dataclass
class ContractSpec:
    con_id: int
    symbol: str
    sec_type: str
    last_trade: str = ""  # YYYYMMDD for FUT/OPT
    strike: float = 0.0
    right: str = ""
    multiplier: str = ""
    exchange: str = ""
    primary_exchange: str = ""
    currency: str = "USD"
    local_symbol: str = ""
    trading_class: str = ""
    long_name: str = ""
    min_tick: float = 0.01
    under_con_id: int = 0
    under_symbol: str = ""
    under_sec_type: str = ""
    contract_month: str = ""
    valid_exchanges: str = ""
    order_types: str = "ACTIVETIM,AD,ADJUST,ALERT,ALLOC,AVGCOST,BASKET,COND,CONDORDER,DAY,DEACT,DEACTDIS,GAT,GTC,GTD,LMT,MKT,NONALGO,OCA,SCALE,SCALERST,STP,STPLMT,TRAIL,WHATIF"
    market_name: str = ""
    time_zone: str = "US/Eastern"
    last_trade_time: str = ""
    settle: str = ""  # "AM" / "PM" for options & futures
    expiry: dt.date | None = None
    trading_hours: str = ""
    liquid_hours: str = ""
    market_rule_ids: str = "26"

    @property
    def mult(self) -> float:
        try:
            return float(self.multiplier) if self.multiplier else 1.0
        except ValueError:
            return 1.0

    def fields(self, exchange: str | None = None) -> dict:
        """The ``contract_fields`` dict handed to a QuoteProvider (ib_async names)."""
        return {
            "conId": self.con_id,
            "symbol": self.symbol,
            "secType": self.sec_type,
            "lastTradeDateOrContractMonth": self.last_trade,
            "strike": self.strike,
            "right": self.right,
            "multiplier": self.multiplier,
            "exchange": exchange if exchange is not None else self.exchange,
            "primaryExchange": self.primary_exchange,
            "currency": self.currency,
            "localSymbol": self.local_symbol,
            "tradingClass": self.trading_class,
        }


def deterministic_con_id(*parts) -> int:
    key = "|".join(str(p) for p in parts).encode()
    h = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")
    return 100_000_000 + h % 800_000_000


def occ_symbol(root: str, expiry: dt.date, right: str, strike: float) -> str:
    return f"{root:<6}{expiry:%y%m%d}{right}{round(strike * 1000):08d}"


class BagContractError(ValueError):
    """Contract details were requested for a BAG (TWS answers error 321)."""


DEFAULT_ETPS: dict[str, tuple[str, str, float]] = {
    # symbol: (primaryExchange, long name, default price)
    "VIXY": ("ARCA", "PROSHARES VIX SHORT-TERM FUTU", 14.50),
    "VIXM": ("ARCA", "PROSHARES VIX MID-TERM FUTURE", 15.20),
    "VXX": ("ARCA", "IPATH SERIES B S&P 500 VIX SH", 42.00),
}


class ContractUniverse:
    """Everything FakeTWS can describe.  Lookups behave like TWS contract details:
    every contract matching all the given fields is returned, so an under-specified
    request (SPX option on a 3rd Friday without tradingClass) yields several matches."""

    INDEX_EXCHANGES = ("", "CBOE", "SMART")
    OPT_EXCHANGES = ("", "SMART", "CBOE")
    FUT_EXCHANGES = ("", "CFE")
    STK_EXCHANGES = ("", "SMART", "ARCA")

    def __init__(self, clock: Callable[[], dt.datetime], etps: dict | None = None, spx_level: float = 5000.0):
        self.clock = clock
        self.etps = dict(DEFAULT_ETPS if etps is None else etps)
        self.spx_level = spx_level
        self._registry: dict[int, ContractSpec] = {}
        self.spx = self._register(
            ContractSpec(
                SPX_CONID, "SPX", "IND", exchange="CBOE", currency="USD", local_symbol="SPX",
                long_name="S&P 500 Stock Index", min_tick=0.01, market_name="SPX",
                valid_exchanges="CBOE", order_types="", market_rule_ids="",
            )
        )
        self.vix = self._register(
            ContractSpec(
                VIX_CONID, "VIX", "IND", exchange="CBOE", currency="USD", local_symbol="VIX",
                long_name="CBOE Volatility Index", min_tick=0.01, market_name="VIX",
                valid_exchanges="CBOE", order_types="", market_rule_ids="",
            )
        )
        for sym, (prim, name, _px) in self.etps.items():
            self._register(
                ContractSpec(
                    deterministic_con_id(sym, "STK", prim), sym, "STK", exchange="SMART",
                    primary_exchange=prim, local_symbol=sym, trading_class=sym, long_name=name,
                    min_tick=0.01, market_name=sym, valid_exchanges="SMART,ARCA,NYSE,BATS,ISLAND,IEX",
                )
            )

    # ------------------------------------------------------------ registry
    def _register(self, spec: ContractSpec) -> ContractSpec:
        existing = self._registry.get(spec.con_id)
        if existing is not None:
            return existing
        self._registry[spec.con_id] = spec
        return spec

    def adopt(self, spec: ContractSpec) -> ContractSpec:
        """A spec from another server instance (conIds are the same everywhere): this universe's
        own object for that conId, registering the spec if it is new here."""
        return self._register(spec)

    def forget_expired(self, today: dt.date, keep: set[int]) -> int:
        """Drop specs that expired before ``today`` unless their conId is in ``keep`` (held or in a
        working order); they are rebuilt on demand with the same conId. Returns how many."""
        gone = [c for c, s in self._registry.items() if s.expiry is not None and s.expiry < today and c not in keep]
        for c in gone:
            del self._registry[c]
        return len(gone)

    def __len__(self) -> int:
        return len(self._registry)

    def get(self, con_id: int) -> ContractSpec | None:
        return self._registry.get(int(con_id or 0))

    def today(self) -> dt.date:
        return self.clock().astimezone(ET).date()

    # ------------------------------------------------------------ builders
    def vx_future(self, expiry: dt.date) -> ContractSpec:
        y, m = expiry.year, expiry.month
        con_id = deterministic_con_id("VIX", "FUT", expiry.strftime("%Y%m%d"), "VX")
        spec = self._registry.get(con_id)
        if spec:
            return spec
        return self._register(
            ContractSpec(
                con_id, "VIX", "FUT", last_trade=expiry.strftime("%Y%m%d"), multiplier="1000",
                exchange="CFE", local_symbol=f"VX{MONTH_CODES[m - 1]}{y % 10}", trading_class="VX",
                long_name="CBOE Volatility Index", min_tick=0.05, under_con_id=VIX_CONID,
                under_symbol="VIX", under_sec_type="IND", contract_month=f"{y:04d}{m:02d}",
                valid_exchanges="CFE", market_name="VX", last_trade_time="08:00", settle="AM",
                expiry=expiry, time_zone="US/Central", market_rule_ids="1178",
            )
        )

    def option(self, symbol: str, trading_class: str, expiry: dt.date, right: str, strike: float) -> ContractSpec:
        date = expiry.strftime("%Y%m%d")
        con_id = deterministic_con_id(symbol, "OPT", date, f"{strike:.4f}", right, trading_class)
        spec = self._registry.get(con_id)
        if spec:
            return spec
        if symbol == "SPX":
            under, settle = SPX_CONID, ("AM" if trading_class == "SPX" else "PM")
            ltt = "09:30" if settle == "AM" else "16:00"
            long_name = "S&P 500 Stock Index"
        else:
            under, settle, ltt = VIX_CONID, "AM", "09:30"
            long_name = "CBOE Volatility Index"
        return self._register(
            ContractSpec(
                con_id, symbol, "OPT", last_trade=date, strike=float(strike), right=right,
                multiplier="100", exchange="SMART", local_symbol=occ_symbol(trading_class, expiry, right, strike),
                trading_class=trading_class, long_name=long_name, min_tick=0.05, under_con_id=under,
                under_symbol=symbol, under_sec_type="IND", contract_month=f"{expiry:%Y%m}",
                valid_exchanges="SMART,CBOE", market_name=trading_class, last_trade_time=ltt,
                settle=settle, expiry=expiry, market_rule_ids="110,110",
            )
        )

    # ------------------------------------------------------------ expiries
    def spx_expiry_ok(self, trading_class: str, d: dt.date) -> bool:
        if d.weekday() >= 5:
            return False
        if trading_class == "SPX":
            return d == third_friday(d.year, d.month)
        return True  # SPXW: dailies Mon-Fri

    def vix_expiry_ok(self, d: dt.date) -> bool:
        return d == vx_expiry(d.year, d.month)

    def vx_expiries(self, n: int = 9, include_expired: bool = False) -> list[dt.date]:
        today = self.today()
        out = []
        y, m = today.year, today.month
        if include_expired:
            y, m = add_months(y, m, -12)
        while len(out) < n + (12 if include_expired else 0):
            e = vx_expiry(y, m)
            if include_expired or e >= today:
                out.append(e)
            y, m = add_months(y, m, 1)
        return out

    # ------------------------------------------------------------ resolution
    def resolve(self, q: dict) -> list[ContractSpec]:
        """Return every spec matching the request fields (ib_async field names)."""
        sec_type = (q.get("secType") or "").upper()
        if sec_type == "BAG":
            raise BagContractError("BAG")
        con_id = int(q.get("conId") or 0)
        if con_id:
            spec = self.get(con_id)
            if spec is None or (sec_type and spec.sec_type != sec_type):
                return []
            return [spec]
        symbol = (q.get("symbol") or "").upper()
        currency = (q.get("currency") or "").upper()
        if currency and currency != "USD":
            return []
        exchange = (q.get("exchange") or "").upper()
        local = q.get("localSymbol") or ""
        tclass = (q.get("tradingClass") or "").upper()
        mult = q.get("multiplier") or ""
        out: list[ContractSpec] = []
        if sec_type in ("", "IND") and symbol in ("SPX", "VIX") and exchange in self.INDEX_EXCHANGES:
            out.append(self.spx if symbol == "SPX" else self.vix)
        if sec_type in ("", "STK") and symbol in self.etps:
            prim = (q.get("primaryExchange") or "").upper()
            if exchange in self.STK_EXCHANGES and prim in ("", self.etps[symbol][0]):
                out += [s for s in self._registry.values() if s.sec_type == "STK" and s.symbol == symbol]
        is_vx = symbol == "VIX" or (not symbol and local.startswith("VX"))
        if sec_type == "FUT" and is_vx and exchange in self.FUT_EXCHANGES:
            out += self._resolve_vx(q)
        if sec_type == "OPT" and symbol in ("SPX", "VIX") and exchange in self.OPT_EXCHANGES:
            out += self._resolve_option(symbol, q)
        # generic filters
        if local:
            out = [s for s in out if s.local_symbol == local]
        if tclass:
            out = [s for s in out if s.trading_class == tclass]
        if mult:
            try:
                out = [s for s in out if abs(s.mult - float(mult)) < EPS]
            except ValueError:
                out = []
        return out

    def _resolve_vx(self, q: dict) -> list[ContractSpec]:
        date = q.get("lastTradeDateOrContractMonth") or ""
        include_expired = bool(q.get("includeExpired"))
        local = q.get("localSymbol") or ""
        cands = self.vx_expiries(include_expired=include_expired)
        if len(date) >= 8:
            d = parse_yyyymmdd(date)
            cands = [e for e in cands if e == d]
        elif len(date) == 6:
            cands = [e for e in cands if e.strftime("%Y%m") == date]
        elif local and len(local) >= 4 and local[2] in MONTH_CODES:
            m = MONTH_CODES.index(local[2]) + 1
            yd = int(local[3]) if local[3].isdigit() else -1
            cands = [e for e in cands if e.month == m and e.year % 10 == yd]
        return [self.vx_future(e) for e in cands]

    def _resolve_option(self, symbol: str, q: dict) -> list[ContractSpec]:
        date = q.get("lastTradeDateOrContractMonth") or ""
        strike = float(q.get("strike") or 0.0)
        right = (q.get("right") or "").upper()[:1]
        tclass = (q.get("tradingClass") or "").upper()
        if strike <= 0:
            return []
        grid = 5.0 if symbol == "SPX" else 0.5
        if not on_tick(strike, grid):
            return []
        classes = ["SPX", "SPXW"] if symbol == "SPX" else ["VIX"]
        if tclass:
            classes = [c for c in classes if c == tclass]
        rights = [right] if right in ("C", "P") else ["C", "P"]
        if right and right not in ("C", "P"):
            return []
        today = self.today()
        if len(date) >= 8:
            d = parse_yyyymmdd(date)
            dates = [d] if d else []
        elif len(date) == 6:
            try:
                y, m = int(date[:4]), int(date[4:6])
                first = dt.date(y, m, 1)
            except ValueError:
                return []
            dates = []
            d = first
            while d.month == m:
                dates.append(d)
                d += dt.timedelta(days=1)
        else:
            return []
        out = []
        for c in classes:
            for d in dates:
                if d < today:
                    continue
                ok = self.spx_expiry_ok(c, d) if symbol == "SPX" else self.vix_expiry_ok(d)
                if not ok:
                    continue
                for r in rights:
                    out.append(self.option(symbol, c, d, r, strike))
        return out

    # ------------------------------------------------------------ option chains
    def option_chains(self, symbol: str, spx_level: float | None = None, exchanges=("SMART",)) -> list[dict]:
        symbol = symbol.upper()
        today = self.today()
        rows = []
        if symbol == "SPX":
            lvl = spx_level or self.spx_level
            lo = int(round_to_tick(lvl * 0.5, 5.0))
            hi = int(round_to_tick(lvl * 1.5, 5.0))
            strikes = [float(k) for k in range(lo, hi + 1, 5)]
            monthly, weekly = [], []
            y, m = today.year, today.month
            for i in range(13):
                yy, mm = add_months(y, m, i)
                tf = third_friday(yy, mm)
                if tf >= today:
                    monthly.append(tf)
            d = today
            end_daily = today + dt.timedelta(days=60)
            end_weekly = today + dt.timedelta(days=366)
            while d <= end_weekly:
                if d.weekday() < 5 and (d <= end_daily or d.weekday() == 4):
                    weekly.append(d)
                d += dt.timedelta(days=1)
            for ex in exchanges:
                for tclass, exps in (("SPX", monthly), ("SPXW", weekly)):
                    rows.append({"exchange": ex, "underlyingConId": SPX_CONID, "tradingClass": tclass,
                                 "multiplier": "100", "expirations": [e.strftime("%Y%m%d") for e in exps],
                                 "strikes": strikes})
        elif symbol == "VIX":
            strikes = [x / 2 for x in range(18, 61)] + [float(k) for k in range(31, 81)]
            exps = [e.strftime("%Y%m%d") for e in self.vx_expiries(8)]
            for ex in exchanges:
                rows.append({"exchange": ex, "underlyingConId": VIX_CONID, "tradingClass": "VIX",
                             "multiplier": "100", "expirations": exps, "strikes": strikes})
        return rows

