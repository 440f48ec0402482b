"""Every query the store's reader and writer issue is an index search: EXPLAIN QUERY PLAN shows
no SCAN of a table (an FTS5 MATCH is a virtual table's own search) and no TEMP B-TREE, on a
file of a few thousand synthetic releases without statistics (no ANALYZE, no sqlite_stat1)."""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from feedsvc.dataset import Dataset, load_dataset
from feedsvc.dataset.bulkload import rebuild
from feedsvc.dataset.db import connect
from feedsvc.dataset.selecting import MAX_ARMS, MAX_WORDS
from feedsvc.dataset.served import Cursor, Filters
from feedsvc.dataset.visible import view_at
from feedsvc.dataset.write import FileChange, apply
from feedsvc.operations.synth import write_archive

from .storecheck import files_of, meta_of


class Recorder:
    """A connection that notes each statement and its values before running it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.seen: dict[str, Any] = {}

    def execute(self, sql: str, values: Any = ()) -> sqlite3.Cursor:
        self.seen.setdefault(sql, values)
        return self.conn.execute(sql, values)

    def executemany(self, sql: str, values: Iterable[Any]) -> sqlite3.Cursor:
        given = list(values)
        if given:
            self.seen.setdefault(sql, given[0])
        return self.conn.executemany(sql, given)


def flagged(conn: sqlite3.Connection, seen: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """Return each statement whose plan scans a table or sorts in a temporary b-tree."""
    found = []
    for sql, values in seen.items():
        if not sql.lstrip().upper().startswith(("SELECT", "DELETE", "UPDATE", "INSERT")):
            continue  # BEGIN, COMMIT, ROLLBACK
        steps = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, values)]
        # A co-routine's SCAN reads a subquery's own rows (bounded by its LIMIT): no table.
        if any(s.startswith("SCAN ") and "VIRTUAL TABLE" not in s and "(subquery-" not in s
               or "TEMP B-TREE" in s
               for s in steps):
            found.append((sql, steps))
    return found


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Dataset, Path]]:
    folder = tmp_path_factory.mktemp("plans")
    dataset = load_dataset(write_archive(3000, folder / "archive.yaml", lifecycle=True))
    path = folder / "store.sqlite3"
    conn = connect(path, write=True)
    rebuild(conn, dataset, files_of(dataset, per_file=3))
    assert conn.execute("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'sqlite_stat%'"
                        ).fetchone()[0] == 0
    conn.close()
    yield dataset, path


def every_filter(dataset: Dataset) -> list[Filters]:
    common = frozenset(("workers", "ilo", "the", "of", "and", "on", "a", "in")[:MAX_WORDS])
    few, many = frozenset({"TH"}), frozenset({"TH", "KH", "LA", "VN", "MM"})
    topic = frozenset({"social-security"})
    topics = frozenset(list(dataset.topics)[:5])
    return [Filters(), Filters(few), Filters(many), Filters(frozenset({"ZZ"})),
            Filters(topics=topic), Filters(topics=topics), Filters(few, topic),
            Filters(many, topics), Filters(few, frozenset({"no-such-topic"})),
            Filters(frozenset({"ZZ"}), topic), Filters(words=frozenset({"workers"})),
            Filters(words=common), Filters(few, words=frozenset({"workers", "ilo"})),
            Filters(frozenset({"ZZ"}), words=frozenset({"workers"})),
            Filters(many, topics, common),
            Filters(few, since=datetime(2020, 1, 1).date()),
            Filters(since=datetime(2020, 1, 1).date()),
            Filters(words=frozenset({"workers"}), since=datetime(2020, 1, 1).date())]


def test_every_reader_query_is_an_index_search(archive: tuple[Dataset, Path]) -> None:
    dataset, path = archive
    conn = connect(path, write=False)
    recorder = Recorder(conn)
    zone = dataset.site.zone
    for now in (datetime(2015, 1, 1, tzinfo=zone), datetime(2024, 6, 1, 3, tzinfo=zone)):
        view = view_at(recorder, meta_of(dataset), now)  # type: ignore[arg-type]
        cursor = Cursor(datetime(2012, 3, 1, tzinfo=zone), "pr-2012-00100")
        for filters in every_filter(dataset):
            for before in (None, cursor):
                view.select(filters, 20, before)
            view.tombstones(filters)
        for name in (None, "countries/TH", "countries/US", "topics/social-security"):
            view.count(name)
            view.newest(name)
        view.status(dataset.releases[100].id)
        assert view.next_change is not None and view.countries()
        runs = view.runs([500, 500, 0, 500])
        assert len(runs) == 4 and view.listed(runs[3]) and view.lastmod(runs[3])
        assert view.media_files()
    assert len(recorder.seen) > 25
    assert flagged(conn, recorder.seen) == []


def test_the_bounds_leave_room_for_real_queries() -> None:
    """q's bound is enforced by the query parser (tests/test_feeds.py: 13 words are a 400)."""
    assert MAX_WORDS >= 8 and MAX_ARMS >= 4


def test_every_writer_statement_is_an_index_search(archive: tuple[Dataset, Path],
                                                    tmp_path: Path) -> None:
    dataset, path = archive
    copy = tmp_path / "store.sqlite3"
    source = sqlite3.connect(path)
    target = sqlite3.connect(copy)
    source.backup(target)
    source.close()
    target.close()
    conn = connect(copy, write=True)
    recorder = Recorder(conn)
    files = files_of(dataset, per_file=3)
    edited = files[5]
    assert edited.releases
    first = edited.releases[0]
    moved = replace(first, title="Edited", published=first.published + timedelta(seconds=1))
    apply(recorder, [replace(edited, releases=(moved, *edited.releases[1:])),  # type: ignore[arg-type]
                     FileChange("new.yaml", 1, 1, 1, b"\1" * 16,
                                (replace(first, id="brand-new"),))],
          [files[7].path], version="v2")
    assert flagged(conn, recorder.seen) == []


def test_a_sitemap_part_reads_only_its_own_run(archive: tuple[Dataset, Path]) -> None:
    """A part is an index range from its first key: the last part of an archive costs the
    SQLite steps of the first (OFFSET would step over every earlier entry), and each run
    starts where the one before it ended."""
    dataset, path = archive
    conn = connect(path, write=False)
    view = view_at(conn, meta_of(dataset), datetime(2024, 6, 1, tzinfo=UTC))
    runs = view.runs([250] * (view.count() // 250))
    assert len(runs) >= 8
    listed = [view.listed(run) for run in runs]
    assert [len(rows) for rows in listed] == [250] * len(runs)
    everything = conn.execute("SELECT id FROM releases WHERE key <= ? AND hidden = 0 ORDER BY "
                              "key DESC LIMIT ?", (view.upto, 250 * len(runs))).fetchall()
    assert [rid for rows in listed for rid, _ in rows] == [rid for (rid,) in everything]
    assert [view.lastmod(run) for run in runs] == [max(s for _, s in rows) for rows in listed]
    steps = [0]

    def step() -> int:
        steps[0] += 1
        return 0
    conn.set_progress_handler(step, 1)
    costs = []
    for run in (runs[0], runs[-1]):
        steps[0] = 0
        view.listed(run)
        costs.append(steps[0])
    conn.set_progress_handler(None, 1)
    assert costs[1] < costs[0] * 1.2, costs


def test_tombstones_are_read_from_the_notice_index(archive: tuple[Dataset, Path]) -> None:
    """A feed's tombstones are the few releases whose notice runs (a partial index), never a
    range of keys: a `key >= ?` bound beside it made SQLite walk every key below now (a
    search by the plan's words, a scan by its cost)."""
    dataset, path = archive
    conn = connect(path, write=False)
    recorder = Recorder(conn)
    view = view_at(recorder, meta_of(dataset),  # type: ignore[arg-type]
                   datetime(2024, 6, 1, 3, tzinfo=dataset.site.zone))
    for filters in every_filter(dataset):
        view.tombstones(filters)
    plans = [[row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, values)]
             for sql, values in recorder.seen.items() if "notice_until_us >" in sql]
    assert plans and all(any("releases_notice" in step for step in steps) for steps in plans)
