"""The inboxes' rate limits: posts counted per key in fixed one-minute windows.

Per client address (before any other work): in each worker's memory (Counts), the cheapest
refusal of a flood; with N workers an address may post N times the allowance (the shipped
nginx counts per address for the whole instance first). Not the `limits` library's memory
storage: it starts a timer thread on every hit that comes more than 10 ms after the previous
one (to sweep expired counters), 0.23 ms of CPU, a quarter of what a 404 costs, on each post
of a flood. Here a window's counters are dropped together when the next window starts, so
memory holds at most one minute of keys and a hit costs a dict update. A count lost to two
threads racing (gevent workers do not preempt) only lets one more post in.

Per sender host (once its signature holds): in the durable file (SharedCounts), one count for
the instance's workers, as no proxy can count it. A counted post costs one short write there
(an UPSERT that returns the new count), beside the signature it follows; a host past its
allowance is remembered by the process until the window ends (no write); each process drops
the ended windows' keys once a window. The `limits` library's shared storages are servers
(Redis, memcached, MongoDB), which an instance need not have.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from .durable import Durable

WINDOW = 60  # seconds
HIT = ("INSERT INTO inbox_posts VALUES (?, ?, 1) ON CONFLICT(key) DO UPDATE SET "
       "posts = CASE WHEN window = excluded.window THEN posts + 1 ELSE 1 END, "
       "window = excluded.window RETURNING posts")


class Counts:
    """Posts per key in the current window of WINDOW seconds, in this process."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock, self._window = clock, -1
        self._counts: dict[str, int] = {}

    def hit(self, key: str, most: int) -> bool:
        """Count one post for `key`; tell whether it is within `most` this window."""
        window = int(self._clock() // WINDOW)
        if window != self._window:
            self._window, self._counts = window, {}
        count = self._counts[key] = self._counts.get(key, 0) + 1
        return count <= most


class SharedCounts:
    """Posts per key in the current window of WINDOW seconds, for every worker (durable file)."""

    def __init__(self, durable: Durable, clock: Callable[[], float] = time.time) -> None:
        self.durable, self._clock = durable, clock
        self._window = -1  # the window this process last swept
        self._over: set[str] = set()  # keys it found past their allowance in that window

    def hit(self, key: str, most: int) -> bool:
        """Count one post for `key`; tell whether it is within `most` this window."""
        window = int(self._clock() // WINDOW)
        if window == self._window and key in self._over:
            return False  # past its allowance until the window ends: no write
        with self.durable.transaction() as conn:
            if window != self._window:
                conn.execute("DELETE FROM inbox_posts WHERE window < ?", (window,))
                self._window, self._over = window, set()
            (posts,) = conn.execute(HIT, (key, window)).fetchone()
        if posts > most:
            self._over.add(key)
        return int(posts) <= most
