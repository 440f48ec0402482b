"""The store filled from a full read in one transaction, from plain values: no release is made.

A full read (coldstart.py) has each release turned into plain values where it was validated,
in the child process that parsed it: its `releases` row (rows.encode, key and file left 0),
its countries and topics, the words it is found by, and whether it was updated. Here they are
numbered (file ids in path order; keys by second and rank, as db.py defines them) and put
in by the writer's own Writer.put: the rows write.apply makes of the same dataset, change by
change (tests/test_store_write.py compares them).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from itertools import groupby
from typing import cast

from . import Dataset, Site, Topic, rows
from .db import key_of
from .write import FLUSH, FileChange, Prepared, Writer, prepare

_TABLES = ("releases", "release_countries", "release_topics", "release_pairs",
           "release_updates", "counts", "meta", "file_media", "files")


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
        writer, numbered = Writer(conn), _numbered(releases)
        for start in range(0, len(numbered), FLUSH):
            writer.put(numbered[start:start + FLUSH])
        writer.save_counts()
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
        held = list(group)
        first = key_of(second, len(held) - 1) - len(held) + 1  # the last rank checked
        numbered += [(key, n, prepared)
                     for key, (_, _, n, prepared) in enumerate(held, first)]
    return numbered
