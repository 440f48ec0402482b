"""Every query the store's reader and writer issue is an index search: EXPLAIN QUERY PLAN shows
no SCAN of a table (an FTS5 MATCH is a virtual table's own search) and no TEMP B-TREE, on a
file of a few thousand synthetic releases without statistics (no ANALYZE, no sqlite_stat1);
and each search reads what its answer needs: the same work takes the same VM steps on that
file padded with three times its releases, older than every answer (tests/plans.py)."""
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
from feedsvc.dataset.rows import FIELDS, micros
from feedsvc.dataset.selecting import MAX_ARMS, MAX_WORDS
from feedsvc.dataset.served import Cursor, Filters
from feedsvc.dataset.visible import LOWEST_KEY, view_at
from feedsvc.dataset.write import FileChange, apply
from feedsvc.operations.synth import write_archive

from .plans import counted, grown, plan, scanned
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
        steps = plan(conn, sql, values)
        if scanned(steps, ()) or any("TEMP B-TREE" in step for step in steps):
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


@pytest.fixture(scope="module")
def padded(archive: tuple[Dataset, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The archive's store with three plain copies of each release a century, two and three
    before it (no media, notice, draft or update): rows no answer of the archive's years needs,
    in files after the archive's (whose keys and file ids stay)."""
    dataset, _ = archive
    old = [replace(r, id=f"{r.id}-old{n}", published=r.published - timedelta(days=36525 * n),
                   updated=None, draft=False, corrections=(), withdrawn=None,
                   withdrawn_note=None, image=None, attachments=())
           for n in (1, 2, 3) for r in dataset.releases]
    grown_by = replace(dataset, releases=(*dataset.releases, *old))
    path = tmp_path_factory.mktemp("padded") / "store.sqlite3"
    conn = connect(path, write=True)
    rebuild(conn, grown_by, files_of(grown_by, per_file=3))
    # FTS5 left the larger index in three segments (the archive's: one), and a MATCH looks
    # each word up in each segment: a cost of the log of the archive, not of its rows.
    with conn:
        conn.execute("INSERT INTO release_words(release_words) VALUES ('optimize')")
    conn.close()
    return path


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


def read_everything(conn: sqlite3.Connection | Recorder, dataset: Dataset) -> None:
    """Ask the store every question a reader asks, at two moments."""
    zone = dataset.site.zone
    for now in (datetime(2015, 1, 1, tzinfo=zone), datetime(2024, 6, 1, 3, tzinfo=zone)):
        view = view_at(conn, meta_of(dataset), now)  # type: ignore[arg-type]
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


def test_every_reader_query_is_an_index_search(archive: tuple[Dataset, Path]) -> None:
    dataset, path = archive
    conn = connect(path, write=False)
    recorder = Recorder(conn)
    read_everything(recorder, dataset)
    assert len(recorder.seen) > 25
    assert flagged(conn, recorder.seen) == []


def test_no_reader_query_walks_rows_its_answer_does_not_need(
        archive: tuple[Dataset, Path], padded: Path) -> None:
    """The same questions take about the same VM steps on the store padded with three times
    its releases, a century and more older than any answer: no query reads a range of keys
    (a search, by its plan) wider than what it returns."""
    dataset, path = archive
    costs = []
    for store in (path, padded):
        conn = connect(store, write=False)
        with counted(conn) as runs:
            read_everything(conn, dataset)
        costs.append(runs)
    assert len(costs[0]) > 100
    assert grown(costs[0], costs[1]) == []


def test_the_steps_fail_a_key_range_the_plan_calls_a_search(
        archive: tuple[Dataset, Path], padded: Path) -> None:
    """The check of the test above fails the tombstones query of an earlier cut (a `key >= ?`
    bound beside `notice_until_us > ?`: every feed 2.5-3.5x slower), whose plan is a search
    of the primary key by its words, and passes the query as it is."""
    dataset, path = archive
    cut = (f"SELECT {FIELDS} FROM releases WHERE notice_until_us > ? AND key <= ? "
           "AND key >= ?")
    now = datetime(2024, 6, 1, 3, tzinfo=dataset.site.zone)
    costs: list[list[tuple[str, int]]] = []
    for store in (path, padded):
        conn = connect(store, write=False)
        view = view_at(conn, meta_of(dataset), now)
        with counted(conn) as runs:
            assert conn.execute(cut, (micros(now), view.upto, LOWEST_KEY)).fetchall()
            view.tombstones(Filters())
        costs.append(runs)
        steps = plan(conn, cut, (micros(now), view.upto, LOWEST_KEY))
        assert not scanned(steps, ()) and "INTEGER PRIMARY KEY" in steps[0], steps
    assert [sql for sql, _, _ in grown(costs[0], costs[1])] == [costs[0][0][0]]
    assert costs[0][1][0].startswith("SELECT") and "notice_until_us" in costs[0][1][0]


def test_the_bounds_leave_room_for_real_queries() -> None:
    """q's bound is enforced by the query parser (tests/test_feeds.py: 13 words are a 400)."""
    assert MAX_WORDS >= 8 and MAX_ARMS >= 4


def copied(path: Path, folder: Path) -> sqlite3.Connection:
    """Return a writer's connection to a copy of the store at `path`."""
    copy = folder / f"copy-{path.name}"
    source = sqlite3.connect(path)
    target = sqlite3.connect(copy)
    source.backup(target)
    source.close()
    target.close()
    return connect(copy, write=True)


def write_some(conn: sqlite3.Connection | Recorder, dataset: Dataset) -> None:
    """Apply an edit (a release moved by a second), a new file and a removed one."""
    files = files_of(dataset, per_file=3)
    edited = files[5]
    assert edited.releases
    first = edited.releases[0]
    moved = replace(first, title="Edited", published=first.published + timedelta(seconds=1))
    apply(conn, [edited._replace(releases=(moved, *edited.releases[1:])),  # type: ignore[arg-type]
                 FileChange("new.yaml", 1, 1, 1, b"\1" * 16, (replace(first, id="brand-new"),))],
          [files[7].path], version="v2")


def test_every_writer_statement_is_an_index_search(archive: tuple[Dataset, Path],
                                                    tmp_path: Path) -> None:
    dataset, path = archive
    conn = copied(path, tmp_path)
    recorder = Recorder(conn)
    write_some(recorder, dataset)
    assert flagged(conn, recorder.seen) == []


def test_no_writer_statement_walks_rows_it_does_not_change(
        archive: tuple[Dataset, Path], padded: Path, tmp_path: Path) -> None:
    dataset, path = archive
    costs = []
    for store in (path, padded):
        conn = copied(store, tmp_path)
        with counted(conn) as runs:
            write_some(conn, dataset)
        costs.append(runs)
    assert len(costs[0]) > 20
    assert grown(costs[0], costs[1]) == []


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
