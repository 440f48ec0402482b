"""The store filled from a full read in one transaction, from staging files: no release sent.

A full read (coldstart.py) has each process that validated a run of files write it to
staging files of its own (`stage`): its files and releases, keyed as db.py defines it
(keys_of: by second and rank over the whole dataset), in the store's own tables and by the
writer's own Writer.put, without their indexes or word index, and no journal (the files are
thrown away if anything fails). The releases may be cut into chunks by key, a staging file
each, so that a new store can be built from the first chunks while the later ones are staged
(`add`, coldstart.py). The writer ATTACHes the staging files and copies each table with one
INSERT ... SELECT, their rows merged in key order (`fill`, `build`): the rows write.apply makes
of the same dataset, change by change (tests/test_store_ingest.py compares them).
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import weakref
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import accumulate, groupby
from pathlib import Path

from . import Dataset, Site, Topic, rows
from .db import DDL, create, key_of, transaction
from .loader import FileRow
from .write import FLUSH, FileChange, Writer

# The store's tables, each with the order of its primary key (the merge's order).
_TABLES = {"files": "id", "file_media": "file, src", "releases": "key",
           "release_countries": "country, key", "release_topics": "topic, key",
           "release_pairs": "country, topic, key", "release_updates": "scope, modified_s, key"}
# A staging file: the store's tables without their indexes, nor UNIQUE (the store checks it
# as it copies the rows), and the words as plain rows.
_STAGING = ";\n".join([*(s.replace(" UNIQUE", "") for s in DDL.split(";")
                         if s.strip().startswith("CREATE TABLE")),
                       "CREATE TABLE release_words(words TEXT NOT NULL)", ""])
MAX_FILES = 8  # staging files at most: SQLite attaches at most 10 databases
# Each chunk of a new store's releases is SHRINK times the one before: the last, copied once
# the children end, is the smallest, and the copy of each still ends before the next is
# staged (its copy takes less CPU than its staging: docs/performance.md, Cold start).
SHRINK = 0.7


class Staged:
    """A directory beside the store for a full read's staging files, one per process that
    validated a run; removed by close(), or when dropped (by the process that made it), or
    if that process died, at the next start (statedir.open_state)."""

    def __init__(self, store: Path, chunks: int = 1) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix=f"{store.name}.stage-{os.getpid()}-",
                                               dir=store.parent))
        self.count = 0  # the runs staged
        self.chunks = chunks  # the staging files of each run (count * chunks <= MAX_FILES)
        self.built = 0  # the chunks already in the new store (`add`)
        self._remove = weakref.finalize(self, _remove, self.directory, os.getpid())

    def file(self, run: int, chunk: int = 0) -> Path:
        """Name the staging file of a run's chunk (runs 0 to count - 1)."""
        return self.directory / f"{run}-{chunk}.sqlite"

    @property
    def store(self) -> Path:
        """Name the new store built from the staging files (`add`, `build`)."""
        return self.directory / "store.sqlite"

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


def bounds_of(keys: Sequence[Sequence[int]], chunks: int) -> list[int]:
    """Return the keys that cut every release (keys_of) into `chunks` ranges, each about
    SHRINK times the one before (the `bounds` of stage): a new store copies each chunk while
    the next is staged, and the last, copied once staging ends, is the smallest."""
    every = sorted(key for held in keys for key in held)
    sizes = list(accumulate(SHRINK ** n for n in range(chunks)))
    return [every[int(len(every) * size / sizes[-1])] if every else 0 for size in sizes[:-1]]


def stage(paths: Sequence[Path], files: Sequence[FileChange], ids: Sequence[int],
          keys: Sequence[int], bounds: Sequence[int] = ()) -> Iterator[int]:
    """Write files, numbered by `ids`, and their releases, with their keys (keys_of), to new
    staging files: to paths[n] the releases keyed from bounds[n - 1] up to bounds[n] (the
    files with the first); yield each n once its file is written."""
    held = [(n, release) for n, f in zip(ids, files, strict=True) for release in f.releases or ()]
    order = sorted(range(len(held)), key=keys.__getitem__)  # appended in key order
    cuts = [0, *(bisect_left(order, bound, key=keys.__getitem__) for bound in bounds), len(order)]
    for chunk, path in enumerate(paths):
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = OFF")  # a file thrown away on any failure
            conn.execute("PRAGMA synchronous = OFF")
            conn.executescript(_STAGING)
            conn.execute("BEGIN")
            if chunk == 0:
                _stage_files(conn, files, ids)
            writer = Writer(conn)
            for start in range(cuts[chunk], cuts[chunk + 1], FLUSH):  # a batch at a time
                writer.put([(keys[i], *held[i])
                            for i in order[start:min(start + FLUSH, cuts[chunk + 1])]])
            writer.save_counts()
            conn.execute("COMMIT")
        finally:
            conn.close()
        yield chunk


def _stage_files(conn: sqlite3.Connection, files: Sequence[FileChange], ids: Sequence[int]
                 ) -> None:
    conn.executemany("INSERT INTO files(id, path, size, mtime_ns, inode, sha256, racy, "
                     "vocabulary) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     ((n, f.path, f.size, f.mtime_ns, f.inode, f.sha256, int(f.racy),
                       int(f.vocabulary)) for n, f in zip(ids, files, strict=True)))
    conn.executemany("INSERT INTO file_media VALUES (?, ?, ?, ?, ?, ?)",
                     ((n, *m) for n, f in zip(ids, files, strict=True) for m in f.media))


def stage_here(store: Path, files: Sequence[FileChange]) -> Staged:
    """Stage files and their releases in this process, as one run."""
    staged = Staged(store)
    for _ in stage([staged.file(0)], files, range(1, len(files) + 1),
                   keys_of([order_of(files)])[0]):
        pass  # one file
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


def build(store: Path, staged: Staged, meta: Mapping[str, str], *, site: Site,
          topics: Mapping[str, Topic]) -> None:
    """Build the store anew from the staged files: in a new file with no journal (each page
    written once, not to the WAL then the file), synced, then renamed over `store`. No
    connection may have `store` open; a crash leaves the new file in the staging directory,
    which the next start removes (statedir.open_state), never a half store at `store`."""
    conn = new_store(staged) if staged.built == 0 else _unjournaled(staged.store)
    try:
        for chunk in range(staged.built, staged.chunks):
            add(conn, staged, chunk)
        with transaction(conn, "BEGIN"):
            conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", {
                **meta, "site": rows.site_json(site), "topics": rows.topics_json(topics)}.items())
    finally:
        conn.close()
    _fsync(staged.store)
    for side in ("-wal", "-shm"):  # a stale WAL must never be replayed into the new file
        store.with_name(store.name + side).unlink(missing_ok=True)
    os.replace(staged.store, store)
    _fsync(store.parent)  # the rename itself


def new_store(staged: Staged) -> sqlite3.Connection:
    """Create the new store a build fills (Staged.store), with no journal."""
    os.close(os.open(staged.store, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    conn = _unjournaled(staged.store)
    create(conn)
    return conn


def add(conn: sqlite3.Connection, staged: Staged, chunk: int) -> None:
    """Copy one chunk of every run into the new store (new_store), after the chunks before."""
    with _attached(conn, staged, [chunk]) as attached, transaction(conn, "BEGIN"):
        _copy(conn, attached)
    staged.built = chunk + 1


def _unjournaled(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    return conn


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fill(conn: sqlite3.Connection, staged: Staged, meta: Mapping[str, str], *, site: Site,
         topics: Mapping[str, Topic]) -> None:
    """Replace everything in the store by the staged files and releases, in one transaction."""
    with _attached(conn, staged, range(staged.chunks)) as attached, \
            transaction(conn, "BEGIN IMMEDIATE"):
        _clear(conn)
        _copy(conn, attached)
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", {
            **meta, "site": rows.site_json(site), "topics": rows.topics_json(topics)}.items())


@contextmanager
def _attached(conn: sqlite3.Connection, staged: Staged, chunks: Iterable[int]
              ) -> Iterator[list[str]]:
    """Attach the staging files of these chunks of every run; yield their schema names."""
    names: list[str] = []
    try:
        for chunk in chunks:
            for run in range(staged.count):  # outside a transaction, as SQLite requires
                name = f"stage{len(names)}"
                conn.execute(f"ATTACH DATABASE ? AS {name}", (str(staged.file(run, chunk)),))
                names.append(name)
        yield names
    finally:
        for name in names:
            conn.execute(f"DETACH DATABASE {name}")


def _clear(conn: sqlite3.Connection) -> None:
    """Delete every row of the store's data (its status aside)."""
    for table in ("meta", "counts", *_TABLES):
        conn.execute(f"DELETE FROM {table}")  # noqa: S608 (a name)
    conn.execute("INSERT INTO release_words(release_words) VALUES ('delete-all')")


def _copy(conn: sqlite3.Connection, attached: Sequence[str]) -> None:
    """Insert the rows of the attached staging files in every table, each by one INSERT ...
    SELECT that merges their rows in its primary key's order (appended, never sorted)."""

    def merged(table: str, columns: str, order: str) -> str:
        return " UNION ALL ".join(f"SELECT {columns} FROM {name}.{table}"  # noqa: S608
                                  for name in attached) + f" ORDER BY {order}"
    for table, order in _TABLES.items():
        conn.execute(f"INSERT INTO {table} {merged(table, '*', order)}")  # noqa: S608
    conn.execute("INSERT INTO release_words(rowid, words) "
                 f"{merged('release_words', 'rowid, words', 'rowid')}")
    conn.execute("INSERT INTO counts SELECT scope, sum(releases) FROM "  # noqa: S608
                 f"({merged('counts', '*', 'scope')}) WHERE true GROUP BY scope "
                 "ON CONFLICT(scope) DO UPDATE SET releases = releases + excluded.releases")
