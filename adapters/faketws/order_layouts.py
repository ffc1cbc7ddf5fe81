"""The TWS wire layouts of order messages, both ways: placeOrder decoded into a dict; openOrder,
completedOrder, orderStatus, execDetails and commissionReport encoded from the server's records.
The layouts follow server version 178 (176/177 where they differ)."""

from __future__ import annotations

import logging

from . import wire
from .contracts import BAG_CONID
from .orders import ExecutionRecord, OrderRecord
from .wire import OUT, FieldReader, fmt_float, read_contract

log = logging.getLogger("alvh.faketws")


def parse_place_order(r: FieldReader, version: int) -> dict:
    """placeOrder after its message id, as far as the server needs it (order_id, contract, action,
    quantities, prices, refs, combo legs, whatIf)."""
    o: dict = {"order_id": r.int()}
    o["contract"] = read_contract(r)
    r.str()  # secIdType
    r.str()  # secId
    o["action"] = r.str()
    o["total_qty"] = r.float(0.0) or 0.0
    o["order_type"] = r.str()
    o["lmt_price"] = r.float()
    o["aux_price"] = r.float()
    o["tif"] = r.str()
    o["oca_group"] = r.str()
    o["account"] = r.str()
    o["open_close"] = r.str()
    o["origin"] = r.int()
    o["order_ref"] = r.str()
    o["transmit"] = r.bool()
    o["parent_id"] = r.int()
    r.bool()  # blockOrder
    r.bool()  # sweepToFill
    r.int()  # displaySize
    r.int()  # triggerMethod
    o["outside_rth"] = r.bool()
    r.bool()  # hidden
    legs, prices, params = [], [], []
    if o["contract"]["secType"].upper() == "BAG":
        for _ in range(r.int()):
            legs.append({"conId": r.int(), "ratio": r.int(), "action": r.str(), "exchange": r.str(),
                         "openClose": r.int(), "shortSaleSlot": r.int(), "designatedLocation": r.str(),
                         "exemptCode": r.int(-1)})
        for _ in range(r.int()):
            prices.append(r.float())
        for _ in range(r.int()):
            params.append((r.str(), r.str()))
    o["legs"], o["order_combo_prices"], o["smart_combo_params"] = legs, prices, params
    o["what_if"] = False
    o["good_till_date"] = ""
    o["good_after_time"] = ""
    try:
        r.str()  # sharesAllocation
        r.float()  # discretionaryAmt
        o["good_after_time"] = r.str()
        o["good_till_date"] = r.str()
        r.skip(3)  # faGroup, faMethod, faPercentage
        if version < 177:
            r.skip(1)  # faProfile
        r.skip(1)  # modelCode
        r.skip(4)  # shortSaleSlot, designatedLocation, exemptCode, ocaType
        r.skip(3)  # rule80A, settlingFirm, allOrNone
        r.skip(2)  # minQty, percentOffset
        r.skip(3)  # eTradeOnly, firmQuoteOnly, nbboPriceCap
        r.skip(1)  # auctionStrategy
        r.skip(5)  # startingPrice, stockRefPrice, delta, stockRangeLower, stockRangeUpper
        r.skip(3)  # overridePercentageConstraints, volatility, volatilityType
        dn_type = r.str()
        r.skip(1)  # deltaNeutralAuxPrice
        if dn_type:
            r.skip(8)
        r.skip(4)  # continuousUpdate, referencePriceType, trailStopPrice, trailingPercent
        r.skip(2)  # scaleInitLevelSize, scaleSubsLevelSize
        incr = r.float()
        if incr is not None and 0 < incr:
            r.skip(7)
        r.skip(3)  # scaleTable, activeStartTime, activeStopTime
        if r.str():  # hedgeType
            r.skip(1)
        r.skip(4)  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
        if r.bool():
            r.skip(3)
        if r.str():  # algoStrategy
            r.skip(2 * r.int())
        r.skip(1)  # algoId
        o["what_if"] = r.bool()
    except (IndexError, ValueError):
        log.debug("FakeTWS: placeOrder tail not parsed (%s fields)", len(r.fields))
    return o


def order_contract_fields(rec: OrderRecord) -> list:
    if rec.is_bag:
        c = rec.contract
        return [BAG_CONID, c.get("symbol", ""), "BAG", "", "0", "", "", c.get("exchange") or "SMART",
                c.get("currency") or "USD", "28812380", "COMB"]
    spec = rec.spec
    assert spec is not None
    exch = rec.contract.get("exchange") or spec.exchange
    return [spec.con_id, spec.symbol, spec.sec_type, spec.last_trade,
            fmt_float(spec.strike) if spec.sec_type == "OPT" else "0", spec.right, spec.multiplier, exch,
            spec.currency, spec.local_symbol, spec.trading_class]


def legs_fields(rec: OrderRecord) -> list:
    out: list = [len(rec.legs)]
    for leg in rec.legs:
        out += [leg.spec.con_id, leg.ratio, leg.action, leg.exchange or "SMART", leg.open_close,
                leg.short_sale_slot, leg.designated_location, leg.exempt_code]
    out.append(len(rec.order_combo_prices))
    out += [fmt_float(x) for x in rec.order_combo_prices]
    out.append(len(rec.smart_combo_params))
    for tag, value in rec.smart_combo_params:
        out += [tag, value]
    return out


def open_order_fields(rec: OrderRecord, version: int, what_if_state: dict | None = None) -> list:
    combo_descr = ",".join(f"{leg.spec.con_id}|{leg.ratio if leg.action == 'BUY' else -leg.ratio}"
                           for leg in rec.legs)
    f: list = [OUT.OPEN_ORDER, rec.order_id]
    f += order_contract_fields(rec)
    f += [rec.action, fmt_float(rec.total_qty), rec.order_type, fmt_float(rec.lmt_price),
          fmt_float(rec.aux_price), rec.tif, rec.oca_group, rec.account, rec.open_close or "O", rec.origin,
          rec.order_ref, rec.client_id, rec.perm_id, rec.outside_rth, False, "0", rec.good_after_time, "",
          "", "", ""]
    if version < 177:
        f += [""]  # faProfile
    f += ["", rec.good_till_date, "", "", "", 0, "", -1, 0, "", "", "", "", "", 0, False, False, False, "",
          3, False, False, "", rec.parent_id, 0, "", "", "", ""]
    f += [False, "", "", "", "", "", combo_descr]
    f += legs_fields(rec)
    f += ["", "", ""]  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement
    f += [""]  # hedgeType
    f += [False, "", "", False, False]  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld, dnc
    f += [""]  # algoStrategy
    st = what_if_state or {}

    def sv(k):
        return fmt_float(st[k]) if k in st else ""

    status = "PreSubmitted" if what_if_state else rec.status
    f += [False, bool(what_if_state), status,
          sv("initMarginBefore"), sv("maintMarginBefore"), sv("equityWithLoanBefore"),
          sv("initMarginChange"), sv("maintMarginChange"), sv("equityWithLoanChange"),
          sv("initMarginAfter"), sv("maintMarginAfter"), sv("equityWithLoanAfter"),
          sv("commission"), sv("minCommission"), sv("maxCommission"), "USD" if st else "", "",
          False, False]
    f += [0]  # conditions
    f += ["", "", "", "", "", "", "", 0, "", "", "", "", False, False, False, False]
    f += ["", "", False]  # duration, postToAts, autoCancelParent
    f += ["", "", "", "", ""]  # minTradeQty, minCompeteSize, competeAgainstBestOffset, midOffsets
    return f


def completed_order_fields(rec: OrderRecord, version: int) -> list:
    combo_descr = ",".join(f"{leg.spec.con_id}|{leg.ratio if leg.action == 'BUY' else -leg.ratio}"
                           for leg in rec.legs)
    f: list = [OUT.COMPLETED_ORDER]
    f += order_contract_fields(rec)
    f += [rec.action, fmt_float(rec.total_qty), rec.order_type, fmt_float(rec.lmt_price),
          fmt_float(rec.aux_price), rec.tif, rec.oca_group, rec.account, rec.open_close or "O", rec.origin,
          rec.order_ref, rec.perm_id, rec.outside_rth, False, "0", rec.good_after_time, "", "", ""]
    if version < 177:
        f += [""]
    f += ["", rec.good_till_date, "", "", "", 0, "", -1, "", "", "", "", "", 0, False, False, "", 3, 0,
          "", "", "", ""]
    f += [False, "", "", "", combo_descr]
    f += legs_fields(rec)
    f += ["", "", ""]
    f += [""]  # hedgeType
    f += ["", "", False, False]  # clearingAccount, clearingIntent, notHeld, dnc
    f += [""]  # algoStrategy
    f += [False, rec.status, False, False]
    f += [0]  # conditions
    f += ["", "", "", False, False, "", fmt_float(rec.filled), 0, False, "", False, False, 0,
          rec.completed_time, rec.completed_status]
    f += ["", "", "", "", ""]
    return f


def order_status_fields(rec: OrderRecord) -> list:
    return [OUT.ORDER_STATUS, rec.order_id, rec.status, fmt_float(rec.filled), fmt_float(rec.remaining),
            fmt_float(rec.avg_fill_price), rec.perm_id, rec.parent_id, fmt_float(rec.last_fill_price),
            rec.client_id, rec.why_held, "0"]


def exec_fields(req_id: int, ex: ExecutionRecord, version: int, tws_time: str) -> list:
    c = ex.contract
    rec = ex.order
    f = [OUT.EXECUTION_DATA, req_id, rec.order_id, c["conId"], c["symbol"], c["secType"],
         c.get("lastTradeDateOrContractMonth", ""),
         fmt_float(c.get("strike") or 0.0) if c["secType"] == "OPT" else "0", c.get("right", ""),
         c.get("multiplier", ""), c.get("exchange", ""), c.get("currency") or "USD", c.get("localSymbol", ""),
         c.get("tradingClass", ""), ex.exec_id, tws_time, ex.account, ex.exchange, ex.side,
         fmt_float(ex.shares), fmt_float(ex.price), rec.perm_id, rec.client_id, 0, fmt_float(ex.cum_qty),
         fmt_float(ex.avg_price), rec.order_ref, "", "", "", ex.liquidity]
    if version >= 178:
        f.append(False)  # pendingPriceRevision
    return f


def commission_fields(ex: ExecutionRecord) -> list:
    realized = fmt_float(ex.realized_pnl) if ex.realized_pnl is not None else wire.UNSET_DOUBLE_STR
    comm = 0.0 if ex.combo_level else ex.commission
    return [OUT.COMMISSION_REPORT, 1, ex.exec_id, fmt_float(comm), "USD", realized, wire.UNSET_DOUBLE_STR, ""]
