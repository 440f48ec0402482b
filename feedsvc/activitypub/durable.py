"""The fediverse's durable file: the site's key pair, followers, the delivery queue, remote keys.

`<state dir>/activitypub.sqlite3`, beside the store but never rebuilt like it: the key pair is
the site's identity (followers' servers know it) and the followers cannot be found again. So a
file that is not ours, damaged or of a newer schema is an error naming it, never replaced.
One SQLite file (WAL, busy_timeout) serves every process; each opens its own connection after
fork. feddel's `ledger` table lives here too, written in `transaction()` with the queue.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .durablefile import FILE_NAME, DurableError, named, open_file
from .keys import KeysError, SiteKey, new_site_key, read_keys_dir

log = logging.getLogger("feedsvc.activitypub")
__all__ = ["Delivery", "Durable", "DurableError", "SiteKey", "durable_path"]


_INHERITED: list[sqlite3.Connection] = []


@dataclass(frozen=True)
class Delivery:
    """One claimed POST: `body` (the activity's exact bytes) to `inbox`, signed as `signer`."""

    id: int
    signer: str
    inbox: str
    body: bytes
    attempts: int  # including this one
    created: float  # when it was queued (epoch seconds): retries stop some time after it


def durable_path(state_dir: str | Path) -> Path:
    """Name the durable file of a state directory."""
    return Path(state_dir) / FILE_NAME


def activity_bytes(activity: dict[str, Any]) -> bytes:
    """Serialize an activity once: its bytes are what is signed (Digest) and sent."""
    return json.dumps(activity, ensure_ascii=False, separators=(",", ":")).encode()


class Durable:
    """The durable file, opened lazily in each process (after a fork, anew)."""

    def __init__(self, path: str | Path, keys_dir: str | Path | None = None) -> None:
        self.path = Path(path)
        self.keys_dir = Path(keys_dir) if keys_dir is not None else None
        self._pid = -1
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._depth = 0
        self._key: SiteKey | None = None

    # --- the connection --------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            if self._conn is not None:  # the parent's, across a fork: never used nor closed here
                _INHERITED.append(self._conn)  # (closing it could delete the parent's WAL)
            self._conn, self._pid, self._lock, self._depth = None, os.getpid(), threading.RLock(), 0
            self._conn = open_file(self.path)
        return self._conn

    def close(self) -> None:
        """Close this process's connection (the next call opens it again)."""
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a write transaction (BEGIN IMMEDIATE); calls made inside it join it."""
        conn = self._connection()
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield conn
                finally:
                    self._depth -= 1
                return
            with named(self.path):
                conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:  # SQLite rolls back itself on some errors (a full disk)
                    conn.execute("ROLLBACK")
                raise
            else:
                with named(self.path):
                    conn.execute("COMMIT")
            finally:
                self._depth = 0

    def read(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        """Run one query outside any write transaction (a GET never waits for the writer)."""
        conn = self._connection()
        with self._lock, named(self.path):
            return conn.execute(sql, tuple(args)).fetchall()

    # --- the site's key pair ---------------------------------------------------------------
    def site_key(self) -> SiteKey:
        """Return the site's key pair: from FEEDSVC_ACTIVITYPUB_KEYS_DIR if set, else from the
        file, made at the first call (two processes racing keep the first one written)."""
        if self._key is None and self.keys_dir is not None:
            try:
                self._key = read_keys_dir(self.keys_dir)
            except KeysError as error:
                raise DurableError(str(error)) from None
        if self._key is None:
            self._key = self._stored_key()
        return self._key

    def _stored_key(self) -> SiteKey:
        found = self.read("SELECT private_pem, public_pem FROM keys WHERE name = 'site'")
        if not found:
            made = new_site_key()  # outside the transaction: generation takes ~0.1 s
            with self.transaction() as conn:
                cursor = conn.execute("INSERT INTO keys VALUES ('site', ?, ?, ?) ON CONFLICT DO NOTHING",
                                      (made.private_pem, made.public_pem, int(time.time())))
            if cursor.rowcount:
                log.warning("made the site's key pair in %s (its fediverse identity: back it up)",
                            self.path)
            found = self.read("SELECT private_pem, public_pem FROM keys WHERE name = 'site'")
        return SiteKey(bytes(found[0][0]), str(found[0][1]))

    # --- followers -------------------------------------------------------------------------
    def follow(self, handle: str, actor_id: str, inbox: str, shared_inbox: str | None) -> None:
        """Record that `actor_id` follows `handle` (again: its inboxes are updated)."""
        with self.transaction() as conn:
            conn.execute("INSERT INTO followers VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE "
                         "SET inbox = excluded.inbox, shared_inbox = excluded.shared_inbox",
                         (handle, actor_id, inbox, shared_inbox or None, int(time.time())))

    def unfollow(self, handle: str, actor_id: str) -> bool:
        """Remove one follow; return whether there was one."""
        with self.transaction() as conn:
            return conn.execute("DELETE FROM followers WHERE handle = ? AND actor_id = ?",
                                (handle, actor_id)).rowcount > 0

    def forget_actor(self, actor_id: str) -> int:
        """Forget a remote actor (it was deleted): its follows and its cached keys."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM actor_keys WHERE actor_id = ?", (actor_id,))
            return conn.execute("DELETE FROM followers WHERE actor_id = ?", (actor_id,)).rowcount

    def forget_inbox(self, inbox: str) -> int:
        """Forget the followers reached through a gone inbox (410), and what is queued to it."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM deliveries WHERE inbox = ?", (inbox,))
            return conn.execute("DELETE FROM followers WHERE inbox = ? OR shared_inbox = ?",
                                (inbox, inbox)).rowcount

    def follower_count(self, handle: str) -> int:
        return int(self.read("SELECT count(*) FROM followers WHERE handle = ?", (handle,))[0][0])

    def is_followed(self, handle: str) -> bool:
        return bool(self.read("SELECT 1 FROM followers WHERE handle = ? LIMIT 1", (handle,)))

    # --- the queue: the inbox and the ledger put in ----------------------------------------
    def enqueue(self, signer_handle: str, activity: dict[str, Any], inboxes: Iterable[str],
                now: float | None = None) -> int:
        """Queue `activity` for each inbox (once each), signed by `signer_handle`'s key id."""
        at = time.time() if now is None else now
        targets = sorted(set(inboxes))
        if not targets:
            return 0
        with self.transaction() as conn:
            activity_id = _add_activity(conn, signer_handle, activity)
            return conn.executemany(
                "INSERT INTO deliveries(activity, inbox, created, due) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING", [(activity_id, inbox, at, at) for inbox in targets]
            ).rowcount

    def enqueue_to_followers(self, signer_handle: str, activity: dict[str, Any],
                             now: float | None = None) -> int:
        """Queue `activity` for `signer_handle`'s followers: one delivery per shared inbox (its
        server hands it to each follower there), else per inbox. Return how many."""
        at = time.time() if now is None else now
        with self.transaction() as conn:
            activity_id = _add_activity(conn, signer_handle, activity)
            queued = conn.execute(
                "INSERT INTO deliveries(activity, inbox, created, due) "
                "SELECT DISTINCT ?, coalesce(shared_inbox, inbox), ?, ? FROM followers "
                "WHERE handle = ? ORDER BY 2 ON CONFLICT DO NOTHING",
                (activity_id, at, at, signer_handle)).rowcount
            if not queued:
                conn.execute("DELETE FROM activities WHERE id = ?", (activity_id,))
            return queued

    # --- the queue: the deliverer takes out ------------------------------------------------
    def claim(self, limit: int, lease: float = 300.0, now: float | None = None) -> list[Delivery]:
        """Take up to `limit` due deliveries, oldest due first. Each is due again `lease`
        seconds later unless `delivered`, `retry_later` or `give_up` is called first (so a
        deliverer that dies loses nothing)."""
        at = time.time() if now is None else now
        with self.transaction() as conn:
            rows = conn.execute(
                "UPDATE deliveries SET due = ?, attempts = attempts + 1 WHERE id IN "
                "(SELECT id FROM deliveries WHERE due <= ? ORDER BY due, id LIMIT ?) "
                "RETURNING id, activity, inbox, attempts, created", (at + lease, at, limit)
            ).fetchall()
            activities = {row[0]: (row[1], bytes(row[2])) for row in conn.execute(
                f"SELECT id, signer, body FROM activities WHERE id IN ({','.join('?' * len(rows))})",
                [row[1] for row in rows])} if rows else {}
        return [Delivery(row[0], activities[row[1]][0], row[2], activities[row[1]][1], row[3], row[4])
                for row in sorted(rows)]

    def delivered(self, delivery_id: int) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM deliveries WHERE id = ?", (delivery_id,))

    def retry_later(self, delivery_id: int, at: float, error: str) -> None:
        """Make a claimed delivery due again at `at` (epoch seconds), noting why it failed."""
        with self.transaction() as conn:
            conn.execute("UPDATE deliveries SET due = ?, last_error = ? WHERE id = ?",
                         (at, error[:500], delivery_id))

    def give_up(self, delivery_id: int, error: str) -> None:
        """Drop a delivery for good (logged: who was not reached, and why)."""
        with self.transaction() as conn:
            found = conn.execute("DELETE FROM deliveries WHERE id = ? RETURNING inbox, attempts",
                                 (delivery_id,)).fetchone()
        if found:
            log.warning("gave up delivering to %s after %d attempts: %s", found[0], found[1], error)

    def next_due(self) -> float | None:
        """When the next delivery is due (epoch seconds; claimed ones at their lease's end)."""
        return self.read("SELECT min(due) FROM deliveries")[0][0]  # type: ignore[no-any-return]

    def pending(self) -> int:
        return int(self.read("SELECT count(*) FROM deliveries")[0][0])

    # --- remote actors' keys (fetch.ActorKeys) ---------------------------------------------
    def cached_actor_key(self, key_id: str, max_age: float,
                         now: float | None = None) -> tuple[str, str] | None:
        """Return (actor id, public PEM) of a remote key fetched less than `max_age` s ago."""
        found = self.actor_key(key_id)
        at = time.time() if now is None else now
        return (found[0], found[1]) if found and found[2] > at - max_age else None

    def actor_key(self, key_id: str) -> tuple[str, str, float] | None:
        """Return (actor id, public PEM, when fetched) of a remote key kept, if it is."""
        found = self.read("SELECT actor_id, public_pem, fetched FROM actor_keys WHERE key_id = ?",
                           (key_id,))
        return (str(found[0][0]), str(found[0][1]), float(found[0][2])) if found else None

    def store_actor_key(self, key_id: str, actor_id: str, public_pem: str,
                        now: float | None = None) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO actor_keys VALUES (?, ?, ?, ?)",
                         (key_id, actor_id, public_pem, time.time() if now is None else now))


def _add_activity(conn: sqlite3.Connection, signer: str, activity: dict[str, Any]) -> int:
    cursor = conn.execute("INSERT INTO activities(signer, body) VALUES (?, ?)",
                          (signer, activity_bytes(activity)))
    return int(cursor.lastrowid or 0)


