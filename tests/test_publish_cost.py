"""A publish costs the work, not the archive: every statement the store's writer runs for a
notified publish (a new release, an edited one) is an index search, as EXPLAIN QUERY PLAN
says on the writer's own connection; a scan of a partial index reads only its few rows (the
racy files), so it counts as a search."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from feedsvc import create_app
from feedsvc.operations.reload import reloader


def partial_indexes(conn: sqlite3.Connection) -> set[str]:
    return {name for name, sql in conn.execute(
        "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL")
        if " WHERE " in sql.upper()}


def scans(conn: sqlite3.Connection, statements: list[str]) -> list[tuple[str, list[str]]]:
    """Return each statement whose plan scans a table (or a whole index) or sorts."""
    partial, found = partial_indexes(conn), []
    for sql in dict.fromkeys(statements):
        if not sql.lstrip().upper().startswith(("SELECT", "DELETE", "UPDATE", "INSERT", "WITH")):
            continue  # BEGIN, COMMIT, PRAGMA
        steps = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
        if any(step.startswith("SCAN ") and "VIRTUAL TABLE" not in step
               and "(subquery-" not in step and step.split()[-1] not in partial
               or "TEMP B-TREE" in step for step in steps):
            found.append((sql, steps))
    return found


def test_a_notified_publish_runs_no_scan_of_the_archive(dataset_dir: Path) -> None:
    app = create_app({"FEEDSVC_DATA": str(dataset_dir)})
    writer = reloader(app)
    conn = writer.looker.db
    releases = dataset_dir / "releases"
    added, edited = releases / "pr-2026-900.yaml", releases / "pr-2004-002.yaml"
    added.write_text((releases / "pr-2004-001.yaml").read_text(encoding="utf-8")
                     .replace("pr-2004-001", "pr-2026-900"), encoding="utf-8")
    edited.write_text(edited.read_text(encoding="utf-8").replace("title: ", "title: Edited "),
                      encoding="utf-8")
    statements: list[str] = []
    conn.set_trace_callback(statements.append)  # the values are in each statement's text
    try:
        assert writer.check(paths=[str(added)]) == "reloaded"
        assert writer.check(paths=[str(edited)]) == "reloaded"
    finally:
        conn.set_trace_callback(None)
    assert len(statements) > 20
    assert scans(conn, statements) == []
    body = app.test_client().get("/readyz").get_json()
    assert body["dataset"]["releases"] == 11 and body["status"] == "ok"
