"""The store filled from a full read in one transaction, from staging files: no release sent.

A full read (coldstart.py) has each process that validated a run of files write it to a
staging file of its own (`stage`): its files (ids in path order) and releases, keyed as db.py
defines it (keys_of: by second and rank over the whole dataset), in the store's own tables
and by the writer's own Writer.put, without their indexes or word index, and no journal (the
file is thrown away if anything fails). The writer then ATTACHes them and copies each table
with one INSERT ... SELECT, their rows merged in key order (`fill`): the rows write.apply makes
of the same dataset, change by change (tests/test_store_ingest.py compares them).
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import weakref
from collections.abc import Iterable, Mapping, Sequence
from itertools import groupby
from pathlib import Path

from . import Dataset, Site, Topic, rows
from .db import DDL, create, key_of
from .loader import FileRow
from .write import FLUSH, FileChange, Writer, prepare

# The store's tables, each with the order of its primary key (the merge's order).
_TABLES = {"files": "id", "file_media": "file, src", "releases": "key",
           "release_countries": "country, key", "release_topics": "topic, key",
           "release_pairs": "country, topic, key", "release_updates": "scope, modified_s, key"}
# A staging file: the store's tables without their indexes, and the words as plain rows.
_STAGING = ";\n".join([*(s for s in DDL.split(";") if s.strip().startswith("CREATE TABLE")),
                       "CREATE TABLE release_words(words TEXT NOT NULL)", ""])
MAX_RUNS = 8  # staging files at most: SQLite attaches at most 10 databases


class Staged:
    """A directory beside the store for a full read's staging files, one per process that
    validated a run; removed by close(), or when dropped (by the process that made it), or
    if that process died, at the next start (statedir.open_state)."""

    def __init__(self, store: Path) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix=f"{store.name}.stage-{os.getpid()}-",
                                               dir=store.parent))
        self.count = 0
        self._remove = weakref.finalize(self, _remove, self.directory, os.getpid())

    def file(self, run: int) -> Path:
        """Name the staging file of a run (the runs staged: 0 to count - 1)."""
        return self.directory / f"{run}.sqlite"

    def close(self) -> None:
        self._remove()


def _remove(directory: Path, owner: int) -> None:
    if os.getpid() == owner:  # a fork that holds the object is not its maker
        shutil.rmtree(directory, ignore_errors=True)


def store_file(conn: sqlite3.Connection) -> Path:
    """Return the path of a connection's main database (the store)."""
    return Path(conn.execute("PRAGMA database_list").fetchone()[2])


def change_of(row: FileRow) -> FileChange:
    """Return a file as read, as the writer takes it."""
    return FileChange(row.below, *row.key, row.digest, row.releases, row.racy, row.vocabulary,
                      tuple((src, *at, sha) for src, at, sha in row.media) if row.media else ())


def order_of(files: Iterable[FileChange]) -> list[tuple[int, str]]:
    """Return what orders the releases of these files in the store: (published, id), in
    file order."""
    return [(rows.micros(r.published), r.id) for f in files for r in f.releases or ()]


def keys_of(runs: Sequence[Sequence[tuple[int, str]]]) -> list[list[int]]:
    """Return the key of every release of each run (order_of), numbered over all of them:
    oldest first, by second and rank (db.py)."""
    found = sorted((at, rid, run, n) for run, held in enumerate(runs)
                   for n, (at, rid) in enumerate(held))
    keys = [[0] * len(held) for held in runs]
    for second, group in groupby(found, key=lambda item: item[0] // 1_000_000):
        same = list(group)
        first = key_of(second, len(same) - 1) - len(same) + 1  # the last rank checked
        for key, (_, _, run, n) in enumerate(same, first):
            keys[run][n] = key
    return keys


def stage(path: Path, files: Sequence[FileChange], first: int, keys: Sequence[int]) -> None:
    """Write files, numbered from `first`, and their releases, with their keys (keys_of), to
    a new staging file."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = OFF")  # a file thrown away on any failure
        conn.execute("PRAGMA synchronous = OFF")
        conn.executescript(_STAGING)
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO files(id, path, size, mtime_ns, inode, sha256, racy, "
                         "vocabulary) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         ((n, f.path, f.size, f.mtime_ns, f.inode, f.sha256, int(f.racy),
                           int(f.vocabulary)) for n, f in enumerate(files, first)))
        conn.executemany("INSERT INTO file_media VALUES (?, ?, ?, ?, ?, ?)",
                         ((n, *m) for n, f in enumerate(files, first) for m in f.media))
        held = [(n, release) for n, f in enumerate(files, first) for release in f.releases or ()]
        order = sorted(range(len(held)), key=keys.__getitem__)  # appended in key order
        writer = Writer(conn)
        for start in range(0, len(order), FLUSH):  # prepared a batch at a time
            writer.put([(keys[i], held[i][0], prepare(held[i][1]))
                        for i in order[start:start + FLUSH]])
        writer.save_counts()
        conn.execute("COMMIT")
    finally:
        conn.close()


def stage_here(store: Path, files: Sequence[FileChange]) -> Staged:
    """Stage files and their releases in this process, as one run."""
    staged = Staged(store)
    stage(staged.file(0), files, 1, keys_of([order_of(files)])[0])
    staged.count = 1
    return staged


def rebuild(conn: sqlite3.Connection, dataset: Dataset, files: Sequence[FileChange],
            meta: Mapping[str, str] | None = None) -> None:
    """Replace everything in the store by a dataset and the files it was read from (each
    FileChange naming the releases it holds), in one transaction."""
    staged = stage_here(store_file(conn), files)
    try:
        fill(conn, staged, {"version": dataset.version, "source": dataset.source,
                            **(meta or {})}, site=dataset.site, topics=dataset.topics)
    finally:
        staged.close()


def fill(conn: sqlite3.Connection, staged: Staged, meta: Mapping[str, str], *, site: Site,
         topics: Mapping[str, Topic]) -> None:
    """Replace everything in the store by the staged files and releases, in one transaction."""
    _fill(conn, staged, {**meta, "site": rows.site_json(site), "topics": rows.topics_json(topics)},
          clear=True)


def build(store: Path, staged: Staged, meta: Mapping[str, str], *, site: Site,
          topics: Mapping[str, Topic]) -> None:
    """Build the store anew from the staged files: in a new file with no journal (each page
    written once, not to the WAL then the file), synced, then renamed over `store`. No
    connection may have `store` open; a crash leaves the new file in the staging directory,
    which the next start removes (statedir.open_state), never a half store at `store`."""
    fresh = staged.directory / "store.sqlite"
    os.close(os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    conn = sqlite3.connect(fresh, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        create(conn)
        _fill(conn, staged, {**meta, "site": rows.site_json(site),
                             "topics": rows.topics_json(topics)}, clear=False)
    finally:
        conn.close()
    _fsync(fresh)
    for side in ("-wal", "-shm"):  # a stale WAL must never be replayed into the new file
        store.with_name(store.name + side).unlink(missing_ok=True)
    os.replace(fresh, store)
    _fsync(store.parent)  # the rename itself


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fill(conn: sqlite3.Connection, staged: Staged, meta: Mapping[str, str], *,
          clear: bool) -> None:
    """Write the staged rows and `meta` in one transaction (replacing every row: `clear`)."""
    runs = range(staged.count)
    for run in runs:  # outside a transaction, as SQLite requires
        conn.execute(f"ATTACH DATABASE ? AS stage{run}", (str(staged.file(run)),))
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if clear:
                _clear(conn)
            _copy(conn, runs)
            conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta.items())
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        for run in runs:
            conn.execute(f"DETACH DATABASE stage{run}")


def _clear(conn: sqlite3.Connection) -> None:
    """Delete every row of the store's data (its status aside)."""
    for table in ("meta", "counts", *_TABLES):
        conn.execute(f"DELETE FROM {table}")  # noqa: S608 (a name)
    conn.execute("INSERT INTO release_words(release_words) VALUES ('delete-all')")


def _copy(conn: sqlite3.Connection, runs: range) -> None:
    """Insert the staged rows in every table, each by one INSERT ... SELECT that merges the
    staging files' rows in its primary key's order (appended, never sorted)."""

    def merged(table: str, columns: str, order: str) -> str:
        return " UNION ALL ".join(f"SELECT {columns} FROM stage{run}.{table}"  # noqa: S608
                                  for run in runs) + f" ORDER BY {order}"
    for table, order in _TABLES.items():
        conn.execute(f"INSERT INTO {table} {merged(table, '*', order)}")  # noqa: S608
    conn.execute("INSERT INTO release_words(rowid, words) "
                 f"{merged('release_words', 'rowid, words', 'rowid')}")
    conn.execute("INSERT INTO counts SELECT scope, sum(releases) FROM "  # noqa: S608
                 f"({merged('counts', '*', 'scope')}) GROUP BY scope")
