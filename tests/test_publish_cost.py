"""A publish costs the work, not the archive: every statement the store's writer runs for a
notified publish (a new release, an edited one) is an index search, as EXPLAIN QUERY PLAN
says on the writer's own connection."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from feedsvc import create_app
from feedsvc.operations.reload import reloader

from .plans import scans


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
    _no_scan(conn, statements)
    body = app.test_client().get("/readyz").get_json()
    assert body["dataset"]["releases"] == 11 and body["status"] == "ok"


def test_a_notified_removal_runs_no_scan_of_the_archive(dataset_dir: Path) -> None:
    """The mass-removal guard weighs a removal against the releases the store holds: a kept
    count, not a count of the archive."""
    app = create_app({"FEEDSVC_DATA": str(dataset_dir)})
    writer = reloader(app)
    conn = writer.looker.db
    removed = dataset_dir / "releases" / "pr-2004-002.yaml"
    removed.unlink()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        assert writer.check(paths=[str(removed)]) == "reloaded"
    finally:
        conn.set_trace_callback(None)
    _no_scan(conn, statements)
    body = app.test_client().get("/readyz").get_json()
    assert body["dataset"]["releases"] == 9 and body["status"] == "ok"


def _no_scan(conn: sqlite3.Connection, statements: list[str]) -> None:
    # FTS5 reads its config table (a row or two) once per connection: the writer's is new
    # since the cold build (a new file, sync.build).
    assert scans(conn, statements, few=["main.release_words_config"]) == []
