"""The daemon's state store: SQLite (stdlib) in WAL mode, one file per account and mode. It implements the
engine's OrderJournal and ContractCache ports for the IB adapter.

What it holds and why:
- `intents`: the intent journal. A row is written - and committed together with the strategy state
  that produced it - *before* the order is sent, then moves pending -> sending -> working ->
  filled / cancelled / rejected / abandoned. After a crash every non-final row is resolved against
  the broker by its intent id (= IB orderRef): working -> adopt, filled -> record fills, not at the
  broker -> resend (same session) or abandon. So no order is sent twice and none is forgotten.
- `executions`: every IB execution once, keyed by (execId, owner) where owner is the order's permId (or its
  orderRef): an execId alone is not unique across TWS sessions. An execId whose last `.NN` part is higher
  than a stored one of the same order is IB's correction of it and replaces it while it is not yet booked.
- `fills`: the engine FillEvents built from executions, committed in the same transaction as the
  ledger snapshot and strategy states they changed.
- `positions`: the broker's positions at the last reconcile (for `alvh status`).
- `strategy_state`, `meta` (ledger snapshot, halted flag, identity, heartbeat), `jobs` (which of the
  session's scheduled jobs are done), `contracts` (resolved conIds, so executions can be mapped back
  to instruments after a restart without asking IB again).
- `meta.identity`: the mode (paper, live or rehearsal) and the account (masked, plus a hash to compare) the
  store belongs to; the daemon refuses a store of another mode or account, naming both.

All writes go through `transaction()` (BEGIN IMMEDIATE ... COMMIT; nested calls join the outer
transaction). Durability: in WAL mode with `synchronous=NORMAL` every commit survives a crash of the process
(SIGKILL included) without an fsync per commit; `sync()` - called by the broker before it sends an order - commits
with `synchronous=FULL`, which makes every earlier commit durable against a crash of the machine too. So an
intent and the decision that produced it are on disk before its order can reach IB; what a power loss can still
take back is only what IB reports again (executions, statuses) and heartbeats. (A FULL fsync on every commit,
as before, put ~15 fsyncs of up to 8 ms on the event loop per order.)
A store opened on an existing file writes nothing until `claim()` (the daemon calls it once the login is
checked), so a refused start leaves the file as it was.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from adapters.ib.accounts import mask
from adapters.live.codec import dumps, ledger_to_dict, loads, order_from_dict, order_to_dict, restore_ledger
from adapters.live.errors import StateError
from adapters.live.schema import EXEC_COLUMNS, create_tables, exec_base, migrate
from engine.ledger import Ledger
from engine.orders import OrderRequest
from engine.ports import OPEN_STATES, ExecutionRow, IntentRow

MODES = ("paper", "live", "rehearsal")

def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def account_key(account: str) -> str:
    """A stable, non-reversible key for an account id: stores compare accounts without holding the id."""
    return hashlib.sha256(f"alvh-account:{account}".encode()).hexdigest()[:16]


def configured_state_path(cfg: Any) -> Path:
    """`daemon.state_path` of a RunConfig, relative to the config file's directory (not the working directory),
    so `alvh run`, `alvh halt` and `alvh status` given the same config open the same file from anywhere."""
    state = Path(cfg.daemon.state_path).expanduser()
    source = Path(str(cfg.source))
    if not state.is_absolute() and source.is_file():
        state = source.resolve().parent / state
    return state


def describe_sqlite_error(path: Path, e: sqlite3.Error) -> str:
    """One sentence for a state file SQLite refuses."""
    text = str(e)
    if "locked" in text or "busy" in text:
        return f"state file {path} is locked by another process (another daemon or `alvh halt` on it?): {text}"
    if isinstance(e, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text or "corrupt" in text):
        return f"state file {path} is damaged (truncated or corrupt: {text}); restore it from a backup or move it away"
    return f"state file {path}: {text}"


class StateStore:
    def __init__(self, path: str | Path, *, readonly: bool = False, create: bool = True,
                 busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        existed = self.path.exists()
        if not existed and (readonly or not create):
            raise StateError(f"no daemon state at {self.path}")
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.created = not existed
        self.readonly = readonly
        uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
        self._depth = 0
        try:
            self.db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=busy_timeout,
                                      check_same_thread=False)
        except sqlite3.Error as e:
            raise StateError(describe_sqlite_error(self.path, e)) from None
        self.db.row_factory = sqlite3.Row
        try:
            self.db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            if existed:
                self._check_readable()
            if not readonly:
                self.db.execute("PRAGMA synchronous = NORMAL")
                if not existed:
                    self.db.execute("PRAGMA journal_mode = WAL")
                    create_tables(self.db)
        except sqlite3.Error as e:
            self.db.close()
            raise StateError(describe_sqlite_error(self.path, e)) from None

    def _check_readable(self) -> None:
        ok = self.db.execute("PRAGMA quick_check").fetchone()[0]
        if ok != "ok":
            raise sqlite3.DatabaseError(f"database disk image is malformed ({ok})")
        names = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"meta", "intents"} <= names or self.get_meta("schema_version") is None:
            raise StateError(f"{self.path} is not an alvh daemon state file")

    @classmethod
    def open_existing(cls, path: str | Path, *, readonly: bool = False, busy_timeout: float = 3.0) -> StateStore:
        """An existing daemon store (for `alvh status/halt/resume`): never creates one."""
        return cls(path, readonly=readonly, create=False, busy_timeout=busy_timeout)

    def close(self) -> None:
        self.db.close()

    def discard(self) -> None:
        """Close and delete a store this process created and never claimed (a refused start leaves nothing)."""
        self.close()
        if self.created:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    Path(f"{self.path}{suffix}").unlink()

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

    def sync(self) -> None:
        """Make every commit so far durable against a machine crash (one fsync of the WAL)."""
        if self._depth:
            raise RuntimeError("sync() inside a transaction: the open transaction is not committed yet")
        self.db.execute("PRAGMA synchronous = FULL")
        try:
            with self.transaction():
                self.db.execute("INSERT INTO meta(key, value) VALUES('synced', ?) ON CONFLICT(key) DO UPDATE "
                                "SET value = excluded.value", (dumps(_now()),))
        finally:
            self.db.execute("PRAGMA synchronous = NORMAL")

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

    def set_halted(self, reason: str, by: str = "cli") -> dict:
        """Ask for a halt: the flag keeps the first reason until resumed; every request gets its own stamp,
        which the daemon's `halt_ack` answers (`alvh halt` waits for it)."""
        request = {"reason": reason, "by": by, "at": _now()}
        with self.transaction():
            if self.halted() is None:
                self.set_meta("halted", request)
            self.set_meta("halt_request", request)
        return request

    def halt_request(self) -> dict | None:
        return self.get_meta("halt_request")

    def clear_halted(self) -> None:
        self._write("DELETE FROM meta WHERE key IN ('halted', 'halt_request', 'halt_ack')")

    def heartbeat(self, info: dict) -> None:
        self.set_meta("heartbeat", {"at": _now(), **info})

    # ---- identity: which account and mode this store belongs to --------------------------------
    def identity(self) -> dict:
        """{"mode", "account", "account_key"} as recorded (stores written before identities: from their
        `daemon` and `account` meta; unknown parts are None)."""
        ident = self.get_meta("identity")
        if ident is not None:
            return ident
        legacy = self.get_meta("daemon") or {}
        mode = {"paper_replay": "rehearsal"}.get(legacy.get("mode"), legacy.get("mode"))
        if mode is None and self.get_meta("seeded") is not None:
            mode = "rehearsal"
        return {"mode": mode, "account": self.get_meta("account") or None, "account_key": None}

    def check_identity(self, mode: str, account: str | None = None) -> None:
        """Raise StateError, naming both, if the store was written in another mode or for another account."""
        ident = self.identity()
        if ident.get("mode") and ident["mode"] != mode:
            raise StateError(f"state file {self.path} was written by a {_mode_name(ident['mode'])}, not by this "
                             f"{_mode_name(mode)}: give this run its own daemon.state_path (or --state)")
        if account is None:
            return
        theirs, their_key = ident.get("account"), ident.get("account_key")
        mismatch = (their_key is not None and their_key != account_key(account)) or (
            their_key is None and theirs and theirs != mask(account))
        if mismatch:
            raise StateError(f"state file {self.path} belongs to account {theirs}, but this login trades "
                             f"{mask(account)}: refusing to mix two accounts in one store")

    def claim(self, mode: str, account: str | None, **info: Any) -> None:
        """Record (or confirm) this store's mode and account; bring the schema up to date. The first write a
        daemon makes to an existing store."""
        self.check_identity(mode, account)
        with self.transaction():
            migrate(self.db)
            ident = {"mode": mode, "account": mask(account) if account else None,
                     "account_key": account_key(account) if account else None}
            self.set_meta("identity", ident)
            self.set_meta("daemon", {**info, "mode": mode})
            if account:
                self.set_meta("account", mask(account))

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

    def intent_ids(self, since: dt.date | None = None) -> list[str]:
        sql, args = "SELECT intent_id FROM intents", ()
        if since is not None:
            sql, args = sql + " WHERE session >= ?", (since.isoformat(),)
        return [r[0] for r in self.db.execute(sql, args).fetchall()]

    def intent_for_perm(self, perm_id: int) -> str | None:
        row = self.db.execute("SELECT intent_id FROM intents WHERE perm_id = ? ORDER BY created DESC LIMIT 1",
                              (int(perm_id),)).fetchone()
        return row[0] if row else None

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
    def record_execution(self, row: ExecutionRow) -> str:
        """Insert one IB execution: "new", "known" (already stored), "corrected" (replaced an unbooked earlier
        report of the same execution) or "corrected_after_booking" (stored, but the earlier report is already
        in a fill: the caller must flag it)."""
        base, n = exec_base(row.exec_id)
        with self.transaction():
            if self.db.execute("SELECT 1 FROM executions WHERE exec_id = ? AND owner = ?",
                               (row.exec_id, row.owner)).fetchone() is not None:
                return "known"
            earlier = [r for r in self.db.execute("SELECT exec_id, fill_id FROM executions WHERE owner = ? AND "
                                                  "exec_base = ?", (row.owner, base)).fetchall()]
            if any(exec_base(r["exec_id"])[1] > n for r in earlier):
                return "known"  # a later correction is already here: this is the stale original
            outcome, fill_id = "new", row.fill_id
            if earlier:
                if any(r["fill_id"] for r in earlier):
                    outcome, fill_id = "corrected_after_booking", "corrected-after-booking"
                else:
                    outcome = "corrected"
                    self.db.execute("DELETE FROM executions WHERE owner = ? AND exec_base = ?", (row.owner, base))
            commission = None if row.commission is None or not math.isfinite(row.commission) else float(row.commission)
            self.db.execute(f"INSERT INTO executions({EXEC_COLUMNS}) VALUES({','.join('?' * 15)})",
                            (row.exec_id, row.owner, base, row.intent_id, row.order_id, row.perm_id, row.con_id,
                             row.instrument, row.side, float(row.shares), float(row.price), commission,
                             int(row.combo), row.ts, fill_id))
        return outcome

    def set_commission(self, exec_id: str, owner: str | None, commission: float) -> str | None:
        sql, args = "SELECT owner, intent_id FROM executions WHERE exec_id = ? AND commission IS NULL", [exec_id]
        if owner is not None:
            sql += " AND owner = ?"
            args.append(owner)
        row = self.db.execute(sql + " ORDER BY ts DESC LIMIT 1", args).fetchone()
        if row is None:
            return None
        self._write("UPDATE executions SET commission = ? WHERE exec_id = ? AND owner = ?",
                    (float(commission), exec_id, row["owner"]))
        return row["intent_id"]

    def executions(self, intent_id: str | None = None, *, unconsumed: bool = False) -> list[ExecutionRow]:
        sql = f"SELECT {EXEC_COLUMNS} FROM executions"
        cond, args = [], []
        if intent_id is not None:
            cond.append("intent_id = ?")
            args.append(intent_id)
        if unconsumed:
            cond.append("fill_id IS NULL AND combo = 0")
        if cond:
            sql += " WHERE " + " AND ".join(cond)
        sql += " ORDER BY ts, exec_id"
        return [ExecutionRow(r["exec_id"], r["owner"], r["intent_id"], r["order_id"], r["perm_id"], r["con_id"],
                             r["instrument"], r["side"], r["shares"], r["price"], r["commission"], bool(r["combo"]),
                             r["ts"], r["fill_id"])
                for r in self.db.execute(sql, args).fetchall()]

    def intents_with_unconsumed_executions(self) -> list[str]:
        rows = self.db.execute("SELECT DISTINCT intent_id FROM executions WHERE fill_id IS NULL AND combo = 0 "
                               "AND intent_id IS NOT NULL ORDER BY intent_id").fetchall()
        return [r["intent_id"] for r in rows]

    def last_execution_ts(self) -> str | None:
        row = self.db.execute("SELECT MAX(ts) AS ts FROM executions").fetchone()
        return row["ts"] if row and row["ts"] else None

    def record_fill(self, *, fill_id: str, intent_id: str, book: str, purpose: str, ts: dt.datetime, combo_qty: int,
                    net_price: float, commission: float, legs: list[dict], executions: list[tuple[str, str]]) -> bool:
        with self.transaction():
            cur = self.db.execute(
                "INSERT OR IGNORE INTO fills(fill_id, intent_id, book, purpose, ts, combo_qty, net_price, commission,"
                " legs_json) VALUES(?,?,?,?,?,?,?,?,?)",
                (fill_id, intent_id, book, purpose, ts.isoformat(), int(combo_qty), float(net_price),
                 float(commission), dumps(legs)))
            if cur.rowcount != 1:
                return False
            self.db.executemany("UPDATE executions SET fill_id = ? WHERE exec_id = ? AND owner = ?",
                                [(fill_id, e, o) for e, o in executions])
        return True

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
            self.db.executemany("INSERT OR REPLACE INTO positions(instrument, con_id, quantity, avg_cost, updated) "
                                "VALUES(?,?,?,?,?)", [(key, con_id, float(qty), avg, now)
                                                      for key, con_id, qty, avg in rows])

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


def _mode_name(mode: str) -> str:
    return {"rehearsal": "rehearsal (--paper-replay)", "paper": "paper-account daemon",
            "live": "live-account daemon"}.get(mode, f"{mode} run")
