"""A look at the dataset against the store: read the changed files, validate, plan one write.

`plan` compares the files with the store's catalog (catalog.py), reads and parses only the
files that changed, validates their releases against the vocabulary the store holds, looks
their ids up in the store, and works out the new version from the changed files' hashes
alone: what it returns is everything one transaction (`commit`) writes, or the problems that
refuse it. A change to the site or topic vocabulary, which every release is checked against,
reads every file again (coldstart.py). Nothing is written by `plan`.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from . import Problem, Site, Topic, duplicate_ids, parse_file
from . import version as versions
from .catalog import Found, look
from .loader import RACY_NS, FileRow, _entry, _escapes, _read
from .loader import Plan as Plan  # where coldstart.py and reload.py find it
from .rows import site_from, topics_from
from .version import Names
from .yamlsource import file_digest


class FullRead(Exception):
    """The vocabulary changed (or the store holds none): every file must be read again."""


def plan(db: sqlite3.Connection, root: Path, limit: int,
         paths: Collection[str] | None = None, *, trust_stat: bool = True) -> Plan:
    """Return what the files on disk change in the store; raise FullRead if every file must
    be read again (a vocabulary file changed, or the store is empty)."""
    meta = dict(db.execute("SELECT name, value FROM meta WHERE name IN "
                           "('site', 'topics', 'fold')").fetchall())
    if "site" not in meta or not root.exists():
        raise FullRead(str(root))
    site, topics = site_from(meta["site"]), topics_from(meta["topics"])
    found = look(db, root, paths, trust_stat=trust_stat)
    names = Names(root)
    rows, problems, changed = _read_all(db, root, limit, found, site, topics)
    removed = tuple(names.below(name) for name in found.removed)
    if any(_stored(db, "", below).vocabulary for below in removed):
        raise FullRead(str(root))
    problems += _duplicates(db, limit, names, rows, removed)
    fold = _refold(db, int(meta.get("fold", "0"), 16), rows, removed)
    return Plan(tuple(rows), removed, tuple(sorted(problems, key=Problem.place)),
                tuple(changed) + found.removed, fold, found.linked,
                replaced(db, rows, removed)[1], held(db),
                looked=tuple(name for name, _, _ in found.read) + found.removed)


def _stored(db: sqlite3.Connection, name: str, below: str) -> FileRow:
    """Return a file as the store holds it, without its releases (digest b"": no such file)."""
    row = db.execute("SELECT id, size, mtime_ns, inode, sha256, racy, vocabulary FROM files "
                     "WHERE path = ?", (below,)).fetchone()
    if row is None:
        return FileRow(name, below, (0, 0, 0), b"", releases=None)
    found = db.execute("SELECT src, size, mtime_ns, inode, sha256 FROM file_media "
                       "WHERE file = ? ORDER BY src", (row[0],))
    return FileRow(name, below, tuple(row[1:4]), bytes(row[4]), bool(row[5]), bool(row[6]),
                   tuple((s, (a, b, c), h) for s, a, b, c, h in found), None)


def _read_all(db: sqlite3.Connection, root: Path, limit: int, found: Found, site: Site,
              topics: Mapping[str, Topic]) -> tuple[list[FileRow], list[Problem], list[str]]:
    """Read the files found again, in path order; return their rows, problems, and names
    whose releases, hashes or problems changed."""
    names, now, escapes = Names(root), time.time_ns(), _escapes(root)
    rows: list[FileRow] = []
    problems: list[Problem] = []
    changed: list[str] = []
    for name, _, moved in sorted(found.read, key=lambda r: r[0].replace(os.sep, "\0")):
        old = _stored(db, name, names.below(name))
        key, _, raw, problem = _read(name, limit, escapes)
        if raw is not None and old.digest and file_digest(raw) == old.digest and not moved:
            rows.append(old._replace(key=key, racy=key[1] >= now - RACY_NS))  # touched only
            continue
        if old.vocabulary:
            raise FullRead(name)
        if raw is None:
            problems += [problem] if problem else []
            changed.append(name)
            continue
        parsed: list[Problem] = []  # the parse's problems, then _entry's (loader's rules)
        parts = parse_file(name, raw, parsed)
        if parts.sites or parts.topics:
            raise FullRead(name)
        row = _entry(root, name, old.below, key, raw, parts, parsed, site, topics, now)
        if old.digest and row.stamp == old.stamp and not row.problems:
            row = row._replace(vocabulary=False, releases=None, ids=())
        else:
            changed.append(name)
        problems += row.problems
        rows.append(row)
    return rows, problems, changed


def _duplicates(db: sqlite3.Connection, limit: int, names: Names,
                rows: list[FileRow], removed: Collection[str]) -> list[Problem]:
    """Report ids used twice: among the changed files, or by a file the store keeps (an
    indexed lookup each); the files involved are read again for the lines to report."""
    changing = [row.below for row in rows if row.releases is not None] + [*removed]
    new = [rid for row in rows if row.releases is not None for rid, _ in row.ids]
    owners = [names.full(path) for path, in db.execute(
        "SELECT f.path FROM releases r JOIN files f ON f.id = r.file WHERE r.id IN (SELECT value "
        "FROM json_each(?)) AND f.path NOT IN (SELECT value FROM json_each(?))",
        (json.dumps(new), json.dumps(changing)))]
    if len(set(new)) == len(new) and not owners:
        return []
    involved = sorted({*owners, *(r.name for r in rows)}, key=lambda n: n.replace(os.sep, "\0"))
    return duplicate_ids((name, _ids(name, limit)) for name in involved)


def _ids(name: str, limit: int) -> tuple[tuple[str, int | None], ...]:
    """Return the ids a file names, with their lines (as file_releases finds them)."""
    raw, _ = _read(name, limit, None)[2:]
    if raw is None:
        return ()
    parts = parse_file(name, raw, [])
    return tuple((mapping["id"], mapping.key_lines.get("id")) for _, mapping in parts.releases
                 if isinstance(mapping.get("id"), str))


def _refold(db: sqlite3.Connection, total: int, rows: list[FileRow],
            removed: Iterable[str]) -> int:
    """Return the version sum with the changed files' old hashes out and new ones in."""
    old = [(b, s) for b in [*(r.below for r in rows), *removed] if (s := stamp_of(db, b))]
    return versions.total((total, -versions.fold(old), versions.fold((r.below, r.stamp)
                                                                     for r in rows)))


def stamp_of(db: sqlite3.Connection, below: str) -> bytes | None:
    """Return what a stored file adds to the version (None: no such file)."""
    found = _stored(db, "", below)
    return found.stamp if found.digest else None


def replaced(db: sqlite3.Connection, rows: Iterable[FileRow],
             removed: Iterable[str]) -> tuple[int, int]:
    """Return how many releases the store holds in the files changed and removed, and how
    many of those the change removes (ids no changed file names again)."""
    rows = [row for row in rows if row.releases is not None]
    new = [r.id for row in rows for r in row.releases or ()]
    found = db.execute("SELECT count(*), count(*) FILTER (WHERE r.id NOT IN (SELECT value FROM "
                       "json_each(?))) FROM releases r JOIN files f ON f.id = r.file WHERE "
                       "f.path IN (SELECT value FROM json_each(?))",
                       (json.dumps(new), json.dumps([*(r.below for r in rows), *removed])))
    held_in, gone = found.fetchone()
    return int(held_in), int(gone)


def held(db: sqlite3.Connection) -> int:
    """Return how many releases the store holds: kept in meta by every commit (sync.py), as
    counting them costs the archive (none yet: an empty store; a store of older code, which
    did not keep it, is rebuilt: statedir.CODE_VERSION)."""
    kept = db.execute("SELECT value FROM meta WHERE name = 'releases'").fetchone()
    return int(kept[0]) if kept else 0
