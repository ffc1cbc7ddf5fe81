"""Contract requests: reqContractDetails (with TWS's BAG and ambiguity answers) and reqSecDefOptParams."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from .clock import ServerClock
from .contracts import BagContractError, ContractSpec, ContractUniverse
from .outbox import Outbox
from .sessions import Session
from .settings import Settings
from .wire import OUT, FieldReader, fmt_float, read_contract

MSG_NO_SECDEF = "No security definition has been found for the request"


def ambiguous(symbol: str) -> str:
    return f"The contract description specified for {symbol} is ambiguous."


def details_exchange(spec: ContractSpec, requested: str) -> str:
    requested = (requested or "").upper()
    if requested and (requested == "SMART" or requested in spec.valid_exchanges.split(",")):
        return requested
    return spec.exchange


def _session_hours(spec: ContractSpec, today: dt.date) -> str:
    """Three days of hours: futures 17:00 the day before to 16:00, everything else 09:30-16:15."""
    def day(i: int) -> str:
        return f"{today + dt.timedelta(days=i):%Y%m%d}"

    if spec.sec_type == "FUT":
        return ";".join(f"{day(i - 1)}:1700-{day(i)}:1600" for i in range(3))
    return ";".join(f"{day(i)}:0930-{day(i)}:1615" for i in range(3))


class ContractDetails:
    def __init__(self, settings: Settings, clock: ServerClock, universe: ContractUniverse, outbox: Outbox,
                 spx_level: Callable[[], float | None]):
        self.settings = settings
        self.clock = clock
        self.universe = universe
        self.outbox = outbox
        self.spx_level = spx_level  # the default provider's SPX, which centres the strike list

    def details_fields(self, req_id: int, spec: ContractSpec, exchange: str) -> list:
        if spec.sec_type in ("OPT", "FUT"):
            last_times = f"{spec.last_trade} {spec.last_trade_time} {spec.time_zone}".strip()
        else:
            last_times = ""
        hours = _session_hours(spec, self.clock.local().date())
        return [
            OUT.CONTRACT_DATA, req_id, spec.symbol, spec.sec_type, last_times,
            fmt_float(spec.strike) if spec.sec_type == "OPT" else "0", spec.right, exchange, spec.currency,
            spec.local_symbol, spec.market_name, spec.trading_class, spec.con_id, fmt_float(spec.min_tick),
            spec.multiplier, spec.order_types, spec.valid_exchanges, 1, spec.under_con_id, spec.long_name,
            spec.primary_exchange, spec.contract_month, "", "", "", spec.time_zone, hours, hours, "", "", 0,
            1, spec.under_symbol, spec.under_sec_type, spec.market_rule_ids, spec.last_trade,
            "ETF" if spec.sec_type == "STK" else "",
            "1", "1", "1",
        ]

    def req_contract_details(self, conn: Session, r: FieldReader) -> None:
        r.int()  # version
        req_id = r.int()
        q = read_contract(r)
        q["includeExpired"] = r.bool()
        r.str()  # secIdType
        r.str()  # secId
        if conn.version >= 176 and r.remaining():
            r.str()  # issuerId
        try:
            specs = self.universe.resolve(q)
        except BagContractError:
            # TWS answers a BAG details request with 321 and never sends contractDetailsEnd
            self.outbox.error(conn, req_id, 321, "Error validating request.-'bN' : cause - "
                              "Invalid security type for contract details request: BAG")
            return
        if not specs:
            self.outbox.error(conn, req_id, 200, MSG_NO_SECDEF)
            return
        for spec in specs:
            self.outbox.send(conn, self.details_fields(req_id, spec, details_exchange(spec, q["exchange"])))
        self.outbox.send(conn, [OUT.CONTRACT_DATA_END, 1, req_id])

    def req_sec_def_opt_params(self, conn: Session, r: FieldReader) -> None:
        req_id = r.int()
        symbol = r.str()
        r.str()  # futFopExchange
        r.str()  # underlyingSecType
        und_con_id = r.int()
        rows = self.universe.option_chains(symbol, spx_level=self.spx_level(),
                                           exchanges=self.settings.chain_exchanges)
        for row in rows:
            if und_con_id and row["underlyingConId"] != und_con_id:
                continue
            exps, strikes = row["expirations"], row["strikes"]
            self.outbox.send(conn, [OUT.SECURITY_DEFINITION_OPTION_PARAMETER, req_id, row["exchange"],
                                    row["underlyingConId"], row["tradingClass"], row["multiplier"],
                                    len(exps), *exps, len(strikes), *[fmt_float(k) for k in strikes]])
        self.outbox.send(conn, [OUT.SECURITY_DEFINITION_OPTION_PARAMETER_END, req_id])
