"""IB executions and commission reports -> journaled executions -> engine FillEvents and final order states.

Every execution is journaled once, keyed by (execId, owner) where the owner is the order's permId (or its
orderRef): TWS reuses execIds across sessions, so an execId alone would drop a real fill. An execId whose last
`.NN` part grew is IB's correction of an earlier report; the journal replaces the earlier one while it is not
yet in a fill, and flags it (error log, position check) when it already is.

A fill is built once whole combo units are complete (a partial fill of a 3-lot condor gives a 1-unit
FillEvent, then the rest), with IB's commissions when their reports are in (an estimate after
`commission_wait_seconds` otherwise). The final state (cancelled, rejected) is published only once every
execution IB reported is in a fill.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from typing import Any

import structlog

from adapters.ib.errors import ErrorKind, classify
from adapters.ib.orders import BrokerView
from engine.crashpoints import crashpoint
from engine.events import Event, FillEvent, LegFill, OrderState
from engine.ports import ExecutionRow, IntentRow, execution_owner

log = structlog.get_logger("alvh.ib")


def exec_ts(execution: Any) -> str:
    t = execution.time
    if isinstance(t, dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.UTC)
        return t.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class Fills:
    def __init__(self, broker: BrokerView) -> None:
        self.b = broker
        self._consumed: dict[str, list[tuple[str, str]]] = {}   # fill id -> (exec_id, owner) it consumes
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._finalize: set[str] = set()

    # ---- IB events -----------------------------------------------------------------------------
    def on_exec_details(self, trade: Any, fill: Any) -> None:
        if self.b.listening:
            self.record(fill.contract, fill.execution, fill.commissionReport)

    def on_commission(self, trade: Any, fill: Any, report: Any) -> None:
        if not self.b.listening:
            return
        execution = getattr(fill, "execution", None)
        owner = execution_owner(execution.permId, execution.orderRef) if execution is not None else None
        intent = self.b.journal.set_commission(report.execId, owner, float(report.commission))
        if intent:
            self.schedule(intent, 0.0)

    def record(self, contract: Any, execution: Any, report: Any = None) -> bool:
        """Journal one IB execution (execDetails, or a reconcile's reqExecutions); True when it is new and ours."""
        b = self.b
        journal = b.journal
        intent = execution.orderRef or ""
        if not intent and execution.permId:
            intent = journal.intent_for_perm(int(execution.permId)) or ""
        ours = bool(intent) and journal.intent(intent) is not None
        combo = (contract.secType or "") == "BAG"
        inst = None if combo else b.resolver.instrument_for(contract)
        commission = None
        if report is not None and report.execId == execution.execId and report.currency:
            commission = float(report.commission)
        outcome = journal.record_execution(ExecutionRow(
            exec_id=execution.execId, owner=execution_owner(execution.permId, execution.orderRef),
            intent_id=intent if ours else None, order_id=execution.orderId, perm_id=execution.permId or None,
            con_id=int(contract.conId or 0), instrument=inst.key if inst else None, side=execution.side,
            shares=float(execution.shares), price=float(execution.price), commission=commission, combo=combo,
            ts=exec_ts(execution), fill_id=None))
        if outcome == "known":
            return False
        if not ours:
            log.warning("foreign_execution", exec_id=execution.execId, order_ref=intent, symbol=contract.symbol)
            return False
        late = outcome == "corrected_after_booking"
        (log.error if late else log.info)(
            {"new": "execution", "corrected": "execution_corrected"}.get(outcome, "execution_corrected_after_booking"),
            intent=intent, exec_id=execution.execId, instrument=inst.key if inst else "BAG", side=execution.side,
            shares=execution.shares, price=execution.price)
        crashpoint("execution_recorded")
        if not combo and not late:
            self.schedule(intent, 0.0 if commission is not None else b.p.commission_wait_seconds)
        return True

    # ---- executions -> engine fills ------------------------------------------------------------
    def pending(self, intent: str) -> bool:
        return intent in self._timers

    def schedule(self, intent: str, delay: float, finalize: bool = False) -> None:
        """(Re)arm one timer per intent; a pending finalize request survives re-arming."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        prev = self._timers.pop(intent, None)
        if prev is not None:
            prev.cancel()
        if finalize:
            self._finalize.add(intent)

        def run() -> None:
            self._timers.pop(intent, None)
            final = intent in self._finalize
            self._finalize.discard(intent)
            try:
                self.aggregate(intent, force=delay > 0 or final)
                if final:
                    self.finalize(intent)
            except Exception as e:
                log.error("fill_processing_failed", intent=intent, error=repr(e))
                raise

        self._timers[intent] = loop.call_later(delay, run)

    def aggregate(self, intent: str, force: bool = False) -> int:
        """Turn this intent's unconsumed leg executions into engine FillEvents (whole combo units only).
        Returns the units emitted."""
        b = self.b
        row = b.journal.intent(intent)
        if row is None:
            return 0
        execs = b.journal.executions(intent, unconsumed=True)
        if not execs:
            return 0
        if not force and any(e.commission is None for e in execs):
            self.schedule(intent, b.p.commission_wait_seconds)
            return 0
        planned = self.plan(row, execs, b.now())
        if planned is None:
            return 0
        event, used, units = planned
        order = row.order
        self._consumed[event.exec_id] = used
        filled = b.journal.filled_units(intent) + units
        done = filled >= order.quantity
        events: list[Event] = [event, b.status_event(order, OrderState.FILLED if done else OrderState.PARTIALLY_FILLED,
                                                     filled)]
        live = b.live(intent)
        if done and live is not None:
            b.mark_final(live)
        log.info("order_filled" if done else "order_partially_filled", intent=intent, units=units, filled=filled,
                 quantity=order.quantity, net_price=round(event.net_price, 4), commission=round(event.commission, 2),
                 fill_id=event.exec_id)
        b.emit(events)
        crashpoint("fill_applied")
        return units

    def plan(self, row: IntentRow, execs: list[ExecutionRow],
             now: dt.datetime) -> tuple[FillEvent, list[tuple[str, str]], int] | None:
        """The largest number of whole combo units the unconsumed executions make up, as one FillEvent."""
        order = row.order
        by_key: dict[str | None, list[ExecutionRow]] = defaultdict(list)
        for e in execs:
            by_key[e.instrument].append(e)
        units = int(min(sum(abs(e.shares) for e in by_key.get(leg.key, [])) / abs(leg.ratio)
                        for leg in order.legs) + 1e-9)
        picked: dict[str, list[ExecutionRow]] = {}
        while units > 0:
            picked = {}
            for leg in order.legs:
                need = units * abs(leg.ratio)
                take, total = [], 0.0
                for e in by_key[leg.key]:
                    if total >= need - 1e-9:
                        break
                    take.append(e)
                    total += abs(e.shares)
                if abs(total - need) > 1e-9:
                    break
                picked[leg.key] = take
            if len(picked) == len(order.legs):
                break
            units -= 1
        if units <= 0:
            return None
        legs, used, commission = [], [], 0.0
        for leg in order.legs:
            take = picked[leg.key]
            qty = sum(e.signed_shares for e in take)
            px = sum(abs(e.shares) * e.price for e in take) / sum(abs(e.shares) for e in take)
            legs.append(LegFill(leg.instrument, round(qty), float(px)))
            for e in take:
                used.append((e.exec_id, e.owner))
                if e.commission is not None:
                    commission += e.commission
                else:
                    commission += self.b.execution.commission([leg.instrument], [round(e.signed_shares)])
        net = sum(lf.quantity * lf.price for lf in legs) / units
        first = min(used)
        event = FillEvent(now, row.intent_id, order.book, f"ib:{first[1]}:{first[0]}", tuple(legs), units, float(net),
                          float(commission), order.purpose)
        return event, used, units

    def finalize(self, intent: str) -> None:
        """IB says the order is done: publish the final engine status once every fill is in."""
        b = self.b
        live = b.live(intent)
        row = b.journal.intent(intent)
        if row is None or row.final:
            if live is not None and not live.final:
                b.mark_final(live)
            return
        filled = b.journal.filled_units(intent)
        status = live.ib_status if live is not None else ""
        if filled >= row.quantity:
            return  # FILLED already published by aggregate
        if live is not None and status == "Filled":
            return  # executions still to come (reconcile or late execDetails)
        if live is not None:
            b.mark_final(live)
            err = b.order_errors.get(live.order_id) if live.trade is not None else None
            if err is not None:
                live.last_error, live.last_error_msg = err
        code = live.last_error if live else None
        kind = classify(code) if code is not None else None
        # a price step that crossed a fill gets 103 on an order IB already took: not a rejection of the order
        rejected = filled == 0 and (kind is ErrorKind.ORDER_REJECTED
                                    or (kind is ErrorKind.DUPLICATE_ORDER_ID and live is not None and not live.acked))
        reason = (f"IB error {code}: {live.last_error_msg}" if code else f"IB status {status}") if live else "not at IB"
        if live is not None and live.cancel_reason and not rejected:
            reason = f"{live.cancel_reason} ({reason})"
        log.info("order_rejected" if rejected else "order_cancelled", intent=intent, filled=filled, reason=reason)
        b.emit([b.status_event(row.order, OrderState.REJECTED if rejected else OrderState.CANCELLED, filled, reason)])

    # ---- the journal side of an engine fill (same transaction as the ledger and strategy) -------
    def on_engine_fill(self, fill: FillEvent) -> None:
        used = self._consumed.pop(fill.exec_id, None)
        if used is None:
            return  # not ours (e.g. a simulated fill in tests)
        self.b.journal.record_fill(fill_id=fill.exec_id, intent_id=fill.intent_id, book=fill.book,
                                   purpose=fill.purpose, ts=fill.ts, combo_qty=fill.combo_quantity,
                                   net_price=fill.net_price, commission=fill.commission,
                                   legs=[{"instrument": leg.instrument.key, "quantity": leg.quantity,
                                          "price": leg.price} for leg in fill.legs], executions=used)

    def forget(self) -> None:
        """End of day: every FillEvent has been dispatched by now."""
        self._consumed.clear()

    def close(self) -> None:
        for h in self._timers.values():
            h.cancel()
        self._timers.clear()
