"""The state store's tables, and the migrations that bring an older file up to date.

Version 1: executions keyed by execId alone. Version 2: executions keyed by (execId, owner), the owner being the
order's permId (or "ref:" + its orderRef), plus the execId without its correction counter (`exec_base`) so a
correction finds the report it replaces. A version 1 file is migrated when a daemon claims it (never by
`alvh status`, and not before the login is checked).
"""
from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 2

_TABLES = """
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
_EXECUTIONS = """
CREATE TABLE IF NOT EXISTS executions (
    exec_id     TEXT NOT NULL,
    owner       TEXT NOT NULL,
    exec_base   TEXT NOT NULL,
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
    fill_id     TEXT,
    PRIMARY KEY (exec_id, owner)
);
CREATE INDEX IF NOT EXISTS executions_intent ON executions(intent_id);
CREATE INDEX IF NOT EXISTS executions_base ON executions(owner, exec_base);
CREATE INDEX IF NOT EXISTS intents_perm ON intents(perm_id);
"""
EXEC_COLUMNS = ("exec_id, owner, exec_base, intent_id, order_id, perm_id, con_id, instrument, side, shares, price, "
              "commission, combo, ts, fill_id")


def exec_base(exec_id: str) -> tuple[str, int]:
    """IB execIds end in a correction counter (`...01.01` -> `...01.02`): (the id without it, the counter)."""
    head, dot, tail = exec_id.rpartition(".")
    if dot and head and tail.isdigit():
        return head, int(tail)
    return exec_id, 0


def _statements(script: str) -> list[str]:
    return [s for s in (x.strip() for x in script.split(";")) if s]


def create_tables(db: sqlite3.Connection) -> None:
    """A new, empty store at the current version (inside one transaction)."""
    db.execute("BEGIN IMMEDIATE")
    for stmt in _statements(_TABLES + _EXECUTIONS):
        db.execute(stmt)
    db.execute("INSERT INTO meta(key, value) VALUES('schema_version', ?)", (str(SCHEMA_VERSION),))
    db.execute("COMMIT")


def migrate(db: sqlite3.Connection) -> None:
    """Bring a store to the current version; runs inside the caller's transaction."""
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = int(row[0]) if row else 1
    if version >= SCHEMA_VERSION:
        return
    for stmt in _statements(_TABLES):   # tables a very old file may lack
        db.execute(stmt)
    db.execute("ALTER TABLE executions RENAME TO executions_v1")
    db.execute("DROP INDEX IF EXISTS executions_intent")
    for stmt in _statements(_EXECUTIONS):
        db.execute(stmt)
    rows = db.execute("SELECT exec_id, intent_id, order_id, perm_id, con_id, instrument, side, shares, price, "
                      "commission, combo, ts, fill_id FROM executions_v1").fetchall()
    db.executemany(
        f"INSERT OR IGNORE INTO executions({EXEC_COLUMNS}) VALUES({','.join('?' * 15)})",
        [(r[0], str(r[3]) if r[3] else f"ref:{r[1] or ''}", exec_base(r[0])[0], *r[1:]) for r in rows])
    db.execute("DROP TABLE executions_v1")
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
