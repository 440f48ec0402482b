"""One look at the dataset for the store's one writer: plan what changed, then commit it.

`Looker.look` returns the Plan of the files on disk against the store: only the changed files
read (ingest.plan), or every file (`full`: coldstart.read_all) when the store is empty or the
vocabulary changed, with the mass-removal guard's counts taken from the store. `commit` writes
a plan in one transaction (write.apply, or bulkload.fill for a full read); `build` writes a full
read to a new file that replaces a store nothing reads (bulkload.build). A plan with problems is
refused and nothing is written, and a look that found nothing writes nothing at all.
"""
from __future__ import annotations

import json
import os
import secrets
import sqlite3
from collections.abc import Collection, Mapping
from dataclasses import replace
from pathlib import Path

from . import DatasetError, bulkload
from . import write as writer
from .bulkload import change_of, fill, store_file
from .coldstart import CHILD_LOAD_BYTES, read_all
from .db import connect
from .ingest import FullRead, Plan, held, plan, replaced, stamp_of
from .version import Names


def full(db: sqlite3.Connection, root: Path, limit: int, *, over: int = CHILD_LOAD_BYTES
         ) -> Plan:
    """Return what every file on disk changes in the store: a full read, staged beside the
    store (nothing is written to it), with the files and releases it removes."""
    found = read_all(root, limit, store_file(db), over=over, fresh=not built(db))
    served = held(db)
    if not served and not db.execute("SELECT 1 FROM files LIMIT 1").fetchone():
        return found
    ids = json.dumps([rid for row in found.files for rid, _ in row.ids])
    gone = db.execute("SELECT count(*) FROM releases WHERE id NOT IN "
                      "(SELECT value FROM json_each(?))", (ids,)).fetchone()[0]
    removed = tuple(path for path, in db.execute(
        "SELECT path FROM files WHERE path NOT IN (SELECT value FROM json_each(?)) "
        "ORDER BY path", (json.dumps([row.below for row in found.files]),)))
    changed = tuple(row.name for row in found.files if stamp_of(db, row.below) != row.stamp)
    changed += tuple(Names(root).full(path) for path in removed)
    problems = tuple(p.file for p in found.problems if p.file not in changed)
    return replace(found, removed=removed, gone=gone, served=served, changed=changed,
                   looked=changed + tuple(dict.fromkeys(problems)))


def commit(db: sqlite3.Connection, root: Path, found: Plan,
           extra: Mapping[str, str] | None = None) -> bool:
    """Write a plan in one transaction, with `extra` in meta; return whether anything was
    written. A full read gets a new "generation" (db.py).

    Raise DatasetError (writing nothing) if the plan has problems.
    """
    meta = _meta(root, found, extra)
    if found.site is not None:  # a full read: its releases are staged (bulkload.py)
        assert found.topics is not None and found.staged is not None
        try:
            fill(db, found.staged, meta, site=found.site, topics=found.topics)
        finally:
            found.staged.close()
        return True
    files = [change_of(row) for row in found.files]
    known = dict(db.execute("SELECT name, value FROM meta WHERE name IN ('linked', 'fold')"))
    if not files and not found.removed and known == {k: meta[k] for k in ("linked", "fold")}:
        return False  # nothing changed, not even a stat: no transaction, no new data_version
    held_in = replaced(db, found.files, found.removed)[0]
    meta["releases"] = str(held(db) - held_in + sum(len(f.releases or ()) for f in files))
    writer.apply(db, files, found.removed, version=found.version, meta=meta)
    return True


def build(store: Path, root: Path, found: Plan, extra: Mapping[str, str] | None = None) -> None:
    """Write a full read's plan to a new file that replaces the `store` file (bulkload.build),
    which nothing may have open (a cold start, `feedsvc snapshot`).

    Raise DatasetError (writing nothing) if the plan has problems.
    """
    meta = _meta(root, found, extra)
    assert found.site is not None and found.topics is not None and found.staged is not None
    try:
        bulkload.build(store, found.staged, meta, site=found.site, topics=found.topics)
    finally:
        found.staged.close()


def built(db: sqlite3.Connection) -> bool:
    """Tell whether the store was ever built (else a full read builds a new file: `build`)."""
    return db.execute("SELECT 1 FROM meta WHERE name = 'version'").fetchone() is not None


def _meta(root: Path, found: Plan, extra: Mapping[str, str] | None) -> dict[str, str]:
    """Return what a commit of the plan writes in meta; DatasetError if it has problems."""
    if found.problems:
        raise DatasetError(found.problems)
    meta = {"fold": f"{found.fold:032x}", "linked": "1" if found.linked else "0",
            "root": str(root), **(extra or {})}
    if found.site is not None:
        meta.update(version=found.version, source=str(root), generation=secrets.token_hex(8),
                    releases=str(sum(len(row.ids) for row in found.files)))
    return meta


class Looker:
    """The writer's looks at one dataset: a look and, if valid and allowed, its commit.

    A rejected (or held) look writes nothing, so the store still holds the files as they were
    before it; the files it read are remembered here (only those: what changed, not the
    archive) and read again by every look until a commit, so that a notification naming
    another file still finds them invalid (as a full load would).
    """

    def __init__(self, db: sqlite3.Connection, root: Path, limit: int,
                 meta: Mapping[str, str] | None = None) -> None:
        self.db, self.root, self.limit = db, root, limit
        self.meta = dict(meta or {})  # what every commit writes in meta (statedir.META)
        self.pending: frozenset[str] = frozenset()
        self.store = store_file(db)
        self.inode = os.stat(self.store).st_ino  # the file this writer has open

    def moved(self) -> bool:
        """Tell whether the store's file is no longer the one this writer has open (a stat)."""
        try:
            return os.stat(self.store).st_ino != self.inode
        except FileNotFoundError:
            return True

    def keep(self) -> str | None:
        """Write the store's file again if it was deleted or replaced under the writer (a
        cache cleaner, an operator's `rm`): a copy of what this connection holds (SQLite's
        backup), renamed into place; the old file is then marked `moved` (one commit that
        every reader's connection sees: reader.py opens the new file). Return what happened
        to the file, or None if it is this writer's."""
        store = self.store
        if not self.moved():
            return None
        why = "replaced" if store.exists() else "deleted"
        store.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fresh = store.with_name(f"{store.name}.kept-{os.getpid()}")
        copy = sqlite3.connect(fresh)
        try:
            self.db.backup(copy)
        finally:
            copy.close()
        for side in ("-wal", "-shm"):  # never replayed into the copy (as bulkload.build)
            store.with_name(store.name + side).unlink(missing_ok=True)
        os.replace(fresh, store)
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('moved', '1')")
        self.db.close()
        self.db = connect(store, write=True)
        self.inode = os.stat(store).st_ino
        return why

    def look(self, paths: Collection[str] | None = None, *, trust_stat: bool = True,
             child_over: int = CHILD_LOAD_BYTES) -> Plan:
        """Return what the files on disk change in the store since the last commit (nothing
        is written)."""
        named = None if paths is None else {*paths, *self.pending}
        try:
            found = plan(self.db, self.root, self.limit, named, trust_stat=trust_stat)
        except FullRead:
            found = full(self.db, self.root, self.limit, over=child_over)
        # As a notification names them (absolute), whatever the root's spelling.
        self.pending |= frozenset(os.path.abspath(name) for name in found.looked)
        return found

    def commit(self, found: Plan, extra: Mapping[str, str] | None = None) -> bool:
        """Write a plan (see sync.commit), with `extra` in meta besides what every commit
        writes; the files read since the last commit are then in.

        A full read into a store never built (a cold start: the writer's is the only
        connection, readers come after) builds a new file instead (sync.build)."""
        written, meta = True, {**self.meta, **(extra or {})}
        if found.site is not None and not found.problems and not built(self.db):
            store = self.store
            self.db.close()
            try:
                build(store, self.root, found, meta)
            finally:  # the new store, or the old one if the build failed
                self.db = connect(store, write=True)
                self.inode = os.stat(store).st_ino
        else:
            written = commit(self.db, self.root, found, meta)
        self.pending = frozenset()
        return written
