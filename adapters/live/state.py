"""The daemon's state store: SQLite (stdlib) in WAL mode, one file per account/config.

What it holds and why:
- `intents`: the intent journal. A row is written - and committed together with the strategy state
  that produced it - *before* the order is sent, then moves pending -> sending -> working ->
  filled / cancelled / rejected / abandoned. After a crash every non-final row is resolved against
  the broker by its intent id (= IB orderRef): working -> adopt, filled -> record fills, not at the
  broker -> resend (same session) or abandon. So no order is sent twice and none is forgotten.
- `executions`: every IB execution once (execId is the primary key: the dedupe key for fills).
- `fills`: the engine FillEvents built from executions, committed in the same transaction as the
  ledger snapshot and strategy states they changed.
- `positions`: the broker's positions at the last reconcile (for `alvh status`).
- `strategy_state`, `meta` (ledger snapshot, halted flag, account, heartbeat), `jobs` (which of the
  session's scheduled jobs are done), `contracts` (resolved conIds, so executions can be mapped back
  to instruments after a restart without asking IB again).

All writes go through `transaction()` (BEGIN IMMEDIATE ... COMMIT; nested calls join the outer
transaction). `synchronous=FULL`: a committed row survives a crash of the process or the machine.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.instruments import Equity, FutureContract, Instrument, OptionContract
from engine.ledger import BookTotals, Ledger, Position
from engine.orders import OrderLeg, OrderRequest

SCHEMA_VERSION = 1

FINAL_STATES = frozenset({"filled", "cancelled", "rejected", "abandoned"})
OPEN_STATES = frozenset({"pending", "sending", "working", "partially_filled"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS intents (
    intent_id   TEXT PRIMARY KEY,
    book        TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    session     TEXT NOT NULL,
    order_json  TEXT NOT NULL,
    quantity    INTEGER NOT NULL,
    state       TEXT NOT NULL,
    filled      INTEGER NOT NULL DEFAULT 0,
    order_id    INTEGER,
    perm_id     INTEGER,
    client_id   INTEGER,
    limit_price REAL,
    working_price REAL,
    steps_done  INTEGER NOT NULL DEFAULT 0,
    sends       INTEGER NOT NULL DEFAULT 0,
    reason      TEXT NOT NULL DEFAULT '',
    created     TEXT NOT NULL,
    updated     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS intents_state ON intents(state);
CREATE TABLE IF NOT EXISTS executions (
    exec_id     TEXT PRIMARY KEY,
    intent_id   TEXT,
    order_id    INTEGER,
    perm_id     INTEGER,
    con_id      INTEGER,
    instrument  TEXT,
    side        TEXT,
    shares      REAL NOT NULL,
    price       REAL NOT NULL,
    commission  REAL,
    combo       INTEGER NOT NULL DEFAULT 0,
    ts          TEXT NOT NULL,
    fill_id     TEXT
);
CREATE INDEX IF NOT EXISTS executions_intent ON executions(intent_id);
CREATE TABLE IF NOT EXISTS fills (
    fill_id     TEXT PRIMARY KEY,
    intent_id   TEXT NOT NULL,
    book        TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    ts          TEXT NOT NULL,
    combo_qty   INTEGER NOT NULL,
    net_price   REAL NOT NULL,
    commission  REAL NOT NULL,
    legs_json   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (
    instrument  TEXT PRIMARY KEY,
    con_id      INTEGER,
    quantity    REAL NOT NULL,
    avg_cost    REAL,
    updated     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS strategy_state (book TEXT PRIMARY KEY, state_json TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (session TEXT NOT NULL, name TEXT NOT NULL, done_at TEXT NOT NULL,
                                 PRIMARY KEY (session, name));
CREATE TABLE IF NOT EXISTS contracts (instrument TEXT PRIMARY KEY, con_id INTEGER NOT NULL, contract_json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS contracts_con_id ON contracts(con_id);
"""


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


# ---- instruments and orders ------------------------------------------------------------------
def instrument_to_dict(inst: Instrument) -> dict:
    if isinstance(inst, OptionContract):
        return {"type": "option", "root": inst.root, "expiry": inst.expiry.isoformat(), "strike": inst.strike,
                "right": inst.right, "settlement": inst.settlement, "multiplier": inst.multiplier}
    if isinstance(inst, FutureContract):
        return {"type": "future", "symbol": inst.symbol, "expiry": inst.expiry.isoformat(),
                "multiplier": inst.multiplier}
    if isinstance(inst, Equity):
        return {"type": "equity", "symbol": inst.symbol, "multiplier": inst.multiplier}
    raise TypeError(f"unknown instrument {inst!r}")


def instrument_from_dict(d: dict) -> Instrument:
    kind = d["type"]
    if kind == "option":
        return OptionContract(d["root"], _date(d["expiry"]), float(d["strike"]), d["right"], d["settlement"],
                              int(d.get("multiplier", 100)))
    if kind == "future":
        return FutureContract(d["symbol"], _date(d["expiry"]), int(d.get("multiplier", 1000)))
    if kind == "equity":
        return Equity(d["symbol"], int(d.get("multiplier", 1)))
    raise ValueError(f"unknown instrument type {kind!r}")


def _date(v) -> dt.date:
    return v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v))


def order_to_dict(order: OrderRequest) -> dict:
    return {"intent_id": order.intent_id, "book": order.book, "quantity": order.quantity, "limit": order.limit,
            "purpose": order.purpose, "tif": order.tif,
            "legs": [{"instrument": instrument_to_dict(leg.instrument), "ratio": leg.ratio} for leg in order.legs]}


def order_from_dict(d: dict) -> OrderRequest:
    legs = tuple(OrderLeg(instrument_from_dict(leg["instrument"]), int(leg["ratio"])) for leg in d["legs"])
    return OrderRequest(d["intent_id"], d["book"], legs, int(d["quantity"]), d.get("limit"), d.get("purpose", ""),
                        d.get("tif", "DAY"))


# ---- ledger snapshot -------------------------------------------------------------------------
def ledger_to_dict(ledger: Ledger) -> dict:
    return {
        "initial_cash": ledger.initial_cash, "cash": ledger.cash, "interest": ledger.interest,
        "positions": [{"book": p.book, "instrument": instrument_to_dict(p.instrument), "quantity": p.quantity,
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


# ---- rows ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IntentRow:
    intent_id: str
    book: str
    purpose: str
    session: dt.date
    order: OrderRequest
    quantity: int
    state: str
    filled: int
    order_id: int | None
    perm_id: int | None
    client_id: int | None
    limit_price: float | None
    working_price: float | None
    steps_done: int
    sends: int
    reason: str
    created: str
    updated: str

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


@dataclass(frozen=True)
class ExecutionRow:
    exec_id: str
    intent_id: str | None
    order_id: int | None
    perm_id: int | None
    con_id: int | None
    instrument: str | None
    side: str
    shares: float
    price: float
    commission: float | None
    combo: bool
    ts: str
    fill_id: str | None

    @property
    def signed_shares(self) -> float:
        return self.shares if self.side.upper() in ("BOT", "BUY") else -self.shares


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class StateStore:
    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise FileNotFoundError(f"no daemon state at {self.path}")
        uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
        self.db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=10.0, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA busy_timeout = 10000")
        self._depth = 0
        if not readonly:
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = FULL")
            self.db.executescript(_SCHEMA)
            if self.get_meta("schema_version") is None:
                self.set_meta("schema_version", SCHEMA_VERSION)

    def close(self) -> None:
        self.db.close()

    # ---- transactions --------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[StateStore]:
        """BEGIN IMMEDIATE .. COMMIT; nested calls join the outer transaction; an exception rolls back."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self
        except BaseException:
            self._depth = 0
            self.db.execute("ROLLBACK")
            raise
        self._depth = 0
        self.db.execute("COMMIT")

    def _write(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        if self._depth:
            return self.db.execute(sql, args)
        with self.transaction():
            return self.db.execute(sql, args)

    # ---- meta ----------------------------------------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else loads(row["value"])

    def set_meta(self, key: str, value: Any) -> None:
        self._write("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, dumps(value)))

    # halted flag (kill switch): written by `alvh halt` from another process, polled by the daemon
    def halted(self) -> dict | None:
        return self.get_meta("halted")

    def set_halted(self, reason: str, by: str = "cli") -> None:
        self.set_meta("halted", {"reason": reason, "by": by, "at": _now()})

    def clear_halted(self) -> None:
        self._write("DELETE FROM meta WHERE key = 'halted'")

    def heartbeat(self, info: dict) -> None:
        self.set_meta("heartbeat", {"at": _now(), **info})

    # ---- intents -------------------------------------------------------------------------------
    def journal(self, order: OrderRequest, session: dt.date, state: str = "pending", reason: str = "") -> bool:
        """Record an intent before anything is sent. Returns False if the intent is already journaled."""
        now = _now()
        cur = self._write(
            "INSERT OR IGNORE INTO intents(intent_id, book, purpose, session, order_json, quantity, state, limit_price,"
            " reason, created, updated) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
            (order.intent_id, order.book, order.purpose, session.isoformat(), dumps(order_to_dict(order)),
             order.quantity, state, order.limit, reason, now, now))
        return cur.rowcount == 1

    def update_intent(self, intent_id: str, **fields: Any) -> None:
        if not fields:
            return
        allowed = {"state", "filled", "order_id", "perm_id", "client_id", "working_price", "steps_done", "sends",
                   "reason"}
        bad = set(fields) - allowed
        if bad:
            raise KeyError(f"unknown intent field(s) {sorted(bad)}")
        cols = ", ".join(f"{k} = ?" for k in fields)
        self._write(f"UPDATE intents SET {cols}, updated = ? WHERE intent_id = ?",
                    (*fields.values(), _now(), intent_id))

    def intent(self, intent_id: str) -> IntentRow | None:
        row = self.db.execute("SELECT * FROM intents WHERE intent_id = ?", (intent_id,)).fetchone()
        return None if row is None else self._intent(row)

    def intents(self, *, open_only: bool = False, session: dt.date | None = None) -> list[IntentRow]:
        sql = "SELECT * FROM intents"
        cond, args = [], []
        if open_only:
            cond.append(f"state IN ({','.join('?' * len(OPEN_STATES))})")
            args += sorted(OPEN_STATES)
        if session is not None:
            cond.append("session = ?")
            args.append(session.isoformat())
        if cond:
            sql += " WHERE " + " AND ".join(cond)
        sql += " ORDER BY created, intent_id"
        return [self._intent(r) for r in self.db.execute(sql, args).fetchall()]

    def count_intents(self, session: dt.date) -> int:
        row = self.db.execute("SELECT COUNT(*) AS n FROM intents WHERE session = ? AND state != 'rejected'",
                              (session.isoformat(),)).fetchone()
        return int(row["n"])

    @staticmethod
    def _intent(r: sqlite3.Row) -> IntentRow:
        return IntentRow(r["intent_id"], r["book"], r["purpose"], dt.date.fromisoformat(r["session"]),
                         order_from_dict(loads(r["order_json"])), r["quantity"], r["state"], r["filled"],
                         r["order_id"], r["perm_id"], r["client_id"], r["limit_price"], r["working_price"],
                         r["steps_done"], r["sends"], r["reason"], r["created"], r["updated"])

    # ---- executions and fills ------------------------------------------------------------------
    def record_execution(self, *, exec_id: str, intent_id: str | None, order_id: int | None, perm_id: int | None,
                         con_id: int | None, instrument: str | None, side: str, shares: float, price: float,
                         commission: float | None, combo: bool, ts: str) -> bool:
        """Insert one IB execution; False when that execId is already known (the fill dedupe key)."""
        cur = self._write(
            "INSERT OR IGNORE INTO executions(exec_id, intent_id, order_id, perm_id, con_id, instrument, side, shares,"
            " price, commission, combo, ts) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
            (exec_id, intent_id, order_id, perm_id, con_id, instrument, side, float(shares), float(price),
             None if commission is None or not math.isfinite(commission) else float(commission), int(combo), ts))
        return cur.rowcount == 1

    def set_commission(self, exec_id: str, commission: float) -> bool:
        cur = self._write("UPDATE executions SET commission = ? WHERE exec_id = ? AND commission IS NULL",
                          (float(commission), exec_id))
        return cur.rowcount == 1

    def execution_intent(self, exec_id: str) -> str | None:
        row = self.db.execute("SELECT intent_id FROM executions WHERE exec_id = ?", (exec_id,)).fetchone()
        return row["intent_id"] if row else None

    def has_execution(self, exec_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM executions WHERE exec_id = ?", (exec_id,)).fetchone() is not None

    def executions(self, intent_id: str | None = None, *, unconsumed: bool = False) -> list[ExecutionRow]:
        sql = "SELECT * FROM executions"
        cond, args = [], []
        if intent_id is not None:
            cond.append("intent_id = ?")
            args.append(intent_id)
        if unconsumed:
            cond.append("fill_id IS NULL AND combo = 0")
        if cond:
            sql += " WHERE " + " AND ".join(cond)
        sql += " ORDER BY ts, exec_id"
        return [ExecutionRow(r["exec_id"], r["intent_id"], r["order_id"], r["perm_id"], r["con_id"], r["instrument"],
                             r["side"], r["shares"], r["price"], r["commission"], bool(r["combo"]), r["ts"], r["fill_id"])
                for r in self.db.execute(sql, args).fetchall()]

    def intents_with_unconsumed_executions(self) -> list[str]:
        rows = self.db.execute("SELECT DISTINCT intent_id FROM executions WHERE fill_id IS NULL AND combo = 0 "
                               "AND intent_id IS NOT NULL ORDER BY intent_id").fetchall()
        return [r["intent_id"] for r in rows]

    def last_execution_ts(self) -> str | None:
        row = self.db.execute("SELECT MAX(ts) AS ts FROM executions").fetchone()
        return row["ts"] if row and row["ts"] else None

    def record_fill(self, *, fill_id: str, intent_id: str, book: str, purpose: str, ts: dt.datetime, combo_qty: int,
                    net_price: float, commission: float, legs: list[dict], exec_ids: list[str]) -> bool:
        cur = self._write(
            "INSERT OR IGNORE INTO fills(fill_id, intent_id, book, purpose, ts, combo_qty, net_price, commission,"
            " legs_json) VALUES(?,?,?,?,?,?,?,?,?)",
            (fill_id, intent_id, book, purpose, ts.isoformat(), int(combo_qty), float(net_price), float(commission),
             dumps(legs)))
        if cur.rowcount != 1:
            return False
        for e in exec_ids:
            self._write("UPDATE executions SET fill_id = ? WHERE exec_id = ?", (fill_id, e))
        return True

    def has_fill(self, fill_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM fills WHERE fill_id = ?", (fill_id,)).fetchone() is not None

    def fills(self, intent_id: str | None = None, session: dt.date | None = None) -> list[dict]:
        sql, args = "SELECT * FROM fills", []
        cond = []
        if intent_id is not None:
            cond.append("intent_id = ?")
            args.append(intent_id)
        if session is not None:
            cond.append("substr(ts, 1, 10) = ?")
            args.append(session.isoformat())
        if cond:
            sql += " WHERE " + " AND ".join(cond)
        sql += " ORDER BY ts, fill_id"
        out = []
        for r in self.db.execute(sql, args).fetchall():
            d = dict(r)
            d["legs"] = loads(d.pop("legs_json"))
            out.append(d)
        return out

    def filled_units(self, intent_id: str) -> int:
        row = self.db.execute("SELECT COALESCE(SUM(combo_qty), 0) AS n FROM fills WHERE intent_id = ?",
                              (intent_id,)).fetchone()
        return int(row["n"])

    # ---- positions (broker view) ---------------------------------------------------------------
    def replace_positions(self, rows: list[tuple[str, int | None, float, float | None]]) -> None:
        now = _now()
        with self.transaction():
            self.db.execute("DELETE FROM positions")
            for key, con_id, qty, avg in rows:
                self.db.execute("INSERT OR REPLACE INTO positions(instrument, con_id, quantity, avg_cost, updated) "
                                "VALUES(?,?,?,?,?)", (key, con_id, float(qty), avg, now))

    def positions(self) -> list[dict]:
        return [dict(r) for r in self.db.execute("SELECT * FROM positions ORDER BY instrument").fetchall()]

    # ---- strategy state, ledger, jobs ----------------------------------------------------------
    def save_strategy(self, book: str, state: dict) -> None:
        self._write("INSERT INTO strategy_state(book, state_json, updated) VALUES(?,?,?) ON CONFLICT(book) DO UPDATE "
                    "SET state_json = excluded.state_json, updated = excluded.updated", (book, dumps(state), _now()))

    def load_strategy(self, book: str) -> dict | None:
        row = self.db.execute("SELECT state_json FROM strategy_state WHERE book = ?", (book,)).fetchone()
        return None if row is None else loads(row["state_json"])

    def strategy_states(self) -> dict[str, dict]:
        return {r["book"]: loads(r["state_json"]) for r in self.db.execute("SELECT * FROM strategy_state").fetchall()}

    def save_ledger(self, ledger: Ledger) -> None:
        self.set_meta("ledger", ledger_to_dict(ledger))

    def load_ledger(self, ledger: Ledger) -> bool:
        d = self.get_meta("ledger")
        if d is None:
            return False
        restore_ledger(ledger, d)
        return True

    def job_done(self, session: dt.date, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM jobs WHERE session = ? AND name = ?",
                               (session.isoformat(), name)).fetchone() is not None

    def mark_job_done(self, session: dt.date, name: str) -> None:
        self._write("INSERT OR IGNORE INTO jobs(session, name, done_at) VALUES(?,?,?)", (session.isoformat(), name, _now()))

    def jobs_done(self, session: dt.date) -> list[str]:
        return [r["name"] for r in self.db.execute("SELECT name FROM jobs WHERE session = ? ORDER BY done_at",
                                                   (session.isoformat(),)).fetchall()]

    # ---- contracts cache -----------------------------------------------------------------------
    def save_contract(self, key: str, con_id: int, contract: dict) -> None:
        self._write("INSERT OR REPLACE INTO contracts(instrument, con_id, contract_json) VALUES(?,?,?)",
                    (key, int(con_id), dumps(contract)))

    def contracts(self) -> list[tuple[str, int, dict]]:
        return [(r["instrument"], r["con_id"], loads(r["contract_json"]))
                for r in self.db.execute("SELECT * FROM contracts").fetchall()]
