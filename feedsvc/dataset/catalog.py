"""Which dataset files changed since the store was written: stat keys compared with `files`.

The store's `files` table holds, for each file of the served dataset, its name below the
dataset root, its stat key (size, mtime_ns, inode), whether that key was too recent to trust
(racy: hashed again at every look, as git does for "racily clean" entries), and in
`file_media` the media files its releases name with their stat keys. A look lists the files
on disk (all of them, or only those a notification named when that is safe, see _named),
stats them and compares with the table in SQL: new, changed and racy files, and those whose
media files moved, are to be read again; names in the table and not on disk are removed.
Nothing is kept in Python between looks: at 1,000,000 files a walk streams its stat keys
into a temporary table, and a notification costs an indexed lookup per named file.
"""
from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import media
from .loader import Key, _stat, stat_key
from .version import Names
from .yamlsource import SUFFIXES, find_files

# One file to read again: its name as find_files gives it, its stat key now, and whether
# its media files moved (it is then parsed again even if its own bytes are the same).
ToRead = tuple[str, Key, bool]


@dataclass(frozen=True)
class Found:
    """What a look found: the files to read again, those gone, and whether links were seen."""

    read: tuple[ToRead, ...]
    removed: tuple[str, ...]  # names as find_files gives them
    # Some file or folder is a symbolic link: changes behind it come without a notification.
    linked: bool


def look(db: sqlite3.Connection, root: Path, paths: Collection[str] | None = None, *,
         trust_stat: bool = True) -> Found:
    """Compare the files on disk with the store's catalog; return what to read and what is gone.

    `paths`: the only paths a notification said changed (used when safe, see _named);
    trust_stat=False (SIGHUP) reads every file again whatever its stat says.
    """
    names = Names(root)
    if not root.exists():
        return Found((), tuple(names.full(b) for b, in db.execute("SELECT path FROM files")),
                     False)
    if paths is not None and trust_stat:
        named = _named(db, root, paths)
        if named is not None:
            return _look_named(db, names, named)
    return _walk(db, root, names, trust_stat)


def _walk(db: sqlite3.Connection, root: Path, names: Names, trust_stat: bool) -> Found:
    """List and stat every file; compare in SQL through a temporary table of stat keys."""
    links: list[str] = []
    listed = find_files(root, links, ordered=False)
    linked = [bool(links)]

    def keys() -> Iterator[tuple[str, int, int, int]]:
        for name in listed:
            key, link = _stat(name)
            linked[0] = linked[0] or link
            yield names.below(name), *key
    db.execute("CREATE TEMP TABLE IF NOT EXISTS disk(path TEXT PRIMARY KEY, size INTEGER, "
               "mtime_ns INTEGER, inode INTEGER) WITHOUT ROWID")
    db.execute("BEGIN")  # one read of the store, and the temporary rows in one transaction
    try:
        db.executemany("INSERT OR REPLACE INTO temp.disk VALUES (?, ?, ?, ?)", keys())
        moved = json.dumps(sorted(_media_moved(root, db.execute(_MEDIA), trust_stat)))
        stale = "" if not trust_stat else \
            "WHERE f.id IS NULL OR f.racy OR f.size != d.size OR f.mtime_ns != d.mtime_ns " \
            "OR f.inode != d.inode OR d.path IN (SELECT value FROM json_each(:moved))"
        found = db.execute("SELECT d.path, d.size, d.mtime_ns, d.inode, "
                           "d.path IN (SELECT value FROM json_each(:moved)) FROM temp.disk d "
                           f"LEFT JOIN files f ON f.path = d.path {stale} ORDER BY d.path",
                           {"moved": moved})
        read = [(names.full(below), (size, mtime, inode), bool(again))
                for below, size, mtime, inode, again in found]
        gone = db.execute("SELECT path FROM files f WHERE NOT EXISTS "
                          "(SELECT 1 FROM temp.disk d WHERE d.path = f.path) ORDER BY path")
        removed = tuple(names.full(below) for below, in gone)
    finally:
        db.execute("DELETE FROM temp.disk")
        db.execute("COMMIT")  # the main database was only read: nothing written there
    return Found(tuple(read), removed, linked[0])


_MEDIA = "SELECT f.path, m.src, m.size, m.mtime_ns, m.inode FROM file_media m " \
         "JOIN files f ON f.id = m.file"


def _media_moved(root: Path, rows: Iterable[tuple[str, str, int, int, int]], stat: bool
                 ) -> set[str]:
    """Return the files (below the root) of these media rows (_MEDIA's) whose media file may
    have changed: its stat key is not the row's (stat), or every one (SIGHUP: its hashes are
    taken again, and a notified media file changed)."""
    folder = media.media_root(root)
    return {below for below, src, *key in rows if not stat or stat_key(
        os.path.join(folder, *PurePosixPath(src).parts)) != tuple(key)}


def _named(db: sqlite3.Connection, root: Path, paths: Collection[str]) -> list[str] | None:
    """Return the names below the root to look at for notified paths, and the racy ones;
    None: look at all (as loader._named: a link, a folder, a hidden folder may stand for
    files under other names, and so may any path while the dataset has links)."""
    top = os.path.abspath(root)
    linked = db.execute("SELECT value FROM meta WHERE name = 'linked'").fetchone()
    if (linked is not None and linked[0] == "1") or not os.path.isdir(root):
        return None
    names = {below for below, in db.execute("SELECT path FROM files WHERE racy")}
    srcs = set()
    for path in paths:
        if not path.startswith(top + os.sep) or os.path.islink(path) or os.path.isdir(path):
            return None
        *folders, base = path[len(top) + 1:].split(os.sep)
        if any(folder.startswith(".") for folder in folders):
            return None
        if folders[:1] == [media.MEDIA_DIR]:  # a picture or attachment (or a dataset file)
            srcs.add("/".join([*folders[1:], base]))
        if not base.startswith(".") and base.endswith(SUFFIXES):
            names.add("/".join([*folders, base]))
    if srcs:
        names.update(_media_moved(root, (row for src in srcs for row in db.execute(
            f"{_MEDIA} WHERE m.src = ?", (src,))), stat=False))
    return sorted(names)


def _look_named(db: sqlite3.Connection, names: Names, named: list[str]) -> Found:
    """Stat only the named files; an indexed lookup each."""
    read: list[ToRead] = []
    removed: list[str] = []
    linked = False
    moved = _media_moved(Path(names.top), (row for below in named for row in db.execute(
        f"{_MEDIA} WHERE f.path = ?", (below,))), stat=True)
    for below in named:
        name = names.full(below)
        row = db.execute("SELECT size, mtime_ns, inode, racy FROM files WHERE path = ?",
                         (below,)).fetchone()
        if not os.path.lexists(name):
            if row is not None:
                removed.append(name)
            continue
        key, link = _stat(name)
        linked = linked or link
        if row is None or row[3] or tuple(row[:3]) != key or below in moved:
            read.append((name, key, below in moved))
    return Found(tuple(read), tuple(removed), linked)
