"""Starting an account with holdings, as a real account reconnects with them: positions, and working
orders left by an earlier run or an earlier server instance.

A contract is named by a ``ContractSpec`` (for example one from another instance's book), a dict of
contract fields under ib_async's names (resolved like reqContractDetails and it must match exactly one
contract), or a conId this server already knows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from .book import Book, PositionRecord
from .contracts import BagContractError, ContractSpec, ContractUniverse
from .orders import LegRecord, OrderRecord

ContractRef = int | ContractSpec | Mapping[str, Any]
PositionSeed = PositionRecord | tuple  # PositionRecord, (contract, qty) or (contract, qty, avg_cost)
OrderSeed = OrderRecord | Mapping[str, Any]


def resolve_contract(universe: ContractUniverse, contract: ContractRef) -> ContractSpec:
    if isinstance(contract, ContractSpec):
        return universe.adopt(contract)
    if isinstance(contract, Mapping):
        try:
            found = universe.resolve(dict(contract))
        except BagContractError:
            found = []
        if len(found) != 1:
            raise ValueError(f"seed contract {dict(contract)} matches {len(found)} contracts, not exactly one")
        return found[0]
    spec = universe.get(int(contract))
    if spec is None:
        raise ValueError(f"seed conId {contract} is unknown to this server: name it by a ContractSpec or its fields")
    return spec


def seed_positions(book: Book, positions: Iterable[PositionSeed] | Mapping[Any, float]) -> None:
    """Set these positions (replacing what the book holds for those contracts). ``avg_cost`` is per
    unit with the multiplier, TWS-style; by default the current mid, so the position starts flat."""
    items = positions.items() if isinstance(positions, Mapping) else positions
    for item in items:
        if isinstance(item, PositionRecord):
            contract, qty, avg_cost = item.spec, item.qty, item.avg_cost
        else:
            contract, qty, *rest = item
            avg_cost = rest[0] if rest else None
        spec = resolve_contract(book.universe, contract)
        if avg_cost is None:
            mark = book.mark(spec)
            avg_cost = (mark or 0.0) * spec.mult
        book.positions[spec.con_id] = PositionRecord(spec, float(qty), float(avg_cost))


def seed_orders(book: Book, orders: Iterable[OrderSeed]) -> list[OrderRecord]:
    """Book working orders without running the fill policy (they rest until a fill, a cancel or
    ``match_resting``). An ``OrderRecord`` from another instance keeps its ids, quantities and what was
    filled (not its executions); a mapping builds a new order: ``contract`` or ``legs`` (a list of
    ``(contract, ratio, "BUY"|"SELL")``), ``action``, ``quantity``, ``limit`` (None: market), and
    optionally ``client_id`` (0), ``order_id`` (the client's next id), ``order_ref``, ``tif`` ("DAY"),
    ``perm_id`` (a new one)."""
    out = []
    for seed in orders:
        rec = _carried_order(book, seed) if isinstance(seed, OrderRecord) else _new_order(book, dict(seed))
        if (rec.client_id, rec.order_id) in book.orders:
            raise ValueError(f"seed order (clientId {rec.client_id}, orderId {rec.order_id}) already exists")
        book.add(rec)
        out.append(rec)
    return out


def _carried_order(book: Book, rec: OrderRecord) -> OrderRecord:
    if not rec.is_working:
        raise ValueError(f"seed order {rec.order_id} is {rec.status}, not working")
    u = book.universe
    return dataclasses.replace(
        rec, spec=u.adopt(rec.spec) if rec.spec else None,
        legs=[dataclasses.replace(leg, spec=u.adopt(leg.spec)) for leg in rec.legs],
        contract=dict(rec.contract), policy_state=dict(rec.policy_state), executions=[])


def _new_order(book: Book, kw: dict[str, Any]) -> OrderRecord:
    unknown = set(kw) - {"contract", "legs", "action", "quantity", "limit", "client_id", "order_id", "order_ref",
                         "tif", "perm_id"}
    if unknown:
        raise ValueError(f"seed order: unknown keys {sorted(unknown)}")
    if ("contract" in kw) == ("legs" in kw):
        raise ValueError("seed order: give exactly one of contract= or legs=")
    spec, legs = None, []
    if "legs" in kw:
        legs = [LegRecord(resolve_contract(book.universe, c), int(ratio), action.upper())
                for c, ratio, action in kw["legs"]]
        contract = {"secType": "BAG", "symbol": legs[0].spec.symbol, "exchange": "SMART", "currency": "USD"}
    else:
        spec = resolve_contract(book.universe, kw["contract"])
        contract = spec.fields()
    client_id = int(kw.get("client_id", 0))
    limit = kw.get("limit")
    return OrderRecord(
        client_id=client_id, order_id=int(kw.get("order_id") or book.next_valid_id(client_id)),
        perm_id=int(kw.get("perm_id") or book.next_perm_id()), contract=contract, spec=spec, legs=legs,
        action=kw["action"].upper(), total_qty=float(kw["quantity"]), order_type="MKT" if limit is None else "LMT",
        lmt_price=limit, tif=kw.get("tif", "DAY"), account=book.account, order_ref=kw.get("order_ref", ""),
        status="Submitted", created=book.clock(),
    )
