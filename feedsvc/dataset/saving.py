"""Writes done after serving has begun: a cold start serves without waiting for its snapshot.

A write is handed over (`later`) and started once the start is done (`begin`): in a real
thread of its own, so that it does not hold the interpreter while the start still works
(under gunicorn the master then forks the workers, which serve while it writes). One write
at a time, which a clean exit waits for (the snapshot is complete before a clean stop).
Whatever reads or writes a snapshot or its journal in this process calls `settle` first: an
older snapshot never lands after a newer one, and a snapshot being written is never taken
for a missing one.
"""
from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable

from ..http.offload import gevent_patched

_lock = threading.Lock()
# The process that asked for the write, and the write not started yet.
_pending: tuple[int, Callable[[], object]] | None = None
# The process that started the write, and what waits for it to end.
_writing: tuple[int, Callable[[], object]] | None = None


def later(write: Callable[[], object]) -> None:
    """Run `write` in the background once `begin` is called, after any write before it."""
    global _pending
    with _lock:
        _settle_locked()
        _pending = os.getpid(), write


def begin() -> None:
    """Start the write handed over, if any: the start it belonged to is done."""
    with _lock:
        _begin_locked()


def _begin_locked() -> None:
    global _pending, _writing
    if _pending is None:
        return
    owner, write = _pending
    _pending = None

    def run() -> None:
        if os.getpid() == owner:  # not in a forked worker that was handed a copy of it
            write()
    if owner == os.getpid():
        _writing = owner, _start(run)


def _start(run: Callable[[], None]) -> Callable[[], object]:
    """Start `run` in a real thread; return what waits for it."""
    if gevent_patched():
        # A gunicorn master under gevent: a Thread would be a greenlet, which would run the
        # whole write (it never waits on the network) before the start could go on.
        from gevent.threadpool import ThreadPool

        waiter: Callable[[], object] = ThreadPool(1).spawn(run).get
        return waiter
    thread = threading.Thread(target=run, name="feedsvc-snapshot")
    thread.start()
    return thread.join


def settle() -> None:
    """Wait until the background write, if any, is done."""
    with _lock:
        _settle_locked()


def _settle_locked() -> None:
    global _writing
    _begin_locked()
    if _writing is not None:
        owner, wait = _writing
        _writing = None
        if owner == os.getpid():  # a forked worker has no copy of the thread to wait for
            wait()


atexit.register(settle)  # a real thread under gevent is not waited for at exit otherwise
