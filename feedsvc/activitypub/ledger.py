"""Deciding what the fediverse is told, from the store: what each release was last sent as.

It runs in the deliverer (deliver.py), which reads the store as a worker does. A row of the
durable file's `ledger` table is a release the fediverse knows as live: the version (hash) of
the Article last sent and the actors that announced it, each with the version it announced.
A release that becomes visible gets the site actor's Create and an Announce from each of its
countries and topics; a new version an Update; a withdrawn, hidden or removed one a Delete and
an Undo of each Announce. Each decision (its activities queued, its ledger row written) is one
transaction of the durable file: a crash or a restart never sends twice nor forgets.

What a sync looks at costs with the change, not with the archive: the rows the store's writer
wrote since the commit last seen (`written`, indexed), the releases whose publication or
withdrawal time passed since the last sync (key and notice ranges), and, only when the ledger
holds another number of releases than the store shows (a release removed), a pass over the
ledger. A new store (a full build: a new generation) is compared release by release. The
first sync on a durable file records the archive without sending it (no flood), as of the
moment the gunicorn master started it (begun): what changed since is sent.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from typing import Any

from ..dataset.db import key_of
from ..dataset.reader import Reader
from ..dataset.records import Release
from ..dataset.rows import FIELDS, TOMBSTONE_DAYS, decode, micros
from ..dataset.visible import StoreView
from ..feeds.urls import Urls
from . import objects
from .durable import Durable

# An insert of a known id updates its row (INSERT OR REPLACE would fire the insert trigger).
PUT = ("INSERT INTO ledger VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
       "version = excluded.version, announced = excluded.announced")
BATCH = 500  # ids per query of a pass, releases per transaction of a first recording
NOTICE_US = int(TOMBSTONE_DAYS.total_seconds()) * 10**6  # withdrawal -> notice_until_us
# How long an undone boost's Undo id answers (seconds after the sync that queued the Undo):
# its deliveries are tried for 48 hours (deliver.GIVE_UP_AFTER), and a server that gets it
# fetches its id at once, if ever; a day more is margin. A sync deletes what is older.
UNDONE_KEPT = 72 * 3600.0


@dataclass(frozen=True)
class Mark:
    """Where the last sync left the store: its full build, its commit counter, its moment."""

    generation: str
    commit: int
    now_us: int


@dataclass(frozen=True)
class Synced:
    """What a sync did, and when what readers see changes next without a write (or None)."""

    looked: int
    queued: int
    next_change: datetime | None
    recorded: bool = False  # a first sync: the archive recorded, nothing sent


def handles(release: Release) -> list[str]:
    """Return the actors that announce a release: its countries (lowercase) and topics."""
    return [code.lower() for code in release.countries] + list(release.topics)


def begun(reader: Reader, now: datetime) -> str:
    """Name where the store is at `now`, the moment federation begins, for a deliverer the
    gunicorn master starts: what is visible then is recorded as sent by its first sync, what
    is written or goes live after it is sent (a Follow, then a release, may come before the
    deliverer's first sync). The master reads only the store: never the durable file."""
    with reader.read() as snapshot:
        mark = _mark_at(snapshot.conn, now)
    return f"{mark.generation}:{mark.commit}:{mark.now_us}"


class Ledger:
    """The deliverer's view of what was sent, and the decisions that keep it true."""

    def __init__(self, durable: Durable, reader: Reader, urls: Urls,
                 since: str | None = None) -> None:
        self.durable, self.reader, self.urls = durable, reader, urls
        self.since = None if not since else Mark(*_fields(since))  # begun()'s, if any
        self._now = 0.0  # the sync's moment (epoch seconds): when what it queues is queued

    def sync(self, now: datetime) -> Synced:
        """Send what changed in the store, or passed its time, since the last sync."""
        self._now = now.timestamp()
        with self.reader.read() as snapshot:
            view = snapshot.view_at(now)
            mark, last = _mark_at(view.conn, now), self._mark()
            if last is None:
                return self._first(view, self.since, mark)
            if last.generation != mark.generation:  # a new store: compare every release
                looked, queued = self._decide_all(view, chain(_visible_ids(view), self._ids()))
            else:
                looked, queued = self._decide_all(view, _changed(view, last, mark))
                if self._count() != view.count():  # a release removed (or one left behind)
                    more = self._decide_all(view, self._strays(view))
                    looked, queued = looked + more[0], queued + more[1]
            self._save(mark)
            return Synced(looked, queued, view.next_change)

    def _first(self, view: StoreView, since: Mark | None, mark: Mark) -> Synced:
        """Record the archive as sent; with begun()'s mark (same store), send what was
        written or went live since it."""
        new = [] if since is None or since.generation != mark.generation else \
            _changed(view, since, mark)
        looked = self._record(view, frozenset(new))
        decided, queued = self._decide_all(view, new)
        self._save(mark)
        return Synced(looked + decided, queued, view.next_change, recorded=True)

    def _decide_all(self, view: StoreView, ids: Iterable[str]) -> tuple[int, int]:
        looked = queued = 0
        for release_id in ids:
            looked += 1
            queued += self.decide(view, release_id)
        return looked, queued

    def _strays(self, view: StoreView) -> Iterator[str]:
        """Yield the ledger's releases readers no longer see, then the visible ones it lacks
        (ids only, by index: a release is decoded only if it is one)."""
        for chunk in _chunks(self._ids()):
            seen = {r[0] for r in view.conn.execute(
                f"SELECT id FROM releases WHERE key <= ? AND hidden = 0 AND id IN "  # noqa: S608
                f"({', '.join('?' * len(chunk))})", (view.upto, *chunk))}
            yield from (i for i in chunk if i not in seen)
        if self._count() == view.count():
            return
        for chunk in _chunks(_visible_ids(view)):
            with self.durable.transaction() as conn:
                known = {r[0] for r in conn.execute(
                    f"SELECT id FROM ledger WHERE id IN ({', '.join('?' * len(chunk))})",  # noqa: S608
                    chunk)}
            yield from (i for i in chunk if i not in known)

    def decide(self, view: StoreView, release_id: str) -> int:
        """Bring one release's ledger row in line with what readers see; return how many
        deliveries that queued (its activities and its row in one transaction)."""
        state, release = view.status(release_id)
        with self.durable.transaction() as conn:
            row = conn.execute("SELECT version, announced FROM ledger WHERE id = ?",
                               (release_id,)).fetchone()
            announced: dict[str, str] = {} if row is None else json.loads(row[1])
            if state != "ok" or release is None:
                if row is None:
                    return 0
                conn.execute("DELETE FROM ledger WHERE id = ?", (release_id,))
                return self._withdraw(conn, release_id, announced)
            article = objects.article(release, self.urls)
            version = objects.version(article)
            if row is not None and row[0] == version:
                return 0
            targets = {h: announced.get(h, version) for h in handles(release)}
            conn.execute(PUT, (release_id, version, json.dumps(targets, sort_keys=True)))
            first = objects.update(article) if row is not None else objects.create(article)
            queued = self._send(objects.SITE_HANDLE, first)
            queued += sum(self._send(h, objects.announce(h, article))
                          for h in targets if h not in announced)
            return queued + sum(self._undo(conn, h, release_id, v)
                                for h, v in announced.items() if h not in targets)

    def _withdraw(self, conn: sqlite3.Connection, release_id: str,
                  announced: dict[str, str]) -> int:
        queued = self._send(objects.SITE_HANDLE, objects.delete(self.urls.release(release_id)))
        return queued + sum(self._undo(conn, h, release_id, v)
                            for h, v in sorted(announced.items()))

    def _undo(self, conn: sqlite3.Connection, handle: str, release_id: str, version: str) -> int:
        """Undo an actor's boost of a release, and remember it did (its id answers then)."""
        conn.execute("INSERT INTO undone_boosts VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE "
                     "SET undone = excluded.undone", (release_id, handle, version, self._now))
        return self._send(handle, objects.undo(objects.announced(self.urls, handle, release_id,
                                                                 version)))

    def _send(self, handle: str, activity: dict[str, Any]) -> int:
        """Queue an activity to an actor's followers (none: nothing queued)."""
        if not self.durable.is_followed(handle):
            return 0
        return int(self.durable.enqueue_to_followers(handle, activity, now=self._now))

    def _record(self, view: StoreView, skip: frozenset[str]) -> int:
        """Record every visible release but `skip` as sent: the first sync on an archive."""
        count, after = 0, view.upto
        while True:
            batch = view.conn.execute(f"SELECT key, {FIELDS} FROM releases WHERE key <= ? AND "
                                      "hidden = 0 ORDER BY key DESC LIMIT ?",  # noqa: S608
                                      (after, BATCH)).fetchall()
            rows = []
            for row in batch:
                if row[1] in skip:
                    continue
                release = decode(row[1:])
                version = objects.version(objects.article(release, self.urls))
                rows.append((release.id, version, json.dumps(
                    dict.fromkeys(handles(release), version), sort_keys=True)))
            with self.durable.transaction() as conn:
                conn.executemany(PUT, rows)
            count += len(rows)
            if len(batch) < BATCH:
                return count
            after = batch[-1][0] - 1

    def _mark(self) -> Mark | None:
        with self.durable.transaction() as conn:
            found = dict(conn.execute("SELECT name, value FROM ledger_sync").fetchall())
        if "generation" not in found:
            return None
        return Mark(found["generation"], int(found["commit"]), int(found["now_us"]))

    def _save(self, mark: Mark) -> None:
        """Note where the sync left the store; forget the boosts undone before UNDONE_KEPT."""
        with self.durable.transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO ledger_sync VALUES (?, ?)",
                             [("generation", mark.generation), ("commit", str(mark.commit)),
                              ("now_us", str(mark.now_us))])
            conn.execute("DELETE FROM undone_boosts WHERE undone < ?", (self._now - UNDONE_KEPT,))

    def _count(self) -> int:
        with self.durable.transaction() as conn:
            return int(conn.execute("SELECT value FROM ledger_sync WHERE name = 'count'")
                       .fetchone()[0])

    def _ids(self) -> Iterator[str]:
        """Yield every id of the ledger, a batch a transaction (decisions may delete rows)."""
        after = ""
        while True:
            with self.durable.transaction() as conn:
                batch = [r[0] for r in conn.execute("SELECT id FROM ledger WHERE id > ? "
                                                    "ORDER BY id LIMIT ?", (after, BATCH))]
            yield from batch
            if len(batch) < BATCH:
                return
            after = batch[-1]


def _meta(conn: sqlite3.Connection, name: str) -> str | None:
    found = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return None if found is None else str(found[0])


def _mark_at(conn: sqlite3.Connection, now: datetime) -> Mark:
    """Return where the store is (read in its transaction on `conn`) at `now`."""
    return Mark(_meta(conn, "generation") or "", int(_meta(conn, "commit") or 0), micros(now))


def _fields(text: str) -> tuple[str, int, int]:
    generation, commit, now_us = text.split(":")
    return generation, int(commit), int(now_us)


def _changed(view: StoreView, last: Mark, mark: Mark) -> list[str]:
    """Return the ids of the releases written since the last sync, and of those whose
    publication or withdrawal time passed since, in id order (each index range a query)."""
    conn, ids = view.conn, set[str]()
    ids.update(r[0] for r in conn.execute("SELECT id FROM releases WHERE written > ?",
                                          (last.commit,)))
    if mark.now_us > last.now_us:
        ids.update(r[0] for r in conn.execute(
            "SELECT id FROM releases WHERE key >= ? AND key <= ? AND published_us > ?",
            (key_of(last.now_us // 1_000_000, 0), view.upto, last.now_us)))
        ids.update(r[0] for r in conn.execute(
            "SELECT id FROM releases WHERE notice_until_us > ? AND notice_until_us <= ?",
            (last.now_us + NOTICE_US, mark.now_us + NOTICE_US)))
    return sorted(ids)


def _visible_ids(view: StoreView) -> Iterator[str]:
    """Yield the id of every release readers see (the listed releases' index, in key order)."""
    after = view.upto
    while True:
        batch = view.conn.execute("SELECT key, id FROM releases WHERE key <= ? AND hidden = 0 "
                                  "ORDER BY key DESC LIMIT ?", (after, BATCH)).fetchall()
        yield from (r[1] for r in batch)
        if len(batch) < BATCH:
            return
        after = batch[-1][0] - 1


def _chunks(ids: Iterable[str]) -> Iterator[Sequence[str]]:
    chunk: list[str] = []
    for release_id in ids:
        chunk.append(release_id)
        if len(chunk) == BATCH:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def announced(durable: Durable, release_id: str) -> dict[str, str]:
    """Return the version of a release each actor last announced, as the ledger says."""
    found = durable.read("SELECT announced FROM ledger WHERE id = ?", (release_id,))
    return {} if not found else dict(json.loads(found[0][0]))


def undone(durable: Durable, release_id: str, now: datetime) -> frozenset[tuple[str, str]]:
    """Return the boosts of a release the ledger undid within UNDONE_KEPT before `now`:
    (actor, the version it announced)."""
    return frozenset(durable.read("SELECT handle, version FROM undone_boosts WHERE id = ? "
                                  "AND undone >= ?", (release_id, now.timestamp() - UNDONE_KEPT)))
