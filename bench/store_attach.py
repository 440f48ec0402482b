"""Issue 19, the cold start's two ways into the store, measured on the same full read: the rows
sent to this process and inserted here (bulkload.fill, what coldstart.py does), or each child
writing its own SQLite file that this process ATTACHes and copies with INSERT ... SELECT, the
keys numbered by a window function.

The full read is made once (coldstart.read_all, in child processes); its files are cut in
two halves, as two children would hold them. "child" is the CPU one child spends writing its
half to its own file (the two run in parallel: the slower one counts for the wall); "parent"
is what this process then spends (for the pipe: unmarshalling what the children marshalled,
then the fill; the ATTACH way leaves out the counts and meta rows, a few ms). The rows of the
main tables of both stores are compared at the end.
Run: python bench/store_attach.py [--releases N]
"""
from __future__ import annotations

import argparse
import marshal
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from archives import split_archive, table

from feedsvc.dataset import db, rows, sync
from feedsvc.dataset.coldstart import read_all
from feedsvc.dataset.loader import FileRow

LIMIT = 64 << 20
STAGE = f"""
CREATE TABLE rel(r INTEGER PRIMARY KEY, {", ".join(rows.COLUMNS[1:])});
CREATE TABLE countries(r INTEGER, country TEXT);
CREATE TABLE topics(r INTEGER, topic TEXT);
CREATE TABLE pairs(r INTEGER, country TEXT, topic TEXT);
CREATE TABLE words(r INTEGER, doc TEXT);
CREATE TABLE updates(r INTEGER, scope TEXT, modified INTEGER);
CREATE TABLE files(id INTEGER PRIMARY KEY, path, size, mtime_ns, inode, sha256, racy, vocabulary);
CREATE TABLE file_media(file, src, size, mtime_ns, inode, sha256);
"""
SECOND = "((published_us - (((published_us % 1000000) + 1000000) % 1000000)) / 1000000)"


def stage(path: Path, files: Sequence[FileRow], first: int) -> float:
    """Write one child's files and releases to its own file; return the CPU it took."""
    began = time.process_time()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.executescript(STAGE)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     ((n, f.below, *f.key, f.digest, int(f.racy), int(f.vocabulary))
                      for n, f in enumerate(files, first)))
    conn.executemany("INSERT INTO file_media VALUES (?, ?, ?, ?, ?, ?)",
                     ((n, src, *at, sha) for n, f in enumerate(files, first)
                      for src, at, sha in f.media))
    numbered = [(r, n, p) for r, (n, p) in enumerate(
        (n, p) for n, f in enumerate(files, first) for p in f.prepared)]
    conn.executemany(f"INSERT INTO rel VALUES ({', '.join('?' * len(rows.COLUMNS))})",
                     ((r, p[0][1], n, *p[0][3:]) for r, n, p in numbered))
    listed = [(r, p) for r, _, p in numbered if not p[0][5]]
    conn.executemany("INSERT INTO countries VALUES (?, ?)",
                     ((r, c) for r, p in listed for c in p[1]))
    conn.executemany("INSERT INTO topics VALUES (?, ?)", ((r, t) for r, p in listed for t in p[2]))
    conn.executemany("INSERT INTO pairs VALUES (?, ?, ?)",
                     ((r, c, t) for r, p in listed for c in p[1] for t in p[2]))
    conn.executemany("INSERT INTO words VALUES (?, ?)", ((r, p[3]) for r, p in listed))
    conn.executemany("INSERT INTO updates VALUES (?, ?, ?)", (
        (r, scope, p[0][4]) for r, p in listed if p[4]
        for scope in ("", *(f"countries/{c}" for c in p[1]), *(f"topics/{t}" for t in p[2]))))
    conn.execute("COMMIT")
    conn.close()
    return time.process_time() - began


def copy(conn: sqlite3.Connection, runs: Sequence[Path], found: sync.Plan) -> float:
    """ATTACH the children's files and copy them into the store; return the CPU it took."""
    began = time.process_time()
    for n, path in enumerate(runs):
        conn.execute(f"ATTACH ? AS run{n}", (str(path),))
    conn.execute("BEGIN IMMEDIATE")
    union = " UNION ALL ".join(f"SELECT {n} AS run, r, published_us, id FROM run{n}.rel"
                               for n in range(len(runs)))
    conn.execute("CREATE TEMP TABLE k(run INTEGER, r INTEGER, key INTEGER, "
                 "PRIMARY KEY(run, r)) WITHOUT ROWID")
    conn.execute(f"INSERT INTO temp.k SELECT run, r, ({SECOND} << {db.RANK_BITS}) + row_number() "
                 f"OVER (PARTITION BY {SECOND} ORDER BY published_us, id) - 1 FROM ({union})")
    for n in range(len(runs)):
        conn.execute(f"INSERT INTO files SELECT * FROM run{n}.files")
        conn.execute(f"INSERT INTO file_media SELECT * FROM run{n}.file_media")
        join = f"JOIN temp.k k ON k.run = {n} AND k.r = x.r"
        conn.execute(f"INSERT INTO releases({', '.join(rows.COLUMNS)}) "  # written: its default
                     f"SELECT k.key, {', '.join('x.' + c for c in rows.COLUMNS[1:])} "
                     f"FROM run{n}.rel x {join} ORDER BY k.key")
        for target, columns, source in (
                ("release_countries", "x.country, k.key", "countries"),
                ("release_topics", "x.topic, k.key", "topics"),
                ("release_pairs", "x.country, x.topic, k.key", "pairs"),
                ("release_words(rowid, words)", "k.key, x.doc", "words"),
                ("release_updates", "x.scope, x.modified, k.key", "updates")):
            conn.execute(f"INSERT INTO {target} SELECT {columns} FROM run{n}.{source} x {join}")
    conn.execute("COMMIT")
    return time.process_time() - began


def _payload(files: Sequence[FileRow]) -> list[tuple[object, ...]]:
    return [(f.name, f.below, f.key, f.digest, f.racy, f.vocabulary, f.media, f.ids, (),
             f.prepared) for f in files]


def _timed(action: Callable[[Any], Any], value: Any) -> tuple[Any, float]:
    began = time.process_time()
    result = action(value)
    return result, time.process_time() - began


def main(count: int) -> None:
    root = split_archive(count)
    found = read_all(root, LIMIT)
    scratch = Path(tempfile.mkdtemp(prefix="feedsvc-store-attach-"))
    piped = db.connect(scratch / "piped.db", write=True)
    began = time.process_time()
    sync.commit(piped, root, found)
    fill_cpu = time.process_time() - began
    half = len(found.files) // 2
    halves = [found.files[:half], found.files[half:]]
    runs = [scratch / f"run{n}.db" for n in range(2)]
    child = [stage(path, files, 1 + n * half)
             for n, (path, files) in enumerate(zip(runs, halves, strict=True))]
    sent = [_payload(files) for files in halves]  # what the pipe carries (coldstart._files)
    dumped = [_timed(marshal.dumps, payload) for payload in sent]
    loaded = sum(_timed(marshal.loads, blob)[1] for blob, _ in dumped)
    attached = db.connect(scratch / "attached.db", write=True)
    parent = copy(attached, runs, found)
    for name in ("releases", "release_countries", "release_topics", "release_pairs", "files"):
        query = f"SELECT * FROM {name} ORDER BY 1, 2"
        assert piped.execute(query).fetchall() == attached.execute(query).fetchall(), name
    print(table(("way into the store", "child CPU s (each)", "parent CPU s", "wall s (2 cores)"), [
        ("rows over the pipe, inserted here (bulkload.fill)",
         " / ".join(f"{c:.2f}" for _, c in dumped), f"{loaded + fill_cpu:.2f}",
         f"{max(c for _, c in dumped) + loaded + fill_cpu:.2f}"),
        ("each child its own file, ATTACH + INSERT ... SELECT",
         " / ".join(f"{c:.2f}" for c in child), f"{parent:.2f}", f"{max(child) + parent:.2f}")]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=100_000)
    main(parser.parse_args().releases)
