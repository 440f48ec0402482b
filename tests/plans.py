"""What a statement costs, as SQLite plans it: an index search, or a scan of a table."""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable


def partial_indexes(conn: sqlite3.Connection) -> set[str]:
    return {name for name, sql in conn.execute(
        "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL")
        if " WHERE " in sql.upper()}


def scans(conn: sqlite3.Connection, statements: Iterable[str],
          few: Iterable[str] = ()) -> list[tuple[str, list[str]]]:
    """Return each statement (with its values in its text, as a trace callback gets it) whose
    plan scans a table or a whole index, but those of `few` (tables of a few fixed rows). A
    scan of a partial index reads only its few rows (the racy files), so it counts as a
    search; a sort (TEMP B-TREE) of what a search found costs what it found."""
    partial, found = partial_indexes(conn) | set(few), []
    for sql in dict.fromkeys(statements):
        if not sql.lstrip().upper().startswith(("SELECT", "DELETE", "UPDATE", "INSERT", "WITH")):
            continue  # BEGIN, COMMIT, PRAGMA
        steps = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
        if any(step.startswith("SCAN ") and "VIRTUAL TABLE" not in step
               and "(subquery-" not in step and step.split()[-1] not in partial
               for step in steps):
            found.append((sql, steps))
    return found
