"""The store's reader: one version per read while the writer commits, a connection per thread
and per process (never one inherited across a fork), unusable files reported."""
from __future__ import annotations

import os
import threading
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from feedsvc.config import BUNDLED_DATA
from feedsvc.dataset import load_dataset, newest_first
from feedsvc.dataset.db import Unusable, connect
from feedsvc.dataset.reader import Reader
from feedsvc.dataset.served import Cursor, Filters
from feedsvc.dataset.write import FileChange, apply

from .storecheck import build_store
from .storedata import ZONES


def _publish(path: Path, rid: str, when: datetime, version: str) -> None:
    dataset = load_dataset(BUNDLED_DATA)
    release = replace(dataset.releases[0], id=rid, title="Added while a read runs",
                      published=when)
    conn = connect(path, write=True)
    apply(conn, [FileChange(f"releases/{rid}.yaml", 1, 1, 1, b"\3" * 16, (release,))], [],
          version=version)
    conn.close()


def test_a_read_sees_one_version_while_the_writer_commits(tmp_path: Path) -> None:
    dataset = load_dataset(BUNDLED_DATA)
    path = tmp_path / "store.sqlite3"
    reader = build_store(dataset, path)
    now = datetime(2030, 1, 1, tzinfo=dataset.site.zone)
    stamp = reader.stamp()
    assert reader.stamp() == stamp  # nothing committed: the same
    with reader.read() as snapshot:
        view = snapshot.view_at(now)
        before = [r.id for r in view.select(Filters(), 5).releases]
        _publish(path, "pr-added", now - timedelta(days=1), "v-after")
        # The commit is done; this read still sees the version it began with, in full.
        assert snapshot.meta.version == dataset.version
        assert [r.id for r in snapshot.view_at(now).select(Filters(), 5).releases] == before
        assert view.count() == len(dataset.releases)
        assert view.status("pr-added") == ("missing", None)
    assert reader.stamp() != stamp
    stamp = reader.stamp()
    with reader.read() as snapshot:
        assert snapshot.meta.version == "v-after"
        view = snapshot.view_at(now)
        assert [r.id for r in view.select(Filters(), 2).releases] == ["pr-added", before[0]]
        assert view.count() == len(dataset.releases) + 1
    assert reader.stamp() == stamp
    _publish(path, "pr-added-2", now - timedelta(days=2), "v-3")
    with reader.read() as snapshot:  # the next read, again: no restart, no re-open
        assert snapshot.meta.version == "v-3"
        assert snapshot.view_at(now).status("pr-added-2")[0] == "ok"


def test_each_read_has_a_connection_of_its_own_and_each_thread_a_stamp(tmp_path: Path) -> None:
    """Two reads at once (a request's lasts across greenlet switches) never share a connection;
    a read after them reuses one of the pool; a stamp is its thread's."""
    reader = build_store(load_dataset(BUNDLED_DATA), tmp_path / "store.sqlite3")
    with reader.read() as first, reader.read() as second:
        assert first.conn is not second.conn
        now = datetime(2030, 1, 1, tzinfo=first.meta.site.zone)
        assert first.view_at(now).count() == second.view_at(now).count() > 0
        pair = {id(first.conn), id(second.conn)}
    with reader.read() as again:
        assert id(again.conn) in pair  # from the pool, not a third connection
    stamps: list[tuple[int, int]] = []
    thread = threading.Thread(target=lambda: stamps.append(reader.stamp()))
    thread.start()
    thread.join()
    assert reader.stamp() == reader.stamp() and reader.stamp()[0] != stamps[0][0]
    assert reader.stamp()[0] not in pair  # never a connection that reads


def test_a_forked_process_opens_its_own_connection(tmp_path: Path) -> None:
    dataset = load_dataset(BUNDLED_DATA)
    reader = build_store(dataset, tmp_path / "store.sqlite3")
    with reader.read() as snapshot:
        parent = id(snapshot.conn)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it read through, then leave at once
        try:
            with reader.read() as snapshot:
                count = snapshot.view_at(datetime(2030, 1, 1, tzinfo=snapshot.meta.site.zone)).count()
                own = id(snapshot.conn) != parent and len(reader._inherited) == 1
            os.write(write_end, f"{int(own)} {count}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 100).decode()
    os.waitpid(pid, 0)
    assert answer == f"1 {len(dataset.releases)}"
    with reader.read() as snapshot:  # the parent's connection is its own still
        assert id(snapshot.conn) == parent


@pytest.mark.parametrize("damage", ["missing", "garbage", "empty"])
def test_an_unusable_file_is_reported(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "store.sqlite3"
    if damage == "garbage":
        path.write_bytes(b"\x00garbage" * 1000)
    elif damage == "empty":
        connect(path, write=True).close()  # a schema, but no dataset written yet
    reader = Reader(path)
    with pytest.raises(Unusable):
        with reader.read():
            pass


def test_since_is_a_day_in_the_site_zone(tmp_path: Path) -> None:
    """A release just before the site's midnight is not of a feed since that day."""
    dataset = load_dataset(BUNDLED_DATA)
    first = dataset.releases[0]
    midnight = datetime.combine(date(2005, 1, 17), datetime.min.time(), dataset.site.zone)
    moved = replace(dataset, releases=(replace(first, published=midnight), replace(
        dataset.releases[1], published=midnight - timedelta(microseconds=1)),
        *dataset.releases[2:]))
    reader = build_store(moved, tmp_path / "store.sqlite3")
    with reader.read() as snapshot:
        view = snapshot.view_at(datetime(2030, 1, 1, tzinfo=dataset.site.zone))
        page = view.select(Filters(since=date(2005, 1, 17)), 20)
    reader.close()
    assert [r.id for r in page.releases] == [first.id]
    # Withdrawn, the two are tombstones: the same day decides which one a feed since it shows.
    gone = datetime(2029, 12, 31, tzinfo=dataset.site.zone)
    withdrawn = replace(moved, releases=(*(replace(r, withdrawn=gone, withdrawn_note="x")
                                           for r in moved.releases[:2]), *moved.releases[2:]))
    reader = build_store(withdrawn, tmp_path / "withdrawn.sqlite3")
    with reader.read() as snapshot:
        view = snapshot.view_at(datetime(2030, 1, 1, tzinfo=dataset.site.zone))
        tombstones = view.tombstones(Filters(since=date(2005, 1, 17)))
        assert len(view.tombstones(Filters())) == 2
    reader.close()
    assert [r.id for r in tombstones] == [first.id]


def test_ties_within_a_second_are_ordered_by_instant_then_id(tmp_path: Path) -> None:
    """Releases of one second: the later instant first, then the greater id, in every zone,
    on every page size."""
    dataset = load_dataset(BUNDLED_DATA)
    second = datetime(2005, 1, 17, 9, 30, tzinfo=dataset.site.zone)
    offsets = [(0, "pr-2005-002"), (500_000, "pr-2005-001"), (1, "pr-2004-008"),
               (500_000, "pr-2004-007"), (0, "pr-2004-006")]
    releases = {r.id: r for r in dataset.releases}
    tied = [replace(releases[rid], published=(second + timedelta(microseconds=us)).astimezone(
        ZONES[n % len(ZONES)])) for n, (us, rid) in enumerate(offsets)]
    rest = [r for r in dataset.releases if r.id not in dict((i, 0) for _, i in offsets)]
    moved = replace(dataset, releases=newest_first([*tied, *rest]))
    expected = ["pr-2005-001", "pr-2004-007", "pr-2004-008", "pr-2005-002", "pr-2004-006"]
    reader = build_store(moved, tmp_path / "store.sqlite3")
    with reader.read() as snapshot:
        view = snapshot.view_at(datetime(2030, 1, 1, tzinfo=dataset.site.zone))
        for limit in (1, 2, 20):
            ids: list[str] = []
            after = None
            while len(ids) < len(expected):
                page = view.select(Filters(), limit, after)
                ids += [r.id for r in page.releases]
                after = Cursor.of(page.releases[-1])
            assert ids[:len(expected)] == expected, limit
    reader.close()



def test_a_file_the_writer_left_is_never_read_and_never_spun_on(tmp_path: Path) -> None:
    """A file marked `moved` (sync.Looker.keep wrote its copy in its place): a read closes the
    connections to it and opens the path again; if the path still holds a marked file (an old
    copy put back by hand), the read says so (Unusable: a 503) instead of trying for ever."""
    dataset = load_dataset(BUNDLED_DATA)
    path = tmp_path / "store.sqlite3"
    reader = build_store(dataset, path)
    with reader.read() as snapshot:
        assert snapshot.meta.version == dataset.version
    stamp = reader.stamp()
    writer = connect(path, write=True)
    writer.execute("INSERT INTO meta VALUES ('moved', '1')")
    with pytest.raises(Unusable, match="marked moved"):
        with reader.read():
            pass
    assert reader.stamp()[0] != stamp[0]  # the thread's stamp connection was opened again
    writer.execute("DELETE FROM meta WHERE name = 'moved'")  # as the writer's copy is
    writer.close()
    with reader.read() as snapshot:
        assert snapshot.meta.version == dataset.version
