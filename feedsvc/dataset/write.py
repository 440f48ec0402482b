"""The store's one writer of changes: the files that changed (apply), in one transaction, so
that a reader sees the version before or the version after, never a mix (a whole dataset is
written by bulkload.py).

A release's key is its UTC second and its rank among the releases of that second (db.py): a
change renumbers the releases of the seconds it touches, so the file holds the same rows as a
rebuild of the same dataset would.
"""
from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from typing import NamedTuple

from . import Release
from .db import RANK_BITS, key_of, second_of, transaction
from .rows import FIELDS, INSERT, decode, encode, hidden, micros
from .selecting import country_tag, topic_tag
from .words import words

MediaRow = tuple[str, int, int, int, str]  # src below media/, size, mtime_ns, inode, sha256 hex


class FileChange(NamedTuple):
    """One file of the dataset as the catalog keeps it, and the releases it holds (None, when
    its bytes did not change: its releases stay as they are). A tuple, as FileRow (loader.py),
    at a tuple's cost."""

    path: str  # below the dataset root, as version.py names it
    size: int
    mtime_ns: int
    inode: int
    sha256: bytes
    releases: Sequence[Release] | None
    racy: bool = False  # its stat is too recent to trust
    vocabulary: bool = False  # it holds the site or the topics
    media: Sequence[MediaRow] = ()


def _names(release: Release) -> list[str]:
    return _scopes(release.countries, release.topics)[1:]


def _named(prefix: str, names: Iterable[str]) -> dict[str, int]:
    """Return how many times each name comes, by the prefixed name (counted as they come)."""
    return {f"{prefix}{name}": n for name, n in Counter(names).items()}


def _scopes(countries: Iterable[str], topics: Iterable[str]) -> list[str]:
    """Return the scopes a listed release is counted in: all, each country, each topic."""
    return ["", *(f"countries/{c}" for c in countries), *(f"topics/{t}" for t in topics)]


def document(title: str, summary: str, countries: Iterable[str], topics: Iterable[str]) -> str:
    """Return a listed release's document in the word index: the words of its title and
    summary, and a tag per country and topic (selecting.py)."""
    return " ".join([*dict.fromkeys(words(f"{title} {summary}")), *map(country_tag, countries),
                     *map(topic_tag, topics)])


def indexed_words(release: Release) -> str:
    """Return a release's document in the word index (see document)."""
    return document(release.title, release.summary, release.countries, release.topics)


_COUNTRIES = "INSERT INTO release_countries VALUES (?, ?)"
_TOPICS = "INSERT INTO release_topics VALUES (?, ?)"
_PAIRS = "INSERT INTO release_pairs VALUES (?, ?, ?)"
_WORDS = "INSERT INTO release_words(rowid, words) VALUES (?, ?)"
_UPDATES = "INSERT INTO release_updates VALUES (?, ?, ?)"


FLUSH = 10_000  # releases waiting to go in, at most: memory stays flat at 1,000,000


class Writer:
    """Rows going in and out of one transaction, with the counts they change. Rows going in
    wait in lists, written by one executemany a table (flush): 10,000 releases make six calls
    into SQLite, not six a release."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.counts: dict[str, int] = {}
        self.keys: list[int] = []  # the releases put in: written by this commit
        self.waiting: dict[str, list[tuple[object, ...]]] = {
            sql: [] for sql in (INSERT, _COUNTRIES, _TOPICS, _PAIRS, _WORDS, _UPDATES)}

    def _count(self, scope: str, by: int) -> None:
        self.counts[scope] = self.counts.get(scope, 0) + by

    def insert(self, release: Release, key: int, file: int) -> None:
        """Put a release in every table that holds it (when flushed)."""
        self.put([(key, file, release)])

    def put(self, releases: Sequence[tuple[int, int, Release]]) -> None:
        """Put releases, each with its key and file id, in every table that holds them (when
        flushed). Each table's rows and each scope's count are made by one comprehension over
        the batch: a cold start puts 10,000 releases a call."""
        waiting = self.waiting
        rows = [encode(release, key, file) for key, file, release in releases]
        waiting[INSERT] += rows
        self.keys += (key for key, _, _ in releases)
        counts = _named("named:", chain.from_iterable(r.countries for _, _, r in releases))
        # A notice runs (withdrawn, not a draft) for a tombstone; listed: not hidden.
        counts["tombstones"] = sum(row[6] is not None for row in rows)
        listed = [(key, r, row[4]) for (key, _, r), row in zip(releases, rows, strict=True)
                  if not row[5]]
        waiting[_COUNTRIES] += ((c, key) for key, r, _ in listed for c in r.countries)
        waiting[_TOPICS] += ((t, key) for key, r, _ in listed for t in r.topics)
        waiting[_PAIRS] += ((c, t, key) for key, r, _ in listed
                            for c in r.countries for t in r.topics)
        waiting[_WORDS] += ((key, indexed_words(r)) for key, r, _ in listed)
        waiting[_UPDATES] += ((scope, modified, key) for key, r, modified in listed
                              if r.updated is not None for scope in _scopes(r.countries, r.topics))
        counts[""] = len(listed)
        counts.update(_named("countries/", chain.from_iterable(r.countries for _, r, _ in listed)))
        counts.update(_named("topics/", chain.from_iterable(r.topics for _, r, _ in listed)))
        for scope, change in counts.items():
            if change:
                self._count(scope, change)
        if len(waiting[INSERT]) >= FLUSH:
            self.flush()

    def flush(self) -> None:
        """Write the rows waiting to go in."""
        for sql, rows in self.waiting.items():
            self.conn.executemany(sql, rows)
            rows.clear()

    def delete(self, release: Release, key: int) -> None:
        """Take a release out of every table that holds it."""
        conn = self.conn
        conn.execute("DELETE FROM releases WHERE key = ?", (key,))
        for country in release.countries:
            self._count(f"named:{country}", -1)
        if release.withdrawn is not None and not release.draft:
            self._count("tombstones", -1)
        if hidden(release):
            return
        # By their whole primary keys: each a search, not a scan of the list tables.
        conn.executemany("DELETE FROM release_countries WHERE country = ? AND key = ?",
                         ((c, key) for c in release.countries))
        conn.executemany("DELETE FROM release_topics WHERE topic = ? AND key = ?",
                         ((t, key) for t in release.topics))
        conn.executemany("DELETE FROM release_pairs WHERE country = ? AND topic = ? AND key = ?",
                         ((c, t, key) for c in release.countries for t in release.topics))
        if release.updated is not None:
            modified = int(release.modified.timestamp())
            conn.executemany("DELETE FROM release_updates WHERE scope = ? AND modified_s = ? "
                             "AND key = ?", ((s, modified, key) for s in ("", *_names(release))))
        conn.execute("INSERT INTO release_words(release_words, rowid, words) "
                     "VALUES ('delete', ?, ?)", (key, indexed_words(release)))
        for scope in ("", *_names(release)):
            self._count(scope, -1)

    def save_counts(self) -> None:
        self.flush()
        for scope, change in self.counts.items():
            if change:
                self.conn.execute(
                    "INSERT INTO counts VALUES (?, ?) ON CONFLICT(scope) "
                    "DO UPDATE SET releases = releases + excluded.releases", (scope, change))
        self.conn.executemany("DELETE FROM counts WHERE scope = ? AND releases = 0",
                              ((scope,) for scope in self.counts))
        self.counts.clear()


def _put_file(conn: sqlite3.Connection, change: FileChange) -> int:
    """Insert or update a file of the catalog, with its media; return its id."""
    found = conn.execute(
        "INSERT INTO files(path, size, mtime_ns, inode, sha256, racy, vocabulary) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET size = excluded.size, "
        "mtime_ns = excluded.mtime_ns, inode = excluded.inode, sha256 = excluded.sha256, "
        "racy = excluded.racy, vocabulary = excluded.vocabulary RETURNING id",
        (change.path, change.size, change.mtime_ns, change.inode, change.sha256,
         int(change.racy), int(change.vocabulary))).fetchone()
    file = int(found[0])
    conn.execute("DELETE FROM file_media WHERE file = ?", (file,))
    conn.executemany("INSERT INTO file_media VALUES (?, ?, ?, ?, ?, ?)",
                     ((file, *media) for media in change.media))
    return file


def _order(release: Release) -> tuple[int, str]:
    return micros(release.published), release.id


def _in_second(conn: sqlite3.Connection, second: int) -> list[tuple[Release, int, int]]:
    """Return the releases stored in a second, with their keys and files."""
    low = key_of(second, 0)
    rows = conn.execute(f"SELECT key, file, {FIELDS} FROM releases WHERE key BETWEEN ? AND ?",
                        (low, low + (1 << RANK_BITS) - 1))
    return [(decode(row[2:]), row[0], row[1]) for row in rows]


def apply(conn: sqlite3.Connection, files: Iterable[FileChange], removed: Iterable[str], *,
          version: str, meta: Mapping[str, str] | None = None) -> None:
    """Put the changed files and their releases, take out the removed files and theirs, and
    record the new version (and `meta`: the catalog's facts): in one transaction, rolled
    back whole on any error."""
    writer = Writer(conn)
    with transaction(conn):
        seconds: dict[int, list[tuple[Release, int]]] = {}  # the releases coming in, by second
        gone: list[str] = list(removed)
        for path in gone:
            _drop_releases(writer, path, seconds)
        conn.executemany("DELETE FROM file_media WHERE file = (SELECT id FROM files "
                         "WHERE path = ?)", ((p,) for p in gone))
        conn.executemany("DELETE FROM files WHERE path = ?", ((p,) for p in gone))
        for change in files:
            if change.releases is not None:
                _drop_releases(writer, change.path, seconds)
            file = _put_file(conn, change)
            for release in change.releases or ():
                seconds.setdefault(micros(release.published) // 1_000_000, []).append(
                    (release, file))
        for second, coming in sorted(seconds.items()):
            _renumber(writer, second, coming)
        writer.save_counts()
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                         {**(meta or {}), "version": version}.items())
        _mark_written(writer)


def _mark_written(writer: Writer) -> None:
    """Move the commit counter, and mark the releases put in as written by it (db.py), so that
    a reader can ask what changed since a commit without a pass over the archive."""
    conn = writer.conn
    found = conn.execute("SELECT value FROM meta WHERE name = 'commit'").fetchone()
    commit = (0 if found is None else int(found[0])) + 1
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('commit', ?)", (str(commit),))
    conn.executemany("UPDATE releases SET written = ? WHERE key = ?",
                     ((commit, key) for key in writer.keys))


def _drop_releases(writer: Writer, path: str, seconds: dict[int, list[tuple[Release, int]]]
                   ) -> None:
    """Take out the releases of a file, noting their seconds (to be numbered again)."""
    rows = writer.conn.execute(
        f"SELECT key, {FIELDS} FROM releases WHERE file = (SELECT id FROM files WHERE path = ?)",
        (path,)).fetchall()
    for row in rows:
        writer.delete(decode(row[1:]), row[0])
        seconds.setdefault(second_of(row[0]), [])


def _renumber(writer: Writer, second: int, coming: list[tuple[Release, int]]) -> None:
    """Number the releases of one second again, with those coming in, by (published, id)."""
    staying = _in_second(writer.conn, second)
    for release, key, _ in staying:
        writer.delete(release, key)
    every = sorted([(r, f) for r, _, f in staying] + coming, key=lambda pair: _order(pair[0]))
    for rank, (release, file) in enumerate(every):
        writer.insert(release, key_of(second, rank), file)
