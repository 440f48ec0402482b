"""Writes done after serving has begun: a cold start serves without waiting for its snapshot.

One write at a time, in a thread of its own, which the interpreter waits for at exit (the
snapshot is complete before a clean stop). Whatever reads or writes a snapshot or its journal
in this process calls `settle` first: an older snapshot never lands after a newer one, and a
snapshot being written is never taken for a missing one.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable

_lock = threading.Lock()
_writing: threading.Thread | None = None


def later(write: Callable[[], object]) -> None:
    """Run `write` in the background, after any write still running."""
    global _writing
    owner = os.getpid()

    def run() -> None:
        # Under gevent a thread is a greenlet, which a forked worker may run too: only
        # the process that asked writes.
        if os.getpid() == owner:
            write()
    with _lock:
        settle_locked()
        _writing = threading.Thread(target=run, name="feedsvc-snapshot")
        _writing.start()


def settle() -> None:
    """Wait until the background write, if any, is done."""
    with _lock:
        settle_locked()


def settle_locked() -> None:
    global _writing
    if _writing is not None:
        _writing.join()
        _writing = None
