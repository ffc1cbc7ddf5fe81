"""What the daemon's state store writes as JSON: dates and NaN that round-trip, orders, ledger snapshots.

Instruments serialise on the model (engine.instruments: `to_dict` / `instrument_from_dict`); this module only
adds the order and ledger shapes around them.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from engine.instruments import instrument_from_dict
from engine.ledger import BookTotals, Ledger, Position
from engine.orders import OrderLeg, OrderRequest


# ---- JSON that round-trips dates, tuples of dataclasses and NaN -------------------------------
def _default(o: Any) -> Any:
    if isinstance(o, dt.datetime):
        return {"__datetime__": o.isoformat()}
    if isinstance(o, dt.date):
        return {"__date__": o.isoformat()}
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    raise TypeError(f"cannot store {type(o).__name__} in the state store")


def _hook(d: dict) -> Any:
    if len(d) == 1:
        if "__date__" in d:
            return dt.date.fromisoformat(d["__date__"])
        if "__datetime__" in d:
            return dt.datetime.fromisoformat(d["__datetime__"])
    return d


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=_default, sort_keys=True, allow_nan=True)


def loads(text: str) -> Any:
    return json.loads(text, object_hook=_hook)


# ---- orders ------------------------------------------------------------------------------------
def order_to_dict(order: OrderRequest) -> dict:
    return {"intent_id": order.intent_id, "book": order.book, "quantity": order.quantity, "limit": order.limit,
            "purpose": order.purpose, "tif": order.tif,
            "legs": [{"instrument": leg.instrument.to_dict(), "ratio": leg.ratio} for leg in order.legs]}


def order_from_dict(d: dict) -> OrderRequest:
    legs = tuple(OrderLeg(instrument_from_dict(leg["instrument"]), int(leg["ratio"])) for leg in d["legs"])
    return OrderRequest(d["intent_id"], d["book"], legs, int(d["quantity"]), d.get("limit"), d.get("purpose", ""),
                        d.get("tif", "DAY"))


# ---- ledger snapshot -------------------------------------------------------------------------
def ledger_to_dict(ledger: Ledger) -> dict:
    return {
        "initial_cash": ledger.initial_cash, "cash": ledger.cash, "interest": ledger.interest,
        "positions": [{"book": p.book, "instrument": p.instrument.to_dict(), "quantity": p.quantity,
                       "avg_price": p.avg_price, "mark": p.mark, "vm_price": p.vm_price}
                      for p in ledger.positions.values()],
        "books": {name: {"cash_flow": b.cash_flow, "commissions": b.commissions, "realized": b.realized,
                         "trades": b.trades} for name, b in ledger.books.items()},
    }


def restore_ledger(ledger: Ledger, d: dict) -> None:
    ledger.initial_cash = float(d["initial_cash"])
    ledger.cash = float(d["cash"])
    ledger.interest = float(d["interest"])
    ledger.positions.clear()
    for p in d["positions"]:
        inst = instrument_from_dict(p["instrument"])
        ledger.positions[(p["book"], inst.key)] = Position(p["book"], inst, int(p["quantity"]), float(p["avg_price"]),
                                                           float(p["mark"]), float(p["vm_price"]))
    ledger.books.clear()
    for name, b in d["books"].items():
        ledger.books[name] = BookTotals(float(b["cash_flow"]), float(b["commissions"]), float(b["realized"]),
                                        int(b["trades"]))

