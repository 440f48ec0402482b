"""The store filled from a full read in one transaction, from plain values: no release is made.

A full read (coldstart.py) has each release turned into plain values where it was validated,
in the child process that parsed it: its `releases` row (rows.encode, key and file left 0),
its countries and topics, the words it is found by, and whether it was updated. Here they are
numbered (file ids in path order; keys by second and rank, as db.py defines them) and
inserted table by table with executemany, the counts summed by SQL: the rows write.apply
makes of the same dataset, change by change (tests/test_store_write.py compares them).
"""
from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import groupby
from typing import cast

from . import Dataset, Release, Site, Topic, rows
from .db import key_of
from .rows import hidden
from .write import FileChange, indexed_words  # what write.insert indexes: the same document

# One release as plain values: its row (rows.encode, key and file 0), countries, topics,
# indexed words, and whether it has `updated` (listed among the updated).
Prepared = tuple[tuple[object, ...], tuple[str, ...], tuple[str, ...], str, bool]
_TABLES = ("releases", "release_countries", "release_topics", "release_pairs",
           "release_updates", "counts", "meta", "file_media", "files")


def prepare(release: Release) -> Prepared:
    """Return a release as the plain values `fill` inserts."""
    return (rows.encode(release, 0, 0), tuple(release.countries), tuple(release.topics),
            "" if hidden(release) else indexed_words(release), release.updated is not None)


def rebuild(conn: sqlite3.Connection, dataset: Dataset, files: Sequence[FileChange],
            meta: Mapping[str, str] | None = None) -> None:
    """Replace everything in the store by a dataset and the files it was read from (each
    FileChange naming the releases it holds), in one transaction."""
    fill(conn, files, [[prepare(r) for r in f.releases or ()] for f in files],
         {"version": dataset.version, "source": dataset.source, **(meta or {})},
         site=dataset.site, topics=dataset.topics)


def fill(conn: sqlite3.Connection, files: Sequence[FileChange],
         releases: Sequence[Sequence[Prepared]], meta: Mapping[str, str], *, site: Site,
         topics: Mapping[str, Topic]) -> None:
    """Replace everything in the store by these files and their releases (prepared, file by
    file), in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table in _TABLES:
            conn.execute(f"DELETE FROM {table}")  # noqa: S608 (a name)
        conn.execute("INSERT INTO release_words(release_words) VALUES ('delete-all')")
        conn.executemany("INSERT INTO files(id, path, size, mtime_ns, inode, sha256, racy, "
                         "vocabulary) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         ((n, f.path, f.size, f.mtime_ns, f.inode, f.sha256, int(f.racy),
                           int(f.vocabulary)) for n, f in enumerate(files, 1)))
        conn.executemany("INSERT INTO file_media VALUES (?, ?, ?, ?, ?, ?)",
                         ((n, *m) for n, f in enumerate(files, 1) for m in f.media))
        numbered = _numbered(releases)
        conn.executemany(rows.INSERT, ((key, row[1], file, *row[3:])
                                       for key, file, (row, *_) in numbered))
        _lists(conn, [(key, found) for key, _, found in numbered if not found[0][5]])
        _counts(conn)
        _named(conn, numbered)
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                         {**meta, "site": rows.site_json(site),
                          "topics": rows.topics_json(topics)}.items())
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _numbered(releases: Sequence[Sequence[Prepared]]) -> list[tuple[int, int, Prepared]]:
    """Return each release with its key and file id, oldest first (by published, then id)."""
    found = sorted((cast(int, found[0][3]), cast(str, found[0][1]), n, found)
                   for n, held in enumerate(releases, 1) for found in held)
    numbered: list[tuple[int, int, Prepared]] = []
    for second, group in groupby(found, key=lambda item: item[0] // 1_000_000):
        numbered += [(key_of(second, rank), n, prepared)
                     for rank, (_, _, n, prepared) in enumerate(group)]
    return numbered


def _lists(conn: sqlite3.Connection, listed: list[tuple[int, Prepared]]) -> None:
    """Fill the list tables, the word index and the updated releases of the listed releases."""
    # In key order (oldest first): each list's rows go to the end of its range. Sorting them
    # by list first measured slower (the sort costs more than the b-tree saves).
    conn.executemany("INSERT INTO release_countries VALUES (?, ?)",
                     ((c, key) for key, found in listed for c in found[1]))
    conn.executemany("INSERT INTO release_topics VALUES (?, ?)",
                     ((t, key) for key, found in listed for t in found[2]))
    conn.executemany("INSERT INTO release_pairs VALUES (?, ?, ?)",
                     ((c, t, key) for key, (_, countries, topics, _, _) in listed
                      for c in countries for t in topics))
    conn.executemany("INSERT INTO release_words(rowid, words) VALUES (?, ?)",
                     ((key, found[3]) for key, found in listed))
    conn.executemany("INSERT INTO release_updates VALUES (?, ?, ?)", (
        (scope, row[4], key) for key, (row, countries, topics, _, updated) in listed if updated
        for scope in ("", *(f"countries/{c}" for c in countries),
                      *(f"topics/{t}" for t in topics))))


def _counts(conn: sqlite3.Connection) -> None:
    """Sum the counts write.insert keeps: listed releases per scope, every release naming each
    country (hidden or not), and tombstones."""
    conn.execute("INSERT INTO counts SELECT 'countries/' || country, count(*) "
                 "FROM release_countries GROUP BY country")
    conn.execute("INSERT INTO counts SELECT 'topics/' || topic, count(*) "
                 "FROM release_topics GROUP BY topic")
    conn.execute("INSERT INTO counts SELECT '', count(*) FROM releases WHERE NOT hidden "
                 "HAVING count(*) > 0")
    conn.execute("INSERT INTO counts SELECT 'tombstones', count(*) FROM releases "
                 "WHERE notice_until_us IS NOT NULL HAVING count(*) > 0")


def _named(conn: sqlite3.Connection, numbered: Sequence[tuple[int, int, Prepared]]) -> None:
    """Count every release naming each country, hidden or not ("named:XX", see db.py)."""
    named = Counter(c for _, _, found in numbered for c in found[1])
    conn.executemany("INSERT INTO counts VALUES (?, ?)",
                     ((f"named:{c}", n) for c, n in sorted(named.items())))
