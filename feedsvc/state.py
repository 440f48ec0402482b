"""What an app holds, behind typed accessors: the store it serves from (every worker reads the
committed version; a commit is seen by the next request, no re-fork), its feed cache, and
the feed queries it has parsed."""
from __future__ import annotations

import ctypes
import logging
import multiprocessing
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import Flask, Response, current_app, g

from .dataset.reader import Reader, Snapshot
from .dataset.served import Meta
from .dataset.visible import StoreView
from .feeds.query import FeedQuery
from .http.feedcache import FeedCache, Memo

log = logging.getLogger("feedsvc.state")

# Called by the writer after a commit with what readers saw just before it and see after.
SwapListener = Callable[[StoreView, StoreView], object]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Status:
    """What the writer's last look said, as every worker reads it from the store."""

    loaded_at: datetime | None
    last_error: str | None
    rejected_at: datetime | None
    start_pending: bool


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class SharedText:
    """A short text one process writes and every process forked from it afterwards reads:
    shared memory and its lock by multiprocessing (no file, so it holds when the disk does not)."""

    SIZE = 4096

    def __init__(self) -> None:
        self._text = multiprocessing.Array(ctypes.c_char, self.SIZE)

    def read(self) -> str | None:
        return bytes(self._text.value).decode(errors="replace") or None

    def write(self, text: str | None) -> None:
        self._text.value = (text or "").encode()[:self.SIZE - 1]


@dataclass
class Served:
    """What a process serves from: the store (one read transaction per request), and what
    the writer's looks said (its status table). `state` says whether the store persists."""

    reader: Reader
    state: str = "persistent"
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    listeners: list[SwapListener] = field(default_factory=list, repr=False)
    # The writer's own word when the store could not take it (a full disk), which the status
    # table cannot hold then: shared with the workers forked from the writer (gunicorn's
    # master), which answer /readyz.
    _unwritten: SharedText = field(default_factory=SharedText, repr=False)

    @property
    def unwritten(self) -> str | None:
        return self._unwritten.read()

    @unwritten.setter
    def unwritten(self, text: str | None) -> None:
        self._unwritten.write(text)

    def on_swap(self, listener: SwapListener) -> None:
        """Call `listener(old, new)` in the writer after each commit (e.g. to notify hubs)."""
        self.listeners.append(listener)

    def swapped(self, old: StoreView, new: StoreView) -> None:
        """Tell the listeners of a commit (the writer calls it); a failure is logged only."""
        for listener in self.listeners:
            try:
                listener(old, new)
            # A listener's failure must not undo or hide the commit that already happened.
            except Exception:
                log.exception("dataset swap listener %r failed", listener)

    @property
    def index(self) -> Meta:
        """The version committed last (read in a transaction of its own)."""
        with self.reader.read() as snapshot:
            return snapshot.meta

    def status_of(self, snapshot: Snapshot) -> Status:
        """Read the writer's last word in `snapshot`'s transaction."""
        found = snapshot.status()
        error = self.unwritten or found.get("error")
        return Status(_when(found.get("loaded_at")), error,
                      _when(found.get("rejected_at")) if error else None,
                      found.get("start_check") == "pending")


# Parsed feed queries by dataset version (which fixes the topics a query may name) and raw
# query string: pollers send the same few (?country=th,cn) again and again, and parsing one
# costs more than the rest of a cached hit. Errors are not kept; the strings kept are bounded
# in bytes.
ParsedQueries = Memo[tuple[str, bytes], FeedQuery]

_LIVE, _CACHE, _QUERIES = "feedsvc.live", "feedsvc.cache", "feedsvc.queries"


def _raw_size(key: tuple[str, bytes], _: FeedQuery) -> int:
    return len(key[1])


def init_app(app: Flask, served: Served) -> Served:
    """Serve from `served` (the store reload.init_app brought up to date) in this app."""
    app.extensions[_LIVE] = served
    app.extensions[_QUERIES] = ParsedQueries(1024, 256 * 1024, _raw_size)
    app.after_request(_version_header)
    app.teardown_request(_end_read)
    return served


def live(app: Flask | None = None) -> Served:
    """Return what `app` (default: the current app) serves from."""
    found: Served = (app or current_app).extensions[_LIVE]
    return found


def set_feed_cache(app: Flask, cache: FeedCache) -> FeedCache:
    app.extensions[_CACHE] = cache
    return cache


def feed_cache(app: Flask | None = None) -> FeedCache:
    """Return the feed cache of `app` (default: the current app)."""
    found: FeedCache = (app or current_app).extensions[_CACHE]
    return found


def parsed_queries(app: Flask | None = None) -> ParsedQueries:
    """Return the feed queries `app` (default: the current app) has parsed."""
    found: ParsedQueries = (app or current_app).extensions[_QUERIES]
    return found


def current_snapshot() -> Snapshot:
    """Return the store as this request reads it: one version, one read transaction on a
    pooled connection, for the whole request (ended by the teardown)."""
    if "feedsvc_snapshot" not in g:
        reading = ExitStack()
        g.feedsvc_snapshot = reading.enter_context(live().reader.read())
        g.feedsvc_reading = reading
    snapshot: Snapshot = g.feedsvc_snapshot
    return snapshot


def _end_read(_: BaseException | None) -> None:
    g.pop("feedsvc_snapshot", None)
    reading: ExitStack | None = g.pop("feedsvc_reading", None)
    if reading is not None:
        reading.close()


def _version_header(response: Response) -> Response:
    # Says which dataset a response came from (e.g. to watch a reload reach every worker).
    if "feedsvc_snapshot" in g:
        response.headers["X-Dataset-Version"] = g.feedsvc_snapshot.meta.version
    return response
