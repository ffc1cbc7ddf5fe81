"""`alvh status`: what the state store says, whether the daemon runs or not (read-only)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from adapters.live.codec import restore_ledger
from adapters.live.state import StateStore
from engine.instruments import instrument_from_dict
from engine.ledger import Ledger


def heartbeat_age(hb: dict) -> float | None:
    """Seconds since the daemon's last heartbeat (None: never)."""
    if not hb.get("at"):
        return None
    return (dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(hb["at"])).total_seconds()


def status_report(path: str | Path) -> dict:
    st = StateStore.open_existing(path, readonly=True)
    try:
        hb = st.get_meta("heartbeat") or {}
        age = heartbeat_age(hb)
        snapshot = st.get_meta("ledger")
        ledger = None
        if snapshot:
            ledger = Ledger(1.0)
            restore_ledger(ledger, snapshot)
        strategies = st.strategy_states()
        layers = {book: s["layers"] for book, s in strategies.items() if isinstance(s, dict) and "layers" in s}
        working = [{"intent": r.intent_id, "book": r.book, "purpose": r.purpose, "state": r.state,
                    "filled": r.filled, "quantity": r.quantity, "order_id": r.order_id,
                    "limit": r.working_price if r.working_price is not None else r.limit_price,
                    "legs": [f"{leg.ratio:+d} {leg.key}" for leg in r.order.legs]}
                   for r in st.intents(open_only=True)]
        ident = st.identity()
        return {
            "state_path": str(path),
            "account": st.get_meta("account", "") or ident.get("account") or "",
            "identity": {"mode": ident.get("mode"), "account": ident.get("account")},
            "daemon": st.get_meta("daemon", {}),
            "halted": st.halted(),
            "halt_ack": st.get_meta("halt_ack"),
            "heartbeat": hb, "heartbeat_age_seconds": None if age is None else round(age, 1),
            "equity": None if ledger is None else ledger.equity(),
            "cash": None if ledger is None else ledger.cash,
            "ledger_positions": [] if ledger is None else [
                {"book": p.book, "instrument": p.instrument.key, "quantity": p.quantity, "avg_price": p.avg_price,
                 "mark": p.mark} for p in ledger.positions.values()],
            "broker_positions": st.positions(),
            "layers": {book: [{**la, "qty": [[_label(k), q] for k, q in la.get("qty", [])]} for la in ls]
                       for book, ls in layers.items()},
            "working_orders": working,
            "recent_intents": [{"intent": r.intent_id, "state": r.state, "filled": r.filled, "quantity": r.quantity,
                                "reason": r.reason} for r in st.intents()[-10:]],
        }
    finally:
        st.close()


def _label(d: dict) -> str:
    try:
        return instrument_from_dict(d).key
    except (ValueError, TypeError):
        return str(d)
