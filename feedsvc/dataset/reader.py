"""Reading the store: per process, one read-only connection per thread, and one version per read.

A connection is opened lazily in the process and thread that uses it, never inherited across a
fork (the pid is recorded: a forked worker opens its own) and never kept per greenlet: it is
kept by the OS thread's id (gevent patches threading.local into a greenlet-local, which would
open a connection per request).

One request sees one version: `Reader.read()` begins a read transaction and reads the version
inside it; every query of the snapshot it yields (and of its views) runs in that transaction,
so a commit by the writer meanwhile is seen by the next read only (WAL: readers never block
the writer nor wait for it). A thread holds one read at a time: under gevent, a request's
queries run in one call on the render thread, never across a greenlet switch.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from . import Site
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

    @property
    def version(self) -> str:
        return self.meta.version

    @property
    def site(self) -> Site:
        return self.meta.site

    def view_at(self, now: datetime) -> StoreView:
        """Return what readers see of this version at `now` (an aware date-time)."""
        return view_at(self.conn, self.meta, now)

    def status(self) -> dict[str, str]:
        """Return what the writer's last look said (db.py's status table)."""
        return dict(self.conn.execute("SELECT name, value FROM status").fetchall())


class Reader:
    """The store as one process reads it: connections per thread, opened after any fork."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._conns: dict[int, sqlite3.Connection] = {}
        self._meta: Meta | None = None
        # Connections of the process this one was forked from: kept, never used nor closed
        # (closing them could release what the parent holds), so that GC does not close them.
        self._inherited: list[sqlite3.Connection] = []
        self._idle: list[sqlite3.Connection] = []  # the pool (checkout), this process's

    def checkout(self) -> sqlite3.Connection:
        """Return a connection of this process's pool, for one request (release it after).

        A request's transaction lasts while its greenlet waits for the render thread: it
        needs a connection of its own, not the thread's (another greenlet of the hub thread
        would begin its own transaction on it meanwhile).
        """
        with self._lock:
            self._forked()
            if self._idle:
                return self._idle.pop()
        return connect(self.path, write=False)

    def release(self, conn: sqlite3.Connection) -> None:
        """Return a connection to the pool: its transaction ended, kept if few are idle."""
        if conn.in_transaction:
            conn.execute("ROLLBACK")  # a read transaction: nothing to keep
        with self._lock:
            if os.getpid() == self._pid and len(self._idle) < IDLE:
                self._idle.append(conn)
                return
        if os.getpid() == self._pid:
            conn.close()

    def _forked(self) -> None:
        """In a process forked since the connections were opened: keep them unused (under
        the lock)."""
        if os.getpid() != self._pid:
            self._inherited += [*self._conns.values(), *self._idle]
            self._conns, self._idle = {}, []
            self._pid = os.getpid()

    def _conn(self) -> sqlite3.Connection:
        thread = threading.get_native_id()
        with self._lock:
            self._forked()
            conn = self._conns.get(thread)
        if conn is None:
            conn = connect(self.path, write=False)
            with self._lock:
                self._conns[thread] = conn
        return conn

    def stamp(self) -> tuple[int, int]:
        """Return what changes when a writer commits: this thread's connection and its PRAGMA
        data_version (a counter per connection; no read of the data, a few microseconds)."""
        conn = self._conn()
        return id(conn), conn.execute("PRAGMA data_version").fetchone()[0]

    @contextmanager
    def read(self) -> Iterator[Snapshot]:
        """Yield the store at its current version, for queries made without a greenlet
        switch (the thread's own connection)."""
        conn = self._conn()
        try:
            yield self.begin(conn)
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")  # a read transaction: nothing to keep

    @contextmanager
    def pooled(self) -> Iterator[Snapshot]:
        """Yield the store at its current version on a pooled connection: for a transaction
        that may last across a greenlet switch, or beside another read of this thread."""
        conn = self.checkout()
        try:
            yield self.begin(conn)
        finally:
            self.release(conn)

    def begin(self, conn: sqlite3.Connection) -> Snapshot:
        """Begin a read transaction on `conn`; return the store at the version it sees."""
        conn.execute("BEGIN")
        found = dict(conn.execute("SELECT name, value FROM meta "
                                  "WHERE name IN ('version', 'changed_at')").fetchall())
        if "version" not in found:
            conn.execute("ROLLBACK")
            raise Unusable(f"{self.path}: the store holds no dataset yet")
        return Snapshot(conn, self._meta_of(conn, found["version"]),
                        int(found.get("changed_at", 0)))

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
                for conn in [*self._conns.values(), *self._idle]:
                    conn.close()
            self._conns, self._idle = {}, []
