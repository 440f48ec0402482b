"""What a statement costs: an index search or a scan of a table, as SQLite plans it; and the
rows it walks, as the VM steps it takes on a small store and on the same store grown.

A plan's text cannot tell a range of a few rows from a range of every row: `SEARCH releases
USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)` reads both. So the stores' tests also run the
same work on a store and on that store with many more rows that no answer needs (older
releases): a statement whose steps grow with the rows added reads what it does not need.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

Values = Sequence[Any] | Mapping[str, Any]


def partial_indexes(conn: sqlite3.Connection) -> set[str]:
    return {name for name, sql in conn.execute(
        "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL")
        if " WHERE " in sql.upper()}


def plan(conn: sqlite3.Connection, sql: str, values: Values = ()) -> list[str]:
    """Return the steps of a statement's query plan (empty for BEGIN, COMMIT, PRAGMA)."""
    if not sql.lstrip().upper().startswith(("SELECT", "DELETE", "UPDATE", "INSERT", "WITH")):
        return []
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, values)]


def scanned(steps: Iterable[str], few: Iterable[str]) -> bool:
    """Say whether a plan scans a table or a whole index but those of `few`. A co-routine's
    SCAN reads a subquery's own rows (bounded by its LIMIT); an FTS5 MATCH is a virtual
    table's own search."""
    kept = set(few)
    return any(step.startswith("SCAN ") and "VIRTUAL TABLE" not in step
               and "(subquery-" not in step and step.split()[-1] not in kept
               for step in steps)


def scans(conn: sqlite3.Connection, statements: Iterable[str],
          few: Iterable[str] = ()) -> list[tuple[str, list[str]]]:
    """Return each statement (with its values in its text, as a trace callback gets it) whose
    plan scans a table or a whole index, but those of `few` (tables of a few fixed rows). A
    scan of a partial index reads only its few rows (the racy files), so it counts as a
    search; a sort (TEMP B-TREE) of what a search found costs what it found."""
    kept, found = partial_indexes(conn) | set(few), []
    for sql in dict.fromkeys(statements):
        steps = plan(conn, sql)
        if scanned(steps, kept):
            found.append((sql, steps))
    return found


@contextmanager
def counted(conn: sqlite3.Connection) -> Iterator[list[tuple[str, int]]]:
    """Yield the statements the connection runs meanwhile, in order, each with the VM steps
    taken until the next one starts (a statement's rows are read before the next is run);
    what a statement runs inside it (a trigger's, FTS5's own, traced as "-- ...") is its own."""
    runs: list[tuple[str, int]] = []

    def started(sql: str) -> None:
        if not sql.startswith("-- ") or not runs:
            runs.append((sql, 0))

    def step() -> int:
        if runs:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        return 0
    conn.set_trace_callback(started)
    conn.set_progress_handler(step, 1)
    try:
        yield runs
    finally:
        conn.set_progress_handler(None, 1)
        conn.set_trace_callback(None)


def grown(small: Sequence[tuple[str, int]], large: Sequence[tuple[str, int]],
          slack: float = 1.5, floor: int = 100) -> list[tuple[str, int, int]]:
    """Return each statement (as run on the small store) whose steps on the large store pass
    `slack` times its steps on the small one, plus `floor` (a few lookups' worth): the same
    work, run on both (counted), must issue the same statements."""
    assert len(small) == len(large), (len(small), len(large))
    return [(sql, few, many) for (sql, few), (_, many) in zip(small, large, strict=True)
            if many > few * slack + floor]
