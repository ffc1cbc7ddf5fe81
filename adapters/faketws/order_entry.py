"""Orders in: placeOrder (checks, new orders, modifies, whatIf), cancels, and what the fill policy decides;
orders out: the status, execution and account messages a fill or a cancel sends. Also the server-side
order actions a test drives (fill now, cancel, re-match resting orders)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from .book import Book
from .clock import ServerClock
from .contract_details import MSG_NO_SECDEF, ambiguous
from .contracts import BagContractError, ContractSpec, ContractUniverse
from .fills import FillAll, FillDecision, FillPolicy, MarketableFill
from .order_layouts import open_order_fields, order_status_fields, parse_place_order
from .orders import ExecutionRecord, LegRecord, OrderRecord
from .outbox import Outbox
from .sessions import Session, Sessions
from .settings import Settings
from .ticks import price_on_tick
from .wire import FieldReader

log = logging.getLogger("alvh.faketws")

MSG_OFF_TICK = "The price does not conform to the minimum price variation for this contract."
ORDER_TYPES = ("LMT", "MKT")


def _on_tick(spec: ContractSpec | None, legs: list[LegRecord], price: float) -> bool:
    return price_on_tick(price, spec.sec_type if spec else "", [leg.spec.sec_type for leg in legs])


def _validation_error(cause: str) -> str:
    return f"Error validating request.-'bN' : cause - {cause}"


class OrderEntry:
    def __init__(self, settings: Settings, clock: ServerClock, universe: ContractUniverse, book: Book,
                 sessions: Sessions, outbox: Outbox,
                 send_execution: Callable[[Session, int, ExecutionRecord], None],
                 push_account_updates: Callable[[], None], fill_policy: FillPolicy | None = None):
        self.settings = settings
        self.clock = clock
        self.universe = universe
        self.book = book
        self.sessions = sessions
        self.outbox = outbox
        self.send_execution = send_execution
        self.push_account_updates = push_account_updates
        self.fill_policy: FillPolicy = fill_policy or MarketableFill()
        self.fill_policies_by_ref: dict[str, FillPolicy] = {}

    # ------------------------------------------------------------ placeOrder
    def place_order(self, conn: Session, r: FieldReader) -> None:
        p = parse_place_order(r, conn.version)
        oid = p["order_id"]
        conn.max_order_id = max(conn.max_order_id, oid)
        existing = self.book.orders.get((conn.client_id, oid))
        if existing is not None:
            if existing.is_done:
                self.outbox.error(conn, oid, 103, "Duplicate order id")
                return
            self._modify(conn, existing, p)
            return
        instrument = self._instrument(conn, oid, p)
        if instrument is None:
            return
        spec, legs = instrument
        otype = p["order_type"].upper()
        if not self._order_checks_pass(conn, oid, p, otype, spec, legs):
            return
        rec = OrderRecord(
            client_id=conn.client_id or 0, order_id=oid, perm_id=self.book.next_perm_id(), contract=p["contract"],
            spec=spec, legs=legs, action=p["action"].upper(), total_qty=p["total_qty"], order_type=otype,
            lmt_price=p["lmt_price"], aux_price=p["aux_price"], tif=p["tif"] or "DAY",
            account=p["account"] or self.settings.account, order_ref=p["order_ref"], oca_group=p["oca_group"],
            open_close=p["open_close"], origin=p["origin"], transmit=p["transmit"], parent_id=p["parent_id"],
            outside_rth=p["outside_rth"], what_if=p["what_if"], good_till_date=p["good_till_date"],
            good_after_time=p["good_after_time"], order_combo_prices=p["order_combo_prices"],
            smart_combo_params=p["smart_combo_params"], created=self.clock.now(),
        )
        if rec.what_if:
            self.outbox.send(conn, open_order_fields(rec, conn.version, what_if_state=self._what_if_state(rec)))
            return
        if not rec.transmit:
            rec.status = "PreSubmitted"
            rec.why_held = ""
            self.book.add(rec)
            self._notify_open_order(rec)
            return
        self._process_new_order(rec)

    def _instrument(self, conn: Session, oid: int, p: dict) -> tuple[ContractSpec | None, list[LegRecord]] | None:
        """The order's contract (single) or legs (BAG); None after sending the error."""
        c = p["contract"]
        if c["secType"].upper() == "BAG":
            if not p["legs"]:
                self.outbox.error(conn, oid, 321, _validation_error("Security type 'BAG' requires combo leg details."))
                return None
            legs: list[LegRecord] = []
            for lg in p["legs"]:
                ls = self.universe.get(lg["conId"])
                if ls is None:
                    self.outbox.error(conn, oid, 200, MSG_NO_SECDEF)
                    return None
                legs.append(LegRecord(ls, lg["ratio"] or 1, lg["action"].upper() or "BUY", lg["exchange"],
                                      lg["openClose"], lg["shortSaleSlot"], lg["designatedLocation"],
                                      lg["exemptCode"]))
            nonguaranteed = any(t == "NonGuaranteed" and v.strip().lower() in ("1", "true") for t, v in
                                p["smart_combo_params"])
            leg_prices = any(x is not None for x in p["order_combo_prices"])
            if len(legs) > 2 and (nonguaranteed or leg_prices):
                self.outbox.error(conn, oid, 10058, "FakeTWS: combos with more than two legs accept only a "
                                  "whole-order limit price (no per-leg prices, no NonGuaranteed).")
                return None
            return None, legs
        if not c["exchange"]:
            self.outbox.error(conn, oid, 321, _validation_error("Missing order exchange"))
            return None
        try:
            specs = self.universe.resolve(c)
        except BagContractError:
            specs = []
        if len(specs) != 1:
            self.outbox.error(conn, oid, 200, MSG_NO_SECDEF if not specs else ambiguous(c["symbol"]))
            return None
        return specs[0], []

    def _order_checks_pass(self, conn: Session, oid: int, p: dict, otype: str, spec: ContractSpec | None,
                           legs: list[LegRecord]) -> bool:
        if otype not in ORDER_TYPES:
            self.outbox.error(conn, oid, 387, f"Unsupported order type for this exchange and security type ({otype}).")
            return False
        if otype == "LMT" and p["lmt_price"] is None:
            self.outbox.error(conn, oid, 321, _validation_error("Missing limit price"))
            return False
        if p["total_qty"] <= 0:
            self.outbox.error(conn, oid, 434, "The order size cannot be zero.")
            return False
        if otype == "LMT" and self.settings.enforce_ticks and not _on_tick(spec, legs, p["lmt_price"]):
            self.outbox.error(conn, oid, 110, MSG_OFF_TICK)
            return False
        return True

    def _what_if_state(self, rec: OrderRecord) -> dict:
        """Margin fields for a whatIf answer: a combo's widest same-right wing width x 100 x qty."""
        if rec.legs:
            widths = []
            for right in ("C", "P"):
                ks = [leg.spec.strike for leg in rec.legs if leg.spec.right == right]
                if len(ks) >= 2:
                    widths.append(max(ks) - min(ks))
            margin = (max(widths) if widths else 10.0) * 100.0 * rec.total_qty
            comm = sum(self.book.commission_fn(leg.spec, rec.total_qty * leg.ratio, 1.0) for leg in rec.legs)
        else:
            q = self.book.order_quote(rec)
            px = (q.mid if q and q.mid is not None else rec.lmt_price) or 0.0
            assert rec.spec is not None
            margin = 0.25 * abs(px) * rec.spec.mult * rec.total_qty
            comm = self.book.commission_fn(rec.spec, rec.total_qty, px)
        eq = self.book.account_values()["EquityWithLoanValue"]
        init = self.book.account_values()["InitMarginReq"]
        return {"initMarginBefore": init, "maintMarginBefore": init, "equityWithLoanBefore": eq,
                "initMarginChange": margin, "maintMarginChange": margin, "equityWithLoanChange": 0.0,
                "initMarginAfter": init + margin, "maintMarginAfter": init + margin, "equityWithLoanAfter": eq,
                "commission": comm, "minCommission": comm, "maxCommission": comm}

    # ------------------------------------------------------------ the fill policy
    def policy_for(self, rec: OrderRecord) -> FillPolicy:
        return self.fill_policies_by_ref.get(rec.order_ref) or self.fill_policy

    def decide(self, rec: OrderRecord) -> FillDecision:
        policy = self.policy_for(rec)
        try:
            quote = self.book.order_quote(rec)
        except Exception:
            log.exception("FakeTWS: quoting order %s failed", rec.order_id)
            quote = None
        d = policy(rec, quote)
        if d.action == "fill" and (d.price is None or d.qty <= 0):
            return FillDecision("rest")
        return d

    def _process_new_order(self, rec: OrderRecord) -> None:
        decision = self.decide(rec)
        if decision.action == "reject":
            rec.status = "Cancelled"
            rec.completed_status = f"Rejected: {decision.message}"
            rec.completed_time = self.clock.tws_time()
            rec.done_at = self.clock.now()
            self.book.add(rec)
            for conn in self._order_conns(rec):
                self.outbox.error(conn, rec.order_id, decision.code, decision.message, decision.advanced_json)
            return
        self.book.add(rec)
        if decision.action == "fill" and self.settings.fills_before_open_order:
            rec.status = "Submitted"
            self.fill(rec, decision.qty, decision.price, announce=False)
            self._notify_open_order(rec)
            self.push_account_updates()
            return
        rec.status = "PreSubmitted"
        self._notify_open_order(rec)
        rec.status = "Submitted"
        self._notify_status(rec)
        if decision.action == "fill":
            self.fill(rec, decision.qty, decision.price)

    def _modify(self, conn: Session, rec: OrderRecord, p: dict) -> None:
        rec.lmt_price = p["lmt_price"]
        rec.aux_price = p["aux_price"]
        if p["total_qty"] > 0:
            rec.total_qty = p["total_qty"]
        rec.order_ref = p["order_ref"]
        rec.tif = p["tif"] or rec.tif
        rec.order_type = p["order_type"].upper() or rec.order_type
        if (rec.order_type == "LMT" and self.settings.enforce_ticks and rec.lmt_price is not None
                and not _on_tick(rec.spec, rec.legs, rec.lmt_price)):
            self.outbox.error(conn, rec.order_id, 110, MSG_OFF_TICK)
            return
        if not rec.transmit and p["transmit"]:
            rec.transmit = True
        rec.status = "Submitted"
        self._notify_open_order(rec)
        d = self.decide(rec)
        if d.action == "fill":
            self.fill(rec, d.qty, d.price)

    # ------------------------------------------------------------ fills and cancels
    def fill(self, rec: OrderRecord, qty: float, price: float, announce: bool = True) -> list[ExecutionRecord]:
        execs = self.book.apply_fill(rec, qty, price)
        if not execs:
            return execs
        for conn in self._order_conns(rec):
            for ex in execs:
                self.send_execution(conn, -1, ex)
        if announce:
            self._notify_status(rec)
            if rec.status == "Filled":
                for conn in self._order_conns(rec):
                    self.outbox.send(conn, open_order_fields(rec, conn.version))
            self.push_account_updates()
        return execs

    def cancel(self, rec: OrderRecord, code: int = 202, reason: str = "") -> None:
        rec.status = "Cancelled"
        rec.completed_time = self.clock.tws_time()
        rec.done_at = self.clock.now()
        rec.completed_status = "Cancelled by Trader" if code == 202 else reason
        for conn in self._order_conns(rec):
            self.outbox.error(conn, rec.order_id, code, f"Order Canceled - reason:{reason}")
            self.outbox.send(conn, order_status_fields(rec))

    def cancel_order(self, conn: Session, r: FieldReader) -> None:
        r.int()  # version
        oid = r.int()
        rec = self.book.orders.get((conn.client_id, oid))
        if rec is None or not rec.is_working:
            self.outbox.error(conn, oid, 10147, f"OrderId {oid} that needs to be cancelled is not found.")
            return
        self.cancel(rec)

    def global_cancel(self, conn: Session, r: FieldReader) -> None:
        for rec in self.book.working_orders():
            self.cancel(rec)

    def _order_conns(self, rec: OrderRecord) -> list[Session]:
        return self.sessions.for_order(rec.client_id, self.settings.master_client_id)

    def _notify_open_order(self, rec: OrderRecord) -> None:
        for conn in self._order_conns(rec):
            self.outbox.send(conn, open_order_fields(rec, conn.version))
            self.outbox.send(conn, order_status_fields(rec))

    def _notify_status(self, rec: OrderRecord) -> None:
        for conn in self._order_conns(rec):
            self.outbox.send(conn, order_status_fields(rec))

    # ------------------------------------------------------------ server-side actions (test API)
    def fill_now(self, rec: OrderRecord, qty: float | None = None, price: float | None = None) -> list[ExecutionRecord]:
        """Fill a working order whether or not its owner is connected: qty defaults to the remainder,
        price to the limit or the natural quote."""
        if not rec.is_working:
            raise ValueError(f"order {rec.order_id} is {rec.status}")
        if price is None:
            price = FillAll()(rec, self.book.order_quote(rec)).price
        if price is None:
            raise ValueError("no price: pass price=")
        return self.fill(rec, rec.remaining if qty is None else qty, price)

    def match_resting(self) -> int:
        """Re-run the fill policy on every transmitted working order; how many (partly) filled."""
        n = 0
        for rec in list(self.book.working_orders()):
            if not rec.transmit:
                continue
            d = self.decide(rec)
            if d.action == "fill":
                self.fill(rec, d.qty, d.price)
                n += 1
        return n

    def set_fill_policy(self, policy: FillPolicy, order_ref: str | None = None) -> None:
        if order_ref is None:
            self.fill_policy = policy
        else:
            self.fill_policies_by_ref[order_ref] = policy
