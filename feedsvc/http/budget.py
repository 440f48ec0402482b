"""How much of a worker's time rendering may take before queried misses are refused.

A cached answer costs well under a millisecond; a miss of a queried page (`q`, `since`,
`limit`, `before`, filters: millions of distinct keys) costs a full render, about 10 ms of
CPU at 100,000 releases. Renders run in the worker's render thread (offload.py), beside its
cached answers, so they no longer need refusing to keep those fast: the budget is off by
default (FEEDSVC_QUERY_RENDER_SHARE=100), and an operator may set it to cap the CPU that
queried renders take. When on, each worker keeps a token bucket of render time: renders
spend it, it refills at `share` seconds per second up to `burst` seconds, and a queried miss
that finds it empty is refused (503, Retry-After) instead of rendered. Plain pages (a feed,
country, topic or release without a query: a few thousand keys, soon all cached) are always
rendered; their cost still counts.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class Overloaded(Exception):
    """A queried miss was refused: the worker's render time for now is spent."""

    retry_after = 1  # seconds: by then the bucket has refilled by `share` seconds


@dataclass
class RenderBudget:
    """A token bucket of render seconds (share 1.0: no limit, nothing is ever refused)."""

    share: float
    # After a quiet spell, up to this much rendering at once: the cold queried pages of a
    # start or a reload (make soak's ~30 a worker); a steady stream of misses keeps it empty.
    burst: float = 0.25
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    refused: int = 0
    _tokens: float = field(default=0.0, repr=False)
    _at: float | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _refill(self) -> None:
        now = self.clock()
        if self._at is None:
            self._tokens = self.burst
        else:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.share)
        self._at = now

    def admit(self) -> None:
        """Let a queried render start, or raise Overloaded when the bucket is empty."""
        if self.share >= 1.0:
            return
        with self._lock:
            self._refill()
            if self._tokens <= 0:
                self.refused += 1
                raise Overloaded

    def spend(self, seconds: float) -> None:
        """Take the time a render took from the bucket (it may go below zero: a debt)."""
        if self.share >= 1.0:
            return
        with self._lock:
            self._refill()
            self._tokens -= seconds
