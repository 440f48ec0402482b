"""Reading the store: per process, a pool of read-only connections, and one version per read.

A connection is opened lazily in the process that uses it, never inherited across a fork (the
pid is recorded: a forked worker opens its own). Each read has a pooled connection of its own,
so that a transaction may last across a greenlet switch; `stamp` alone keeps one connection
per OS thread (by its id: gevent patches threading.local into a greenlet-local).

One request sees one version: `Reader.read()` begins a read transaction and reads the version
inside it; every query of the snapshot it yields (and of its views) runs in that transaction,
so a commit by the writer meanwhile is seen by the next read only (WAL: readers never block
the writer nor wait for it).
"""
from __future__ import annotations

import itertools
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .db import Unusable, connect
from .rows import site_from, topics_from
from .served import Meta
from .visible import StoreView, view_at

IDLE = 8  # pooled connections kept open per process; more are closed when returned


@dataclass(frozen=True)
class Snapshot:
    """The store at one version, while its read transaction lasts."""

    conn: sqlite3.Connection
    meta: Meta
    # When the writer committed this version (Unix seconds, meta "changed_at"; 0: a store
    # that does not say): what a body's Last-Modified may not be older than.
    changed_at: int = 0

    def view_at(self, now: datetime) -> StoreView:
        """Return what readers see of this version at `now` (an aware date-time)."""
        return view_at(self.conn, self.meta, now)

    def status(self) -> dict[str, str]:
        """Return what the writer's last look said (db.py's status table)."""
        return dict(self.conn.execute("SELECT name, value FROM status").fetchall())


class Reader:
    """The store as one process reads it: connections opened after any fork."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # Each thread's stamp connection: with the generation it was opened in, and its number.
        self._conns: dict[int, tuple[sqlite3.Connection, int, int]] = {}
        self._generation = 0  # files replaced under this process's connections, seen so far
        self._opened = itertools.count()
        self._meta: Meta | None = None
        # Connections of the process this one was forked from: kept, never used nor closed
        # (closing them could release what the parent holds), so that GC does not close them.
        self._inherited: list[sqlite3.Connection] = []
        self._idle: list[sqlite3.Connection] = []  # the pool (read), this process's

    def _forked(self) -> None:
        """In a process forked since the connections were opened: keep them unused (under
        the lock)."""
        if os.getpid() != self._pid:
            self._inherited += [*(conn for conn, *_ in self._conns.values()), *self._idle]
            self._conns, self._idle = {}, []
            self._pid = os.getpid()

    def stamp(self) -> tuple[int, int]:
        """Return what changes when a writer commits: this thread's connection (never used to
        read; its number) and its PRAGMA data_version (a counter per connection, a few
        microseconds). A connection opened before the file was replaced is opened again."""
        thread = threading.get_native_id()
        with self._lock:
            self._forked()
            held = self._conns.get(thread)
        if held is None or held[1] != self._generation:
            if held is not None:
                held[0].close()
            held = (connect(self.path, write=False), self._generation, next(self._opened))
            with self._lock:
                self._conns[thread] = held
        return held[2], held[0].execute("PRAGMA data_version").fetchone()[0]

    @contextmanager
    def read(self) -> Iterator[Snapshot]:
        """Yield the store at its current version: a read transaction on a connection of this
        process's pool, kept for the next read if few are idle."""
        conn, found = self._begin()
        try:
            yield Snapshot(conn, self._meta_of(conn, found["version"]),
                           int(found.get("changed_at", 0)))
        finally:
            self._release(conn)

    def _begin(self) -> tuple[sqlite3.Connection, dict[str, str]]:
        """Begin a read transaction on a pooled (or new) connection; return it and what meta
        says of the version it reads (version, changed_at). A connection to a file the writer
        has replaced (marked `moved`: see sync.Looker.keep) is closed, and the next one tried:
        a new one opens the new file (and one that does not: Unusable, a 503 for a moment)."""
        for fresh in (False, True):
            with self._lock:
                self._forked()
                conn = self._idle.pop() if self._idle and not fresh else None
            conn = conn or connect(self.path, write=False)
            try:
                conn.execute("BEGIN")
                found = dict(conn.execute("SELECT name, value FROM meta "
                                          "WHERE name IN ('version', 'moved', 'changed_at')"
                                          ).fetchall())
            except BaseException:
                self._release(conn)
                raise
            if "moved" not in found:
                break
            conn.close()
            with self._lock:  # the idle ones were opened before the file was replaced too
                stale, self._idle = self._idle, []
                self._generation += 1  # and each thread's stamp connection
            for old in stale:
                old.close()
        else:
            raise Unusable(f"{self.path}: a file the writer has left (marked moved)")
        if "version" not in found:
            self._release(conn)
            raise Unusable(f"{self.path}: the store holds no dataset yet")
        return conn, found

    def _release(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            conn.execute("ROLLBACK")  # a read transaction: nothing to keep
        with self._lock:
            pooled = os.getpid() == self._pid and len(self._idle) < IDLE
            if pooled:
                self._idle.append(conn)
        if not pooled and os.getpid() == self._pid:
            conn.close()

    def _meta_of(self, conn: sqlite3.Connection, version: str) -> Meta:
        """Return the version's site and topics, decoded once per version (not per read)."""
        known = self._meta
        if known is not None and known.version == version:
            return known
        values = dict(conn.execute("SELECT name, value FROM meta "
                                   "WHERE name IN ('site', 'topics', 'source')").fetchall())
        known = Meta(version, site_from(values["site"]), topics_from(values["topics"]),
                     values["source"])
        self._meta = known
        return known

    def close(self) -> None:
        """Close this process's connections (those of a parent are left alone)."""
        with self._lock:
            if os.getpid() == self._pid:
                for conn in [*(held[0] for held in self._conns.values()), *self._idle]:
                    conn.close()
            self._conns, self._idle = {}, []
