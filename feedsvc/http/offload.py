"""Renders off the event loop: under gevent, a miss is rendered in a real thread of its own.

A gevent worker runs its greenlets in one thread and switches only when one waits on the
network, so a render (tens of ms of CPU for a `limit=100` page at 100,000 releases) would
hold every other request of the worker, cached hits included, until it ends. Run in a real
thread, the render competes with the hub for the GIL instead: the interpreter hands the GIL
over every switch interval, so the hub answers hits between the render's slices, and zlib,
hashing and socket writes run without the GIL. One render thread per worker: renders take
turns (a waiting miss costs a greenlet, nothing more), and the worker's hits always find the
hub's thread free of them. Without gevent (the test client, a sync server) a render runs
where it is asked for.
"""
from __future__ import annotations

import contextvars
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# How long a thread may hold the GIL while another waits for it (CPython's default: 5 ms).
# A hit crosses several waits (each socket call lets the render thread in), so the hub gets
# the GIL back sooner than the default, at the cost of more hand-overs inside a render.
SWITCH_INTERVAL = 0.001


def gevent_patched() -> bool:
    """Tell whether this process runs under gevent's monkey patches (a gevent worker)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


class RenderThread:
    """Run each render in the process's one render thread when under gevent, else inline."""

    def __init__(self) -> None:
        self._pool: Any = None
        self._pid = 0
        self._lock = threading.Lock()

    def _pool_of_this_process(self) -> Any:
        with self._lock:
            # Threads do not survive a fork: each worker starts its own.
            if self._pool is None or self._pid != os.getpid():
                from gevent.threadpool import ThreadPool

                sys.setswitchinterval(SWITCH_INTERVAL)
                self._pool, self._pid = ThreadPool(1), os.getpid()
            return self._pool

    def __call__(self, render: Callable[[], T]) -> T:
        """Return what `render` returns (or raise what it raises), the hub kept free meanwhile."""
        if not gevent_patched():
            return render()
        pool = self._pool_of_this_process()
        # The render reads Flask's app and request contexts: it runs in a copy of this
        # greenlet's context.
        result: T = pool.apply(contextvars.copy_context().run, (render,))
        return result
