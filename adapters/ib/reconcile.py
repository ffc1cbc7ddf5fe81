"""Reconcile the order journal with IB after every (re)connection, before trading resumes.

Positions, open orders (all clients), completed orders and executions (since the last known one, minus a
margin) are requested; then every journaled intent that is not final is resolved by its intent id (= the
orderRef IB echoes):
- working at IB -> adopted: its price walk continues from fresh quotes, never below its current price; an
  order whose cancel was requested (or any order while the owner's gate is closed: halted) is cancelled;
- filled/cancelled at IB -> the missing executions are booked (once) and the final status published;
- not at IB and pending/sending -> it never arrived: sent again under the same intent id if it is from
  today's session and nothing stops it, else abandoned (the strategy gets CANCELLED).
An order IB holds for an intent the journal calls final (a cancel that never reached IB) is cancelled.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import structlog

from adapters.ib.connection import bounded
from adapters.ib.errors import ACKED_STATUSES
from adapters.ib.executions import Fills
from adapters.ib.orders import TERMINAL_IB, BrokerView, LiveOrder, price_path
from engine.crashpoints import crashpoint
from engine.events import OrderState
from engine.ports import IntentRow

log = structlog.get_logger("alvh.ib")

EXECUTIONS_MARGIN = dt.timedelta(minutes=5)


class Reconciler:
    def __init__(self, broker: BrokerView, fills: Fills) -> None:
        self.b = broker
        self.fills = fills

    async def run(self, *, today: dt.date, allow_resend: bool = True) -> dict:
        """Resolve every journaled intent that is not final. Trading resumes (ready=True) only after this."""
        from ib_async import ExecutionFilter

        b, conn, ib, journal = self.b, self.b.conn, self.b.ib, self.b.journal
        b.ready = False
        t = conn.settings.request_timeout
        await conn.pacer.acquire()
        positions = await bounded(ib.reqPositionsAsync(), t, "positions")
        held: dict[str, int] = {}
        rows = []
        for p in positions:
            if conn.account and p.account and p.account != conn.account:
                continue
            inst = b.resolver.instrument_for(p.contract)
            key = inst.key if inst is not None else f"conId:{p.contract.conId}"
            qty = round(p.position)
            if qty:
                held[key] = held.get(key, 0) + qty
                rows.append((key, int(p.contract.conId or 0), qty, float(p.avgCost)))
        b.set_positions(held)
        journal.replace_positions(rows)
        crashpoint("reconcile_positions")
        await conn.pacer.acquire()
        open_trades = await bounded(ib.reqAllOpenOrdersAsync(), t, "open orders")
        await conn.pacer.acquire()
        completed = await bounded(ib.reqCompletedOrdersAsync(apiOnly=True), t, "completed orders")
        since = journal.last_execution_ts()
        flt = ExecutionFilter()
        if since:
            ts = dt.datetime.fromisoformat(since) - EXECUTIONS_MARGIN
            flt.time = ts.astimezone(dt.UTC).strftime("%Y%m%d-%H:%M:%S")
        await conn.pacer.acquire()
        fills = await bounded(ib.reqExecutionsAsync(flt), t, "executions")
        new_execs = 0
        for f in fills:
            acct = getattr(f.execution, "acctNumber", "") or ""
            if conn.account and acct and acct != conn.account:
                continue
            if self.fills.record(f.contract, f.execution, f.commissionReport):
                new_execs += 1
        crashpoint("reconcile_mid")
        open_by_ref = {tr.order.orderRef: tr for tr in open_trades if tr.order.orderRef}
        done_by_ref: dict[str, list] = defaultdict(list)
        for tr in completed:
            if tr.order.orderRef:
                done_by_ref[tr.order.orderRef].append(tr)
        report: dict[str, Any] = {"positions": len(held), "open_orders": len(open_by_ref), "new_executions": new_execs,
                                  "adopted": [], "filled": [], "cancelled": [], "resent": [], "abandoned": [],
                                  "unknown_orders": []}
        await self._cancel_orphans(open_by_ref, report)
        for row in journal.intents(open_only=True):
            self._resolve(row, open_by_ref.get(row.intent_id), done_by_ref.get(row.intent_id, []), today,
                          allow_resend, report)
        # fills first (every execution we now hold), then final states
        for intent in journal.intents_with_unconsumed_executions():
            self.fills.aggregate(intent, force=True)
        for intent in report["filled"] + report["cancelled"]:
            live = b.live(intent)
            if live is not None and live.ib_status == "Filled" and journal.filled_units(intent) < live.order.quantity:
                log.error("fills_missing", intent=intent, filled=journal.filled_units(intent),
                          quantity=live.order.quantity)
                live.ib_status = "Cancelled"
            self.fills.finalize(intent)
        for intent in report["abandoned"]:
            row = journal.intent(intent)
            live = b.live(intent)
            why = "never reached IB: abandoned" if row.state in ("pending", "sending") else "not at IB: presumed expired"
            if live is not None and live.cancel_requested:
                why = f"{live.cancel_reason or 'cancelled'}: never reached IB"
            b.finish_unsent(live, why)
        b.ready = conn.link_ok  # a 1100 during the reconcile keeps trading paused until 1101/1102
        log.info("reconciled", **{k: (len(v) if isinstance(v, list) else v) for k, v in report.items()},
                 intents=[*report["adopted"], *report["resent"]])
        return report

    async def _cancel_orphans(self, open_by_ref: dict[str, Any], report: dict) -> None:
        b = self.b
        for ref, tr in open_by_ref.items():
            row = b.journal.intent(ref)
            if row is None:
                report["unknown_orders"].append(ref)
                log.warning("unknown_open_order", order_ref=ref, order_id=tr.order.orderId)
            elif row.final and int(tr.order.clientId or 0) == int(b.conn.client_id or -1):
                # the journal says done (e.g. a cancel that never reached IB): do not leave it working
                log.warning("orphan_order_cancelled", intent=ref, order_id=tr.order.orderId, state=row.state)
                await b.conn.pacer.acquire()
                b.ib.cancelOrder(tr.order)

    def _resolve(self, row: IntentRow, trade: Any, done: list, today: dt.date, allow_resend: bool,
                 report: dict) -> None:
        b = self.b
        intent = row.intent_id
        live = b.track(row.order)
        live.final = False
        live.done.clear()
        if trade is not None:
            self._adopt(live, trade, row)
            report["adopted"].append(intent)
            return
        if b.journal.executions(intent) or done:
            status = done[-1].orderStatus.status if done else "Filled"
            live.ib_status = status or "Cancelled"
            if live.ib_status not in TERMINAL_IB and live.ib_status != "Filled":
                live.ib_status = "Cancelled"
            report["filled" if live.ib_status == "Filled" else "cancelled"].append(intent)
            return
        if b.is_queued(intent):
            return
        stopped = b.stopped(live)
        if row.state in ("pending", "sending") and allow_resend and row.session == today and stopped is None:
            live.trade, live.acked, live.task = None, False, None
            b.requeue(intent)
            report["resent"].append(intent)
            log.info("intent_resend", intent=intent, previous_state=row.state, reason="never reached IB")
        else:
            report["abandoned"].append(intent)

    def _adopt(self, live: LiveOrder, trade: Any, row: IntentRow) -> None:
        b = self.b
        live.trade = trade
        live.ib_status = trade.orderStatus.status
        live.cancel_sent = False  # a new connection: a cancel sent before may not have arrived
        was_acked = row.state in ("working", "partially_filled")
        live.acked = trade.orderStatus.status in ACKED_STATUSES
        b.journal.update_intent(row.intent_id, order_id=int(trade.order.orderId),
                                perm_id=int(trade.order.permId or 0) or None, client_id=int(trade.order.clientId or 0))
        if not live.path:
            price = row.working_price if row.working_price is not None else row.limit_price
            live.path = [price] if price is not None else []
            live.step = 0
        log.info("order_adopted", intent=row.intent_id, order_id=trade.order.orderId, status=live.ib_status)
        if live.acked and not was_acked:
            filled = b.journal.filled_units(row.intent_id)
            b.emit([b.status_event(live.order, OrderState.WORKING if filled == 0 else OrderState.PARTIALLY_FILLED,
                                   filled)])
        if not b.own(live):
            log.warning("order_of_another_client", intent=row.intent_id, client_id=trade.order.clientId,
                        note="it can be watched but not modified or cancelled from this client id")
            return
        stopped = b.stopped(live)
        if stopped is not None:
            live.cancel_requested = True
            live.cancel_reason = live.cancel_reason or stopped
            b.spawn(b.cancel_at_ib(row.intent_id, live.cancel_reason))
        elif live.task is None or live.task.done():
            live.task = b.spawn(self._work_adopted(row.intent_id))

    async def _work_adopted(self, intent: str) -> None:
        """An order found working after a restart/reconnect: rebuild its price path from fresh quotes,
        never stepping back below the price it already shows, and carry on walking/timing out."""
        b = self.b
        live = b.live(intent)
        row = b.journal.intent(intent)
        current = row.working_price if row is not None and row.working_price is not None else None
        try:
            quotes = await b.md.leg_quotes([leg.instrument for leg in live.order.legs])
        except Exception as e:  # noqa: BLE001 - keep the order's current price
            log.warning("adopted_order_quotes_failed", intent=intent, error=repr(e))
            quotes = None
        path, _ = price_path(live.order, quotes, b.p)
        if current is not None:
            path = [current] + [p for p in path if p > current + 1e-9]
        live.path, live.step = path or live.path, 0
        await b.work(intent)
