"""Test-only: the master's store as on a full disk, imported by a test's own gunicorn config.

While the file STATE_FULL_FILE names exists, every COMMIT of a write transaction (BEGIN
IMMEDIATE) on a connection that writes a store (`<name>.sqlite`) fails as SQLite fails on a
full disk: the transaction rolled back by SQLite itself, then SQLITE_FULL ("database or disk is
full"), for the data and the status alike. Production code has no such switch.
"""
from __future__ import annotations

import os
import sqlite3
from typing import Any

_connect = sqlite3.connect


class _Full(sqlite3.Connection):
    writing = False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        statement = sql.strip().upper()
        if statement.startswith("BEGIN"):
            self.writing = statement == "BEGIN IMMEDIATE"
        elif statement == "COMMIT" and self.writing \
                and os.path.exists(os.environ["STATE_FULL_FILE"]):
            super().execute("ROLLBACK")  # what SQLite does itself on SQLITE_FULL
            raise sqlite3.OperationalError("database or disk is full")
        return super().execute(sql, *args)


def _connecting(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
    # The writer opens the store by its path; readers by a read-only URI (dataset/db.py).
    if not kwargs.get("uri") and str(database).endswith(".sqlite"):
        kwargs["factory"] = _Full
    connection: sqlite3.Connection = _connect(database, *args, **kwargs)
    return connection


sqlite3.connect = _connecting  # type: ignore[assignment]
