"""The deliverer: the one process per durable file that tells the fediverse what changed.

`feedsvc deliver` runs it: the shipped gunicorn config starts it as a child of the master
(FEEDSVC_ACTIVITYPUB_DELIVER=auto), a deploy's sidecar otherwise (external). Its loop: when the
store's PRAGMA data_version moves, or the next scheduled change passes, the ledger decides what
to queue (ledger.py); due deliveries are claimed from the durable queue and POSTed, signed, by a
pool of threads (bounded concurrency); a failure is retried with exponential backoff for up to
48 hours after it was queued, then given up; a 410 gives up at once and forgets that inbox's
followers; a 4xx other than 401, 408 and 429 is given up at once too (Mastodon's rule: sending
again will not help). A claim is a lease: a deliverer that dies leaves its claims due again
LEASE seconds later, and the restarted one sends them (a POST answered just before a crash may
be sent twice; servers drop an activity id they have seen).

One deliverer per durable file: it holds an flock on `<durable file>.deliver-lock` (the kernel
releases it however the process ends); another waits for it, so a restart or a second start
(a sidecar beside the gunicorn config's) never sends in parallel.
"""
from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..dataset.db import Unusable
from ..dataset.reader import Reader
from ..feeds.urls import Urls
from .durable import Delivery, Durable
from .fetch import FetchError, post
from .ledger import Ledger
from .signatures import Signer

log = logging.getLogger("feedsvc.deliver")
CONCURRENCY = 16  # POSTs in flight at once
LEASE = 300.0  # seconds a claimed delivery waits for its outcome before it is due again
FIRST_RETRY = 60.0  # seconds; doubled at each attempt
GIVE_UP_AFTER = 48 * 3600.0  # seconds after it was queued
POLL = 1.0  # seconds between looks at the store's data_version when idle
RETRIED_4XX = frozenset({401, 408, 429})  # a key not fetched yet, a timeout, a rate limit


Send = Callable[[Delivery], int]  # POST a delivery, signed; return the HTTP status


def sender(durable: Durable, urls: Urls, settings: Mapping[str, Any]) -> Send:
    """Return how the deliverer POSTs: signed by the actor that queued it with the site's
    key (read at the first POST), through fetch.py's guarded client (no private address
    unless FEEDSVC_ACTIVITYPUB_ALLOW_PRIVATE allows it)."""
    allow = settings["FEEDSVC_ACTIVITYPUB_ALLOW_PRIVATE"]

    def send(delivery: Delivery) -> int:
        signer = Signer(f"{urls.actor(delivery.signer)}#main-key", durable.site_key().private_pem)
        return post(delivery.inbox, delivery.body, signer, allow)

    return send


def backoff(attempts: int) -> float:
    """Return how long to wait after a delivery's `attempts`-th failed attempt."""
    return FIRST_RETRY * 2.0 ** (attempts - 1)


class Deliverer:
    """The loop: sync the ledger, claim, send, note each outcome."""

    def __init__(self, durable: Durable, store: Path, ledger: Callable[[Reader], Ledger],
                 send: Send, concurrency: int = CONCURRENCY,
                 clock: Callable[[], float] = time.time, poll: float = POLL) -> None:
        self.durable, self.store, self.send = durable, store, send
        self.concurrency, self.clock, self.poll = concurrency, clock, poll
        self._ledger_of = ledger
        self._reader: Reader | None = None
        self._ledger: Ledger | None = None
        self._seen: tuple[int, int, int] | None = None  # the store's inode, connection, version
        self._next_change: float | None = None

    def run(self, stop: threading.Event, alive: Callable[[], bool] = lambda: True) -> None:
        """Deliver until `stop` is set or `alive()` is false (what is in flight then is
        finished first)."""
        inflight: set[Future[None]] = set()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="deliver") as pool:
            while not stop.is_set() and alive():
                self.sync_if_changed()
                room = 2 * self.concurrency - len(inflight)
                if room > 0:
                    inflight |= {pool.submit(self.attempt, d)
                                 for d in self.durable.claim(room, LEASE, self.clock())}
                if inflight:
                    done, _ = wait(inflight, timeout=self.poll, return_when=FIRST_COMPLETED)
                    inflight -= done
                    for failed in (f.exception() for f in done):
                        if failed is not None:  # a bug: said; the claim's lease ends it
                            log.error("a delivery failed: %r", failed)
                else:
                    stop.wait(self._idle())
            wait(inflight)

    def _idle(self) -> float:
        """Return how long nothing is to be done (at most `poll`: the store is looked at then)."""
        now = self.clock()
        due = [t for t in (self.durable.next_due(), self._next_change) if t is not None]
        return max(0.0, min([self.poll, *(t - now for t in due)]))

    def sync_if_changed(self) -> bool:
        """Let the ledger decide when the store was written or its next change passed; return
        whether it did."""
        try:
            seen = self._look()
            if seen == self._seen and (self._next_change is None
                                       or self.clock() < self._next_change):
                return False
            assert self._ledger is not None
            synced = self._ledger.sync(datetime.fromtimestamp(self.clock(), UTC))
        except (Unusable, OSError) as error:  # not built yet, or being rebuilt: next time
            log.debug("store not readable yet: %s", error)
            return False
        self._seen = seen
        self._next_change = None if synced.next_change is None else \
            synced.next_change.timestamp()
        if synced.recorded:
            log.info("fediverse ledger: %d visible releases recorded as sent (a first start: "
                     "nothing is sent for them)", synced.looked)
        elif synced.queued:
            log.info("fediverse: %d deliveries queued (%d releases looked at)", synced.queued,
                     synced.looked)
        return True

    def _look(self) -> tuple[int, int, int]:
        """Return what names the store's state: its file (a rebuild may replace it) and its
        PRAGMA data_version (moved by every commit)."""
        inode = os.stat(self.store).st_ino
        if self._reader is None or self._seen is None or self._seen[0] != inode:
            if self._reader is not None:
                self._reader.close()
            self._reader = Reader(self.store)
            self._ledger = self._ledger_of(self._reader)
            self._seen = None
        connection, version = self._reader.stamp()
        return inode, connection, version

    def attempt(self, delivery: Delivery) -> None:
        """POST one delivery and note its outcome in the queue."""
        try:
            status = self.send(delivery)
        except FetchError as error:  # no answer: refused address, connection, timeout
            self._failed(delivery, str(error))
            return
        if 200 <= status < 300:
            self.durable.delivered(delivery.id)
        elif status == 410:
            self.durable.give_up(delivery.id, "410 Gone: its followers are forgotten")
            self.durable.forget_inbox(delivery.inbox)
        elif 400 <= status < 500 and status not in RETRIED_4XX:
            self.durable.give_up(delivery.id, f"HTTP {status}")
        else:
            self._failed(delivery, f"HTTP {status}")

    def _failed(self, delivery: Delivery, error: str) -> None:
        at = self.clock() + backoff(delivery.attempts)
        if at - delivery.created > GIVE_UP_AFTER:
            self.durable.give_up(delivery.id, f"{error}; retried for 48 hours")
        else:
            log.info("delivery to %s failed (%s): attempt %d, again in %.0f s",
                     delivery.inbox, error, delivery.attempts, at - self.clock())
            self.durable.retry_later(delivery.id, at, error)


@contextmanager
def only_deliverer(durable_file: Path, stop: threading.Event) -> Iterator[bool]:
    """Hold the deliverer's lock of a durable file; wait for it while another holds it.
    Yield False if `stop` was set before it was taken."""
    path = durable_file.with_name(durable_file.name + ".deliver-lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not said:
                    log.info("another deliverer holds %s: waiting for it", path)
                    said = True
                if stop.wait(POLL):
                    yield False
                    return
        yield True
    finally:
        os.close(fd)  # releases the lock
