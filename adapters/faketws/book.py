"""FakeTWS's simulated account: contract universe, quotes, orders, positions, executions.

Standalone on purpose: this module must not import the project's engine (the test
server has to stay an independent reference), nor ib_async (the server speaks the wire
protocol, it does not reuse the client's classes).

Pieces:
  * tiny Black-Scholes / Black-76 (``bs_price``, ``implied_vol``)
  * calendar helpers (third Friday, VX settlement Wednesday)
  * ``ContractSpec`` / ``ContractUniverse``: SPX & VIX indices, VX futures, SPX/SPXW and
    VIX options, VIXY/VIXM/VXX; deterministic conIds; ambiguity like real TWS
  * ``Quote`` and ``DefaultQuoteProvider`` (BS at a flat vol around SPX/VIX levels)
  * fill policies (``MarketableFill``, ``FillAll``, ``FillPartial``, ``Reject``, ``NeverFill``)
  * ``Book``: orders, executions, positions, cash, account values
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

UTC = dt.UTC
try:
    ET = ZoneInfo("US/Eastern")
except Exception:  # noqa: BLE001  # pragma: no cover - tzdata missing
    ET = UTC  # type: ignore[assignment]

SPX_CONID = 416904
VIX_CONID = 13455763
BAG_CONID = 28812380  # what TWS reports as the conId of any BAG contract

EPS = 1e-9


# =============================================================== Black-Scholes
def _ncdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _npdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


@dataclass
class Greeks:
    price: float
    delta: float
    gamma: float
    vega: float  # per 1 vol point (0.01)
    theta: float  # per calendar day


def bs_price(S: float, K: float, T: float, r: float, q: float, sigma: float, right: str) -> Greeks:
    """European option on a spot with continuous yield q (use q=r for Black-76 on a future)."""
    call = right.upper().startswith("C")
    if T <= 0 or sigma <= 0 or S <= 0:
        intrinsic = max(S - K, 0.0) if call else max(K - S, 0.0)
        delta = (1.0 if S > K else 0.0) if call else (-1.0 if S < K else 0.0)
        return Greeks(intrinsic, delta, 0.0, 0.0, 0.0)
    sq = sigma * math.sqrt(T)
    d1 = (math.log(S / K) + (r - q + 0.5 * sigma * sigma) * T) / sq
    d2 = d1 - sq
    dq = math.exp(-q * T)
    dr = math.exp(-r * T)
    if call:
        price = S * dq * _ncdf(d1) - K * dr * _ncdf(d2)
        delta = dq * _ncdf(d1)
        theta = -S * dq * _npdf(d1) * sigma / (2 * math.sqrt(T)) - r * K * dr * _ncdf(d2) + q * S * dq * _ncdf(d1)
    else:
        price = K * dr * _ncdf(-d2) - S * dq * _ncdf(-d1)
        delta = -dq * _ncdf(-d1)
        theta = -S * dq * _npdf(d1) * sigma / (2 * math.sqrt(T)) + r * K * dr * _ncdf(-d2) - q * S * dq * _ncdf(-d1)
    gamma = dq * _npdf(d1) / (S * sq)
    vega = S * dq * _npdf(d1) * math.sqrt(T)
    return Greeks(max(price, 0.0), delta, gamma, vega / 100.0, theta / 365.0)


def implied_vol(price: float, S: float, K: float, T: float, r: float, q: float, right: str) -> float | None:
    """Bisection implied vol; None when the price is outside the no-arbitrage band."""
    if price is None or T <= 0 or price <= 0:
        return None
    lo, hi = 1e-4, 5.0
    plo = bs_price(S, K, T, r, q, lo, right).price
    phi = bs_price(S, K, T, r, q, hi, right).price
    if not (plo - 1e-9 <= price <= phi + 1e-9):
        return None
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if bs_price(S, K, T, r, q, mid, right).price < price:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-7:
            break
    return 0.5 * (lo + hi)


# =============================================================== calendar helpers
def third_friday(year: int, month: int) -> dt.date:
    d = dt.date(year, month, 15)
    return d + dt.timedelta(days=(4 - d.weekday()) % 7)


def add_months(year: int, month: int, n: int) -> tuple[int, int]:
    m = month - 1 + n
    return year + m // 12, m % 12 + 1


def vx_expiry(year: int, month: int) -> dt.date:
    """VX future / VIX option settlement: the Wednesday 30 days before the next month's
    SPX monthly expiry (holiday adjustments ignored)."""
    ny, nm = add_months(year, month, 1)
    return third_friday(ny, nm) - dt.timedelta(days=30)


def parse_yyyymmdd(s: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(s[:8], "%Y%m%d").date()
    except (ValueError, TypeError):
        return None


MONTH_CODES = "FGHJKMNQUVXZ"


def round_to_tick(x: float, tick: float, mode: str = "nearest") -> float:
    n = x / tick
    if mode == "down":
        n = math.floor(n + 1e-9)
    elif mode == "up":
        n = math.ceil(n - 1e-9)
    else:
        n = round(n)
    return round(n * tick, 10)


def option_tick(price: float) -> float:
    """CBOE index option minimum tick: 0.05 below 3.00, 0.10 from 3.00."""
    return 0.05 if abs(price) < 3.0 - 1e-9 else 0.10


def on_tick(price: float, tick: float) -> bool:
    n = price / tick
    return abs(n - round(n)) < 1e-6


# =============================================================== contracts
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


# =============================================================== quotes
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
            S, sigma, q = self.spx, self.vol, self.div_yield
        elif sym == "VIX":
            settle = "09:30"
            S, sigma, q = self.vx_price(expiry), self.vix_vol, self.rate
        else:
            return None
        T = self.years_to(expiry, settle)
        g = bs_price(S, K, T, self.rate, q, sigma, right)
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


# =============================================================== orders & fills
@dataclass
class LegRecord:
    spec: ContractSpec
    ratio: int
    action: str
    exchange: str = "SMART"
    open_close: int = 0
    short_sale_slot: int = 0
    designated_location: str = ""
    exempt_code: int = -1

    @property
    def sign(self) -> int:
        """+1 if the leg is bought when the combo is bought."""
        return 1 if self.action.upper() == "BUY" else -1


WORKING = ("PendingSubmit", "PreSubmitted", "Submitted")
DONE = ("Filled", "Cancelled", "ApiCancelled", "Inactive")


@dataclass
class OrderRecord:
    client_id: int
    order_id: int
    perm_id: int
    contract: dict  # contract fields as the client sent them (echoed in openOrder)
    spec: ContractSpec | None  # single-contract orders
    legs: list[LegRecord]  # BAG orders
    action: str
    total_qty: float
    order_type: str
    lmt_price: float | None = None
    aux_price: float | None = None
    tif: str = "DAY"
    account: str = ""
    order_ref: str = ""
    oca_group: str = ""
    open_close: str = ""
    origin: int = 0
    transmit: bool = True
    parent_id: int = 0
    outside_rth: bool = False
    what_if: bool = False
    good_till_date: str = ""
    good_after_time: str = ""
    order_combo_prices: list = field(default_factory=list)
    smart_combo_params: list = field(default_factory=list)
    status: str = "PendingSubmit"
    filled: float = 0.0
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    why_held: str = ""
    created: dt.datetime | None = None
    completed_time: str = ""
    completed_status: str = ""
    policy_state: dict = field(default_factory=dict)
    executions: list = field(default_factory=list)

    @property
    def is_bag(self) -> bool:
        return bool(self.legs)

    @property
    def remaining(self) -> float:
        return max(self.total_qty - self.filled, 0.0)

    @property
    def is_working(self) -> bool:
        return self.status in WORKING

    @property
    def is_done(self) -> bool:
        return self.status in DONE

    @property
    def signed_side(self) -> int:
        return 1 if self.action.upper() == "BUY" else -1

    @property
    def symbol(self) -> str:
        return self.contract.get("symbol") or (self.spec.symbol if self.spec else "")


@dataclass
class ExecutionRecord:
    exec_id: str
    order: OrderRecord
    contract: dict  # fields for the execDetails contract part
    spec: ContractSpec | None  # None for the combo-level execution
    time: dt.datetime
    side: str  # BOT / SLD
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    exchange: str
    account: str
    commission: float = 0.0
    realized_pnl: float | None = None
    combo_level: bool = False
    liquidity: int = 1

    @property
    def sec_type(self) -> str:
        return self.contract.get("secType", "")


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


# =============================================================== positions & account
@dataclass
class PositionRecord:
    spec: ContractSpec
    qty: float = 0.0
    avg_cost: float = 0.0  # per unit, multiplier and commission included (TWS style)
    realized: float = 0.0


def default_commission(spec: ContractSpec, qty: float, price: float) -> float:
    q = abs(qty)
    if spec.sec_type == "OPT":
        return round(max(0.65 * q, 1.00), 2)
    if spec.sec_type == "FUT":
        return round(2.40 * q, 2)
    if spec.sec_type == "STK":
        return round(min(max(0.005 * q, 1.00), 0.01 * q * price), 2)
    return 0.0


class Book:
    """The account.  Pure bookkeeping: the server decides when to fill and what to send."""

    def __init__(
        self,
        universe: ContractUniverse,
        quote_fn: Callable[[ContractSpec], Quote | None],
        account: str = "DU1234567",
        cash: float = 1_000_000.0,
        commission_fn: Callable[[ContractSpec, float, float], float] = default_commission,
        clock: Callable[[], dt.datetime] | None = None,
    ):
        self.universe = universe
        self.quote_fn = quote_fn
        self.account = account
        self.cash = float(cash)
        self.realized = 0.0
        self.commission_fn = commission_fn
        self.clock = clock or (lambda: dt.datetime.now(UTC))
        self.orders: dict[tuple[int, int], OrderRecord] = {}
        self.executions: list[ExecutionRecord] = []
        self.positions: dict[int, PositionRecord] = {}
        self._perm_seq = 1_870_000_000
        self._exec_seq = 0
        self._exec_prefix = f"{int(self.clock().timestamp()) & 0xFFFFFFF:08x}"

    # ------------------------------------------------------------ ids
    def next_perm_id(self) -> int:
        self._perm_seq += 1
        return self._perm_seq

    def next_order_id(self) -> int:
        return max([oid for (_c, oid) in self.orders] + [0]) + 1

    def _next_exec_base(self) -> str:
        self._exec_seq += 1
        return f"0000e0d5.{self._exec_prefix}{self._exec_seq:04x}"

    # ------------------------------------------------------------ orders
    def add(self, order: OrderRecord) -> None:
        self.orders[(order.client_id, order.order_id)] = order

    def find(self, order_id: int | None = None, client_id: int | None = None, order_ref: str | None = None,
             perm_id: int | None = None) -> OrderRecord:
        cands = list(self.orders.values())
        if order_id is not None:
            cands = [o for o in cands if o.order_id == order_id]
        if client_id is not None:
            cands = [o for o in cands if o.client_id == client_id]
        if order_ref is not None:
            cands = [o for o in cands if o.order_ref == order_ref]
        if perm_id is not None:
            cands = [o for o in cands if o.perm_id == perm_id]
        if not cands:
            raise KeyError(f"no order matching order_id={order_id} client_id={client_id} order_ref={order_ref}")
        if len(cands) > 1:
            working = [o for o in cands if o.is_working]
            if len(working) == 1:
                return working[0]
            raise KeyError(f"ambiguous order lookup order_id={order_id}: pass client_id")
        return cands[0]

    def working_orders(self, client_id: int | None = None) -> list[OrderRecord]:
        return [o for o in self.orders.values() if o.is_working and (client_id is None or o.client_id == client_id)]

    def completed_orders(self) -> list[OrderRecord]:
        return [o for o in self.orders.values() if o.is_done]

    def order_quote(self, order: OrderRecord) -> Quote | None:
        if order.is_bag:
            return combo_quote(order.legs, [self.quote_fn(leg.spec) for leg in order.legs])
        return self.quote_fn(order.spec) if order.spec else None

    # ------------------------------------------------------------ fills
    def apply_fill(self, order: OrderRecord, qty: float, price: float) -> list[ExecutionRecord]:
        """Fill ``qty`` of ``order`` at ``price`` (the combo price for a BAG).  Updates the
        order, positions and cash; returns the new executions in TWS send order (for a BAG:
        one per leg, then the combo-level one)."""
        qty = min(float(qty), order.remaining)
        if qty <= 0:
            return []
        now = self.clock()
        base = self._next_exec_base()
        prev_filled = order.filled
        order.filled = prev_filled + qty
        order.avg_fill_price = (order.avg_fill_price * prev_filled + price * qty) / order.filled
        order.last_fill_price = price
        order.status = "Filled" if order.remaining <= 1e-9 else "Submitted"
        if order.status == "Filled":
            order.completed_time = now.astimezone(ET).strftime("%Y%m%d %H:%M:%S America/New_York")
            order.completed_status = f"Filled Size: {order.filled:g}"
        execs: list[ExecutionRecord] = []
        side_sign = order.signed_side
        if order.is_bag:
            mids = []
            for leg in order.legs:
                q = self.quote_fn(leg.spec)
                mids.append(q.mid if q is not None else None)
            prices = allocate_leg_prices(order.legs, mids, price)
            for i, (leg, lp) in enumerate(zip(order.legs, prices), start=1):
                s = side_sign * leg.sign
                leg_qty = qty * leg.ratio
                prior = sum(e.shares for e in order.executions if e.spec is leg.spec and not e.combo_level)
                prior_px = sum(e.shares * e.price for e in order.executions if e.spec is leg.spec and not e.combo_level)
                ex = ExecutionRecord(
                    exec_id=f"{base}.{i:02d}.01", order=order, contract=leg.spec.fields(exchange="CBOE"),
                    spec=leg.spec, time=now, side="BOT" if s > 0 else "SLD", shares=leg_qty, price=lp,
                    cum_qty=prior + leg_qty, avg_price=(prior_px + leg_qty * lp) / (prior + leg_qty),
                    exchange="CBOE", account=self.account,
                )
                self._book_execution(ex, s * leg_qty)
                execs.append(ex)
            bag_fields = dict(order.contract)
            bag_fields.update(conId=BAG_CONID, secType="BAG", exchange="SMART", lastTradeDateOrContractMonth="",
                              strike=0.0, right="", multiplier="", localSymbol="28812380", tradingClass="COMB",
                              currency=order.contract.get("currency") or "USD")
            ex = ExecutionRecord(
                exec_id=f"{base}.{len(order.legs) + 1:02d}.01", order=order, contract=bag_fields, spec=None,
                time=now, side="BOT" if side_sign > 0 else "SLD", shares=qty, price=price, cum_qty=order.filled,
                avg_price=order.avg_fill_price, exchange="SMART", account=self.account, combo_level=True,
            )
            order.executions.append(ex)
            self.executions.append(ex)
            execs.append(ex)
        else:
            spec = order.spec
            assert spec is not None
            exch = spec.primary_exchange or ("CFE" if spec.sec_type == "FUT" else "CBOE")
            ex = ExecutionRecord(
                exec_id=f"{base}.01.01", order=order, contract=spec.fields(exchange=exch), spec=spec, time=now,
                side="BOT" if side_sign > 0 else "SLD", shares=qty, price=price, cum_qty=order.filled,
                avg_price=order.avg_fill_price, exchange=exch, account=self.account,
            )
            self._book_execution(ex, side_sign * qty)
            execs.append(ex)
        return execs

    def _book_execution(self, ex: ExecutionRecord, signed_qty: float) -> None:
        spec = ex.spec
        assert spec is not None
        mult = spec.mult
        comm = self.commission_fn(spec, ex.shares, ex.price)
        ex.commission = comm
        self.cash -= signed_qty * ex.price * mult + comm
        pos = self.positions.get(spec.con_id)
        if pos is None:
            pos = self.positions[spec.con_id] = PositionRecord(spec)
        unit_cost = ex.price * mult
        realized = None
        if pos.qty == 0 or (pos.qty > 0) == (signed_qty > 0):
            new_qty = pos.qty + signed_qty
            pos.avg_cost = (pos.avg_cost * abs(pos.qty) + unit_cost * abs(signed_qty) + comm) / abs(new_qty)
            pos.qty = new_qty
        else:
            closing = min(abs(signed_qty), abs(pos.qty))
            direction = 1 if pos.qty > 0 else -1
            realized = (unit_cost - pos.avg_cost) * closing * direction - comm
            pos.realized += realized
            self.realized += realized
            new_qty = pos.qty + signed_qty
            if abs(new_qty) < 1e-9:
                pos.qty = 0.0
                pos.avg_cost = 0.0
            elif (new_qty > 0) != (pos.qty > 0):  # flipped
                pos.qty = new_qty
                pos.avg_cost = unit_cost
            else:
                pos.qty = new_qty
        ex.realized_pnl = realized
        ex.order.executions.append(ex)
        self.executions.append(ex)

    # ------------------------------------------------------------ account
    def mark(self, spec: ContractSpec) -> float | None:
        q = self.quote_fn(spec)
        if q is None:
            return None
        return q.mid

    def portfolio(self) -> list[dict]:
        out = []
        for pos in self.positions.values():
            mult = pos.spec.mult
            m = self.mark(pos.spec)
            if m is None:
                m = pos.avg_cost / mult if mult else 0.0
            value = pos.qty * m * mult
            unreal = value - pos.qty * pos.avg_cost
            out.append({"pos": pos, "mark": m, "value": value, "unrealized": unreal})
        return out

    def account_values(self) -> dict[str, float]:
        pf = self.portfolio()
        pos_value = sum(p["value"] for p in pf)
        gross = sum(abs(p["value"]) for p in pf)
        unreal = sum(p["unrealized"] for p in pf)
        netliq = self.cash + pos_value
        margin = 0.25 * gross  # placeholder, not a margin model
        excess = netliq - margin
        return {
            "NetLiquidation": netliq,
            "TotalCashValue": self.cash,
            "SettledCash": self.cash,
            "AccruedCash": 0.0,
            "BuyingPower": max(excess, 0.0) * 4.0,
            "EquityWithLoanValue": netliq,
            "PreviousDayEquityWithLoanValue": netliq,
            "GrossPositionValue": gross,
            "RegTEquity": netliq,
            "RegTMargin": margin,
            "SMA": max(excess, 0.0),
            "InitMarginReq": margin,
            "MaintMarginReq": margin,
            "AvailableFunds": excess,
            "ExcessLiquidity": excess,
            "Cushion": excess / netliq if netliq else 0.0,
            "FullInitMarginReq": margin,
            "FullMaintMarginReq": margin,
            "FullAvailableFunds": excess,
            "FullExcessLiquidity": excess,
            "UnrealizedPnL": unreal,
            "RealizedPnL": self.realized,
            "Leverage": gross / netliq if netliq else 0.0,
        }
