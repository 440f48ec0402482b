"""Opening the durable file: checked to be ours and of our schema, made with it if new.

Never replaced: a file that is not an SQLite database, another program's, of another schema
or damaged is a DurableError naming it and saying what an operator can do.
"""
from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FILE_NAME = "activitypub.sqlite3"
APPLICATION_ID = 0x46454431  # "FED1": marks the file as feedsvc's, in the SQLite header
BUSY_TIMEOUT_MS = 5000
log = logging.getLogger("feedsvc.activitypub")
# STEPS[n] takes a file from schema n to n + 1 (a new file, schema 0, runs them all), in the
# transaction that sets user_version; a step never edits an earlier one: a file made by it is
# out there.
_SCHEMA_1 = """
CREATE TABLE keys(name TEXT PRIMARY KEY, private_pem BLOB NOT NULL, public_pem TEXT NOT NULL,
                  created INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE followers(handle TEXT NOT NULL, actor_id TEXT NOT NULL, inbox TEXT NOT NULL,
                       shared_inbox TEXT, since INTEGER NOT NULL,
                       PRIMARY KEY(handle, actor_id)) WITHOUT ROWID;
CREATE INDEX followers_actor ON followers(actor_id);
CREATE TABLE activities(id INTEGER PRIMARY KEY AUTOINCREMENT, signer TEXT NOT NULL, body BLOB NOT NULL);
CREATE TABLE deliveries(id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a claimed id is one
                        activity INTEGER NOT NULL REFERENCES activities(id),
                        inbox TEXT NOT NULL, created REAL NOT NULL, due REAL NOT NULL,
                        attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
                        UNIQUE(activity, inbox));
CREATE INDEX deliveries_due ON deliveries(due);
CREATE TRIGGER activity_done AFTER DELETE ON deliveries
WHEN NOT EXISTS (SELECT 1 FROM deliveries WHERE activity = OLD.activity)
BEGIN DELETE FROM activities WHERE id = OLD.activity; END;
CREATE TABLE actor_keys(key_id TEXT PRIMARY KEY, actor_id TEXT NOT NULL,
                        public_pem TEXT NOT NULL, fetched REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX actor_keys_actor ON actor_keys(actor_id);
"""
# The deliverer's ledger (ledger.py) and the inboxes' counts (ratelimit.py), which schema 1
# files got, or not yet, on first use ("IF NOT EXISTS"). ledger.announced: JSON {handle: the
# version it announced}; ledger_sync: generation, commit, now_us, and count: the ledger's rows,
# kept by the triggers in the transaction that moves them (a count(*) would read every row).
_SCHEMA_2 = """
CREATE TABLE IF NOT EXISTS ledger(id TEXT PRIMARY KEY, version TEXT NOT NULL,
                                  announced TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger_sync(name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS ledger_in AFTER INSERT ON ledger BEGIN
UPDATE ledger_sync SET value = value + 1 WHERE name = 'count'; END;
CREATE TRIGGER IF NOT EXISTS ledger_out AFTER DELETE ON ledger BEGIN
UPDATE ledger_sync SET value = value - 1 WHERE name = 'count'; END;
INSERT OR IGNORE INTO ledger_sync SELECT 'count', count(*) FROM ledger;
CREATE TABLE IF NOT EXISTS inbox_posts(key TEXT PRIMARY KEY, window INTEGER NOT NULL,
                                       posts INTEGER NOT NULL) WITHOUT ROWID;
"""
# The boosts the ledger undid (release id, actor, the version it had announced), so that an
# Undo's id answers for those alone (activities.py).
_SCHEMA_3 = """
CREATE TABLE undone_boosts(id TEXT NOT NULL, handle TEXT NOT NULL, version TEXT NOT NULL,
                           PRIMARY KEY(id, handle, version)) WITHOUT ROWID;
"""
# When each boost was undone (epoch seconds): its Undo's id answers for ledger.UNDONE_KEPT
# after, and the ledger's sync deletes it then (by this index). A row of an older file counts
# as undone at the upgrade.
_SCHEMA_4 = """
ALTER TABLE undone_boosts ADD COLUMN undone REAL NOT NULL DEFAULT 0;
UPDATE undone_boosts SET undone = (julianday('now') - 2440587.5) * 86400.0;
CREATE INDEX undone_boosts_undone ON undone_boosts(undone);
"""
STEPS = (_SCHEMA_1, _SCHEMA_2, _SCHEMA_3, _SCHEMA_4)
SCHEMA = len(STEPS)


class DurableError(RuntimeError):
    """The durable file cannot be used; the message names it and says what an operator can do."""


@contextmanager
def named(path: Path) -> Iterator[None]:
    """Turn an SQLite error into a DurableError naming the file."""
    try:
        yield
    except sqlite3.DatabaseError as error:
        what = "not an SQLite database" if str(error) == "file is not a database" else error
        raise DurableError(f"{path}: {what}{_ADVICE}") from error


_ADVICE = ("; this file holds the site's key pair (its fediverse identity) and its followers: "
           "restore it from a backup, or move it aside to start again with new keys and no followers")


def open_file(path: Path) -> sqlite3.Connection:
    """Open (or create, 0600) the durable file and check it is ours, in our schema. Processes
    opening it at once take turns (a flock on a file beside it): switching a new file to WAL
    does not wait for a busy file as other statements do. The database file itself is only
    ever opened by SQLite: closing any other descriptor of it would drop the process's fcntl
    locks on it, SQLite's own among them (then a closing process, finding no other, deletes
    the -wal and -shm under the others' feet)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # as the state directory is
        turns = os.open(path.with_name(path.name + ".open-lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise DurableError(f"{path}: cannot be opened: {error}") from None
    try:
        fcntl.flock(turns, fcntl.LOCK_EX)
        with named(path):
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            os.chmod(path, 0o600)  # it holds the private key (-wal and -shm take its mode)
            with named(path):
                _prepare(conn, path)
        except BaseException:
            conn.close()
            raise
        return conn
    except OSError as error:
        raise DurableError(f"{path}: cannot be opened: {error}") from None
    finally:
        os.close(turns)  # and with it the flock


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _refuse_foreign(conn, path)  # before anything is written to it
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        was = _schema(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite rolls back itself on some errors (a full disk)
            conn.execute("ROLLBACK")
        raise
    if 0 < was < SCHEMA:
        log.warning("upgraded %s from schema %d to %d (an older feedsvc refuses it now)",
                    path, was, SCHEMA)


def _statements(script: str) -> Iterator[str]:
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""


def _refuse_foreign(conn: sqlite3.Connection, path: Path) -> None:
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if app_id == 0 and version == 0:
        tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
        if tables:
            raise DurableError(f"{path}: not feedsvc's fediverse file ({tables} tables of "
                               f"another program){_ADVICE}")
    elif app_id != APPLICATION_ID:
        raise DurableError(f"{path}: not feedsvc's fediverse file (application id {app_id}){_ADVICE}")
    elif not 0 < version <= SCHEMA:
        raise DurableError(f"{path}: schema {version}, this feedsvc reads 1 to {SCHEMA} (written "
                           f"by another version of feedsvc: run that one){_ADVICE}")


def _schema(conn: sqlite3.Connection) -> int:
    """Create the tables in a new file, or upgrade an older schema's (the version is read
    again in the transaction: another process may have just done it); return the version
    the file had."""
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    for step in STEPS[version:]:
        for statement in _statements(step):  # not executescript: it would COMMIT first
            conn.execute(statement)
    if version == 0:
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA}")
    return version
