"""Reading the store: per process, one read-only connection per thread, and one version per read.

A connection is opened lazily in the process and thread that uses it, never inherited across a
fork (the pid is recorded: a forked worker opens its own) and never kept per greenlet: it is
kept by the OS thread's id (gevent patches threading.local into a greenlet-local, which would
open a connection per request).

One request sees one version: `Reader.read()` begins a read transaction and reads the version
inside it; every query of the snapshot it yields (and of its views) runs in that transaction,
so a commit by the writer meanwhile is seen by the next read only (WAL: readers never block
the writer nor wait for it).
"""
from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from . import Site, Topic
from .db import Unusable, connect
from .rows import site_from, topics_from
from .visible import StoreView, view_at


@dataclass(frozen=True)
class Meta:
    """What one version of the store says besides its releases."""

    version: str
    site: Site
    topics: Mapping[str, Topic]
    source: str


@dataclass(frozen=True)
class Snapshot:
    """The store at one version, while its read transaction lasts."""

    conn: sqlite3.Connection
    meta: Meta

    @property
    def version(self) -> str:
        return self.meta.version

    @property
    def site(self) -> Site:
        return self.meta.site

    @property
    def topics(self) -> Mapping[str, Topic]:
        return self.meta.topics

    @property
    def source(self) -> str:
        return self.meta.source

    def view_at(self, now: datetime) -> StoreView:
        """Return what readers see of this version at `now` (an aware date-time)."""
        return view_at(self.conn, self.meta.site, now)


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
        self._data_version: dict[int, int] = {}

    def _conn(self) -> sqlite3.Connection:
        thread = threading.get_native_id()
        with self._lock:
            if os.getpid() != self._pid:
                self._inherited += self._conns.values()
                self._conns, self._data_version, self._pid = {}, {}, os.getpid()
            conn = self._conns.get(thread)
        if conn is None:
            conn = connect(self.path, write=False)
            with self._lock:
                self._conns[thread] = conn
        return conn

    def changed(self) -> bool:
        """Tell whether a writer committed since this thread last asked (PRAGMA data_version:
        no read of the data, so a watcher may ask it often)."""
        conn = self._conn()
        found = conn.execute("PRAGMA data_version").fetchone()[0]
        thread = threading.get_native_id()
        before = self._data_version.get(thread)
        self._data_version[thread] = found
        return before is not None and before != found

    @contextmanager
    def read(self) -> Iterator[Snapshot]:
        """Yield the store at its current version, for one request's queries."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            found = conn.execute("SELECT value FROM meta WHERE name = 'version'").fetchone()
            if found is None:
                raise Unusable(f"{self.path}: the store holds no dataset yet")
            yield Snapshot(conn, self._meta_of(conn, found[0]))
        finally:
            conn.execute("ROLLBACK")  # a read transaction: nothing to keep

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
                for conn in self._conns.values():
                    conn.close()
            self._conns = {}
