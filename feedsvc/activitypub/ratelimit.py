"""The inboxes' rate limits: posts counted per key (a client address, a sender host) in fixed
one-minute windows, in each worker's memory.

Not the `limits` library's memory storage: it starts a timer thread on every hit that comes
more than 10 ms after the previous one (to sweep expired counters), 0.23 ms of CPU, a quarter
of what a 404 costs, on each post of a flood. Here a window's counters are dropped together
when the next window starts, so memory holds at most one minute of keys and a hit costs a
dict update. A count lost to two threads racing (gevent workers do not preempt) only lets
one more post in.
"""
from __future__ import annotations

import time
from collections.abc import Callable

WINDOW = 60  # seconds


class Counts:
    """Posts per key in the current window of WINDOW seconds."""

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
