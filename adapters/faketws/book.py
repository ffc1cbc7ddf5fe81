"""The fake server's account: orders, executions, positions, cash and account values. Pure
bookkeeping: the server decides when to fill and what to send."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from .clock import ET, UTC
from .contracts import BAG_CONID, ContractSpec, ContractUniverse
from .fills import allocate_leg_prices
from .ids import exec_id_stem, unique_id
from .orders import ExecutionRecord, OrderRecord
from .quotes import Quote, combo_quote


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
        tz: dt.tzinfo = ET,
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
        self.tz = tz  # the TWS zone, whose midnight starts a trading day
        self._max_order_ids: dict[int, int] = {}  # per clientId: survives the orders forgotten overnight
        self._day_start: dt.datetime | None = None

    # ------------------------------------------------------------ ids
    @staticmethod
    def next_perm_id() -> int:
        return unique_id()

    def next_valid_id(self, client_id: int | None) -> int:
        """1 + the highest order id this client has used."""
        return self._max_order_ids.get(client_id, 0) + 1  # type: ignore[arg-type]

    # ------------------------------------------------------------ the trading day
    def day_start(self) -> dt.datetime:
        """Today's midnight in the TWS zone."""
        return self.clock().astimezone(self.tz).replace(hour=0, minute=0, second=0, microsecond=0)

    def roll_day(self) -> None:
        """At the first call of a new day (TWS zone), forget what TWS no longer reports: executions
        and finished orders from before midnight, closed positions, and expired contracts that nothing
        holds. Cheap on other calls. This keeps the account's memory flat however many days and
        sessions a server lives through."""
        start = self.day_start()
        if start == self._day_start:
            return
        self._day_start = start
        self.executions = [e for e in self.executions if e.time >= start]
        for key, rec in list(self.orders.items()):
            if rec.is_done and (rec.done_at or rec.created or start) < start:
                del self.orders[key]
        for con_id in [c for c, p in self.positions.items() if p.qty == 0]:
            del self.positions[con_id]
        held = set(self.positions)
        for rec in self.orders.values():
            held.update(leg.spec.con_id for leg in rec.legs)
            if rec.spec is not None:
                held.add(rec.spec.con_id)
        self.universe.forget_expired(start.date(), keep=held)

    # ------------------------------------------------------------ orders
    def add(self, order: OrderRecord) -> None:
        self.orders[(order.client_id, order.order_id)] = order
        cid = order.client_id
        self._max_order_ids[cid] = max(self._max_order_ids.get(cid, 0), order.order_id)

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
        self.roll_day()
        now = self.clock()
        base = exec_id_stem()
        prev_filled = order.filled
        order.filled = prev_filled + qty
        order.avg_fill_price = (order.avg_fill_price * prev_filled + price * qty) / order.filled
        order.last_fill_price = price
        order.status = "Filled" if order.remaining <= 1e-9 else "Submitted"
        if order.status == "Filled":
            order.completed_time = now.astimezone(ET).strftime("%Y%m%d %H:%M:%S America/New_York")
            order.done_at = now
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
