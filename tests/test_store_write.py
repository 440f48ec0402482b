"""The writer: applying changes one after another leaves the file as a fresh rebuild of the
same dataset would be, row for row (keys, lists, counts, word index, catalog)."""
from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedsvc.dataset import Dataset, Release, newest_first
from feedsvc.dataset.bulkload import rebuild
from feedsvc.dataset.db import connect
from feedsvc.dataset.write import FileChange, apply

from .storedata import bundled, datasets, release

TABLES = ("release_countries", "release_topics", "release_pairs", "release_updates", "counts")


def dump(conn: sqlite3.Connection) -> dict[str, list[tuple[object, ...]]]:
    """Return every row of the store, files named by path (their ids are the writer's)."""
    found = {name: sorted(conn.execute(f"SELECT * FROM {name}").fetchall())  # noqa: S608
             for name in TABLES}
    columns = [row[1] for row in conn.execute("PRAGMA table_info(releases)")
               if row[1] not in ("file", "written")]
    found["releases"] = conn.execute(
        f"SELECT {', '.join('r.' + c for c in columns)}, f.path FROM releases r "  # noqa: S608
        "JOIN files f ON f.id = r.file ORDER BY r.key").fetchall()
    found["files"] = conn.execute("SELECT path, size, mtime_ns, inode, sha256, racy, vocabulary "
                                  "FROM files ORDER BY path").fetchall()
    found["file_media"] = conn.execute("SELECT f.path, m.src, m.size, m.mtime_ns, m.inode, "
                                       "m.sha256 FROM file_media m JOIN files f ON f.id = m.file "
                                       "ORDER BY 1, 2").fetchall()
    # What differs by history, not by data: the commit counter and the rows' commits.
    found["meta"] = conn.execute("SELECT * FROM meta WHERE name NOT IN ('commit', 'generation') "
                                 "ORDER BY name").fetchall()
    terms = conn.execute("SELECT term, doc FROM release_words_docs ORDER BY term").fetchall()
    found["words"] = [(term, doc, tuple(key for (key,) in conn.execute(
        "SELECT rowid FROM release_words WHERE release_words MATCH ? ORDER BY rowid",
        ('"' + term.replace('"', '""') + '"',)))) for term, doc in terms]
    return found


def catalog(files: Mapping[str, tuple[Release, ...]]) -> list[FileChange]:
    return [FileChange(path, len(held), 7, len(path), path.encode().ljust(16, b"\0")[:16], held,
                       media=(("photos/a.jpg", 3, 4, 5, "ab"),) if len(held) > 1 else ())
            for path, held in sorted(files.items())]


def dataset_of(files: Mapping[str, tuple[Release, ...]], version: str) -> Dataset:
    base = bundled()
    every = newest_first(r for held in files.values() for r in held)
    return Dataset(base.site, base.topics, every, version, "generated")


def same_as_rebuilt(conn: sqlite3.Connection, files: Mapping[str, tuple[Release, ...]],
                    version: str, folder: Path) -> None:
    fresh_path = folder / f"fresh-{version}.sqlite3"
    fresh = connect(fresh_path, write=True)
    rebuild(fresh, dataset_of(files, version), catalog(files))
    assert dump(conn) == dump(fresh)
    fresh.close()


@st.composite
def retimed(draw: st.DrawFn, held: tuple[Release, ...]) -> tuple[Release, ...]:
    """The file's releases with one moved: to another second, or into a tie with another."""
    at = draw(st.integers(0, len(held) - 1))
    moved = held[at].published + draw(st.sampled_from((timedelta(seconds=1), timedelta(
        seconds=-1), timedelta(microseconds=1), timedelta(days=3), timedelta(0))))
    target = held[at]
    after = replace(target, published=moved, updated=None if target.updated is None
                    or target.updated < moved else target.updated, corrections=(),
                    withdrawn=None)
    return (*held[:at], after, *held[at + 1:])


@given(datasets(most=8), st.data())
def test_apply_sequences_equal_a_rebuild(start: Dataset, data: st.DataObject) -> None:
    files = {f"r/{n}.yaml": tuple(start.releases[n * 2:n * 2 + 2])
             for n in range((len(start.releases) + 1) // 2)}
    number = 100
    with TemporaryDirectory() as folder:
        conn = connect(Path(folder) / "store.sqlite3", write=True)
        rebuild(conn, dataset_of(files, "v0"), catalog(files))
        for step in range(data.draw(st.integers(1, 6))):
            kind = data.draw(st.sampled_from(("add", "edit", "delete", "retime", "touch")))
            paths = sorted(files)
            if kind == "add" or not paths:
                kind, path = "add", f"r/new-{step}.yaml"
                files[path] = tuple(data.draw(release(number + n))
                                    for n in range(data.draw(st.integers(0, 3))))
                number += 4
                changed, removed = [path], list[str]()
            else:
                path = data.draw(st.sampled_from(paths))
                changed, removed = [path], []
                if kind == "delete":
                    del files[path]
                    changed, removed = [], [path]
                elif kind == "edit":
                    files[path] = tuple(data.draw(release(number + n))
                                        for n in range(data.draw(st.integers(0, 3))))
                    number += 4
                elif kind == "retime" and files[path]:
                    files[path] = data.draw(retimed(files[path]))
            puts = [c for c in catalog(files) if c.path in changed]
            if kind == "touch":
                puts = [c._replace(releases=None) for c in puts]
            apply(conn, puts, removed, version=f"v{step + 1}", meta={"source": "generated"})
            same_as_rebuilt(conn, files, f"v{step + 1}", Path(folder))
        conn.close()


def test_a_failed_apply_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    dataset = bundled()
    files = {f"r/{r.id}.yaml": (r,) for r in dataset.releases}
    conn = connect(tmp_path / "store.sqlite3", write=True)
    rebuild(conn, dataset_of(files, "v0"), catalog(files))
    before = dump(conn)
    clash = replace(dataset.releases[0], title="Same id, another file")
    new = FileChange("r/clash.yaml", 1, 1, 1, b"\2" * 16, (clash,))
    with pytest.raises(sqlite3.IntegrityError):
        apply(conn, [catalog(files)[3], new], [catalog(files)[5].path], version="v1")
    assert dump(conn) == before
    assert not conn.in_transaction


def test_releases_of_a_second_are_numbered_again_when_one_leaves(tmp_path: Path) -> None:
    """Three releases of one second in three files: removing the oldest, then retiming the
    newest into another second, leaves the keys a rebuild gives (no gap in the ranks)."""
    first, second, third = bundled().releases[:3]
    when = first.published
    files: dict[str, tuple[Release, ...]] = {"r/a.yaml": (replace(third, published=when),),
             "r/b.yaml": (replace(second, published=when),),
             "r/c.yaml": (replace(first, published=when),)}
    conn = connect(tmp_path / "store.sqlite3", write=True)
    rebuild(conn, dataset_of(files, "v0"), catalog(files))
    keys = [key for (key,) in conn.execute("SELECT key FROM releases ORDER BY key")]
    assert keys == [keys[0], keys[0] + 1, keys[0] + 2]
    del files["r/a.yaml"]
    apply(conn, [], ["r/a.yaml"], version="v1")
    same_as_rebuilt(conn, files, "v1", tmp_path)
    files["r/c.yaml"] = (replace(first, published=when + timedelta(seconds=1)),)
    apply(conn, [c for c in catalog(files) if c.path == "r/c.yaml"], [], version="v2")
    same_as_rebuilt(conn, files, "v2", tmp_path)
