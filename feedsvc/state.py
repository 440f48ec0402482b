"""What an app holds, behind typed accessors: the live dataset index of this process (swapped
atomically when new data is accepted), its feed cache, and the feed queries it has parsed."""
from __future__ import annotations

import logging
import mmap
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import Flask, Response, current_app, g

from .dataset.index import Index
from .feeds.query import FeedQuery
from .http.feedcache import FeedCache, Memo

log = logging.getLogger("feedsvc.state")

# Called after a swap with the index served before and the one served from now on.
SwapListener = Callable[[Index, Index], object]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Live:
    """What a worker serves from: one valid index, replaced whole, never edited."""

    index: Index
    loaded_at: datetime = field(default_factory=_now)
    last_error: str | None = None
    rejected_at: datetime | None = None
    # A restart that served its snapshot at once: one shared memory page, 1 until the files
    # were compared with it. Workers forked before that (gunicorn) see it cleared too,
    # without being forked again when nothing had changed.
    _start: mmap.mmap | None = field(default=None, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    listeners: list[SwapListener] = field(default_factory=list, repr=False)

    def on_swap(self, listener: SwapListener) -> None:
        """Call `listener(old, new)` after every swap (e.g. to notify subscribers)."""
        self.listeners.append(listener)

    def swap(self, index: Index) -> Index:
        """Serve `index` from now on and return the old one; requests in flight keep theirs."""
        with self.lock:
            old = self.index
            self.index, self.loaded_at = index, _now()
            self.last_error = self.rejected_at = None
        for listener in self.listeners:
            try:
                listener(old, index)
            # A listener's failure must not undo or hide the swap that already happened.
            except Exception:
                log.exception("dataset swap listener %r failed", listener)
        return old

    def reject(self, report: str) -> None:
        """Record why new data was refused; the index served stays as it is."""
        with self.lock:
            self.last_error, self.rejected_at = report, _now()

    @property
    def start_pending(self) -> bool:
        """Whether the files are still to be compared with the restored snapshot's."""
        return self._start is not None and self._start[0] == 1

    def start_unchecked(self) -> None:
        """Record that a restart serves its snapshot before comparing the files with it."""
        self._start = mmap.mmap(-1, 1)  # shared and anonymous: seen by every forked worker
        self._start[0] = 1

    def start_checked(self, everywhere: bool) -> None:
        """Record that the files were compared with the restored snapshot's: for every
        process, or (when the workers are replaced, e.g. after a swap) for this one and those
        forked from it from now on."""
        if self._start is not None and everywhere:
            self._start[0] = 0
        self._start = None

    def clear_rejection(self) -> None:
        """Forget a rejection: what is on disk is again what is served."""
        with self.lock:
            self.last_error = self.rejected_at = None


# Parsed feed queries by dataset version (which fixes the topics a query may name) and raw
# query string: pollers send the same few (?country=th,cn) again and again, and parsing one
# costs more than the rest of a cached hit. Errors are not kept; the strings kept are bounded
# in bytes.
ParsedQueries = Memo[tuple[str, bytes], FeedQuery]

_LIVE, _CACHE, _QUERIES = "feedsvc.live", "feedsvc.cache", "feedsvc.queries"


def _raw_size(key: tuple[str, bytes], _: FeedQuery) -> int:
    return len(key[1])


def init_app(app: Flask, index: Index) -> Live:
    """Serve `index` (loaded and validated by reload.init_app) from this app; return it live."""
    app.extensions[_LIVE] = found = Live(index)
    app.extensions[_QUERIES] = ParsedQueries(1024, 256 * 1024, _raw_size)
    app.after_request(_version_header)
    return found


def live(app: Flask | None = None) -> Live:
    """Return the live dataset state of `app` (default: the current app)."""
    found: Live = (app or current_app).extensions[_LIVE]
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


def current_index() -> Index:
    """Return the index this request is served from: the same one for the whole request."""
    if "feedsvc_index" not in g:
        g.feedsvc_index = live().index
    index: Index = g.feedsvc_index
    return index


def _version_header(response: Response) -> Response:
    # Says which dataset a response came from (e.g. to watch a reload reach every worker).
    if "feedsvc_index" in g:
        response.headers["X-Dataset-Version"] = g.feedsvc_index.version
    return response
