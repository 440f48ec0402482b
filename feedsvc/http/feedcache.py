"""The cache of rendered feeds: one key function, and a cache failure never fails a request."""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Generic, TypeVar

from cachelib import BaseCache
from flask import Flask
from flask_caching import Cache

from .conditional import Rendered, Validators
from .offload import RenderThread

log = logging.getLogger("feedsvc.feedcache")

# The key whose presence reachable() asks about (never stored).
PROBE = "feedsvc:probe"
# Bumped when the shape of cached values changes, so old entries are never unpickled.
FORMAT = 2


@lru_cache(maxsize=4096)  # asked on every request, mostly for the same few feeds
def cache_key(version: str, moment: str, settings: str, path: str, fmt: str,
              canonical_query: str) -> str:
    """Return the one key of a rendered body: dataset version, the moment's visibility token
    (which scheduled releases are live, which withdrawal notices run: StoreView.token),
    the settings that shape links (base URL or request host, hub), the feed, its format and
    the canonical query."""
    ident = "\0".join((settings, path, fmt, canonical_query))
    return (f"feedsvc:{FORMAT}:{version}:{moment}:"
            f"{hashlib.sha256(ident.encode()).hexdigest()[:32]}")


K = TypeVar("K")
V = TypeVar("V")


class Memo(Generic[K, V]):
    """A bounded, per-process LRU: the local tier of the feed cache.

    It holds at most `entries` values and, when `max_bytes` is given, values whose `weigh`
    sum to at most `max_bytes`: a count alone lets a few thousand large pages (limit=100)
    take hundreds of MB. The least recently used go first; a value heavier than the whole
    bound is not kept. Its keys hold the dataset version, so an entry is never stale: a new
    dataset simply stops asking for the old keys and they age out. With 0 entries it keeps
    nothing.
    """

    def __init__(self, entries: int, max_bytes: int | None = None,
                 weigh: Callable[[K, V], int] = lambda key, value: 0) -> None:
        self.entries, self.max_bytes, self.weigh = entries, max_bytes, weigh
        self.nbytes = 0  # the weight of what is held now
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: K, value: V) -> V:
        cost = self.weigh(key, value)
        if not self.entries or (self.max_bytes is not None and cost > self.max_bytes):
            return value
        with self._lock:
            old = self._items.pop(key, None)
            self.nbytes += cost - (old[1] if old else 0)
            self._items[key] = (value, cost)
            while len(self._items) > self.entries or (
                    self.max_bytes is not None and self.nbytes > self.max_bytes):
                self.nbytes -= self._items.popitem(last=False)[1][1]
        return value


# What an entry costs besides its two bodies: the Rendered and Validators objects, the ETag,
# the bytes objects' headers, the key and the LRU's node (measured with tracemalloc: ~470).
ENTRY_OVERHEAD = 512


def weight(key: str, rendered: Rendered) -> int:
    """Return the bytes one cached body holds in a worker: both codings and the overhead."""
    return len(rendered.body) + len(rendered.gzipped) + ENTRY_OVERHEAD


@dataclass
class FeedCache:
    """Rendered bodies by `cache_key`: the worker's own bounded LRU (`local`), in front of the
    shared backend (Redis, when FEEDSVC_CACHE_URL is set), in front of rendering.

    The local tier is the only in-process copy: without Redis it is the whole cache
    (FEEDSVC_CACHE_ENTRIES and FEEDSVC_CACHE_BYTES), with Redis it keeps the hottest
    (FEEDSVC_MEMO_ENTRIES and FEEDSVC_MEMO_BYTES). A failing
    backend is logged, counted and treated as a miss; after an error it is left alone for
    `retry_after` seconds, so a cache that hangs costs one timeout per interval, not per request.
    Renders run through `renderer`: under gevent, in the worker's render thread (offload.py).
    """

    local: Memo[str, Rendered]
    # The backend flask-caching built for the app (Cache.cache), held so that a call needs no
    # app context (the fast path has none); only cachelib's public BaseCache methods are used.
    shared: BaseCache | None = None
    backend: str = "in-process"
    renderer: RenderThread = field(default_factory=RenderThread)
    retry_after: float = 1.0
    local_hits: int = 0
    shared_hits: int = 0
    misses: int = 0
    errors: int = 0
    _down_until: float = field(default=0.0, repr=False)
    on_event: Callable[[str], None] = field(default=lambda event: None, repr=False)
    on_render: Callable[[float], None] = field(default=lambda seconds: None, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    @property
    def hits(self) -> int:
        """Bodies found without rendering, in either tier."""
        return self.local_hits + self.shared_hits

    def _call(self, what: str, fn: Callable[[BaseCache], Any]) -> Any:
        if self.shared is None or self.clock() < self._down_until:
            return None
        try:
            return fn(self.shared)
        # Any failure of the backend (network, timeout, a corrupt entry) must only cost a render.
        except Exception as exc:  # noqa: BLE001
            self.errors += 1
            self.on_event("error")
            self._down_until = self.clock() + self.retry_after
            log.warning("feed cache %s failed, rendering without it: %s: %s",
                        what, type(exc).__name__, exc)
            return None

    def hit(self, rendered: Rendered) -> Rendered:
        """Count a body taken from the local tier, and return it."""
        self.local_hits += 1
        self.on_event("hit")
        return rendered

    def validators(self, key: str) -> Validators | None:
        """Return a cached body's validators without fetching the body from the shared cache."""
        found = self.local.get(key)
        if found is not None:
            return found.validators
        value = self._call("get", lambda shared: shared.get(f"{key}:v"))
        return value if isinstance(value, Validators) else None

    def fetch(self, key: str, render: Callable[[], Rendered]) -> Rendered:
        """Return the body for `key`: from the local tier, else the shared cache, else rendered."""
        found = self.local.get(key)
        if found is not None:
            return self.hit(found)
        value = self._call("get", lambda shared: shared.get(key))
        if isinstance(value, Rendered):
            self.shared_hits += 1
            self.on_event("hit")
            return self.local.put(key, value)
        self.misses += 1
        self.on_event("miss")

        def timed() -> tuple[Rendered, float]:  # in the render thread: not the wait for it
            started = time.perf_counter()
            return render(), time.perf_counter() - started

        rendered, took = self.renderer(timed)
        self.on_render(took)
        self._call("set", lambda shared: shared.set_many({key: rendered,
                                                          f"{key}:v": rendered.validators}))
        return self.local.put(key, rendered)

    def reachable(self) -> bool:
        """Ask the backend now, ignoring the retry window: Redis must answer in time."""
        if self.shared is None:  # in-process: always there
            return True
        # Imported here: loading the Redis client costs every start, and only this tier uses it.
        from redis.exceptions import RedisError

        try:
            self.shared.has(PROBE)  # a round trip (EXISTS), whatever the answer
            return True
        except (RedisError, OSError) as exc:
            log.info("feed cache unreachable: %s: %s", type(exc).__name__, exc)
            return False


def backend_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return the flask-caching settings of the shared Redis backend."""
    seconds = config["FEEDSVC_CACHE_SOCKET_TIMEOUT_MS"] / 1000
    return {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": config["FEEDSVC_CACHE_URL"],
            "CACHE_DEFAULT_TIMEOUT": config["FEEDSVC_CACHE_TIMEOUT"], "CACHE_KEY_PREFIX": "",
            "CACHE_OPTIONS": {"socket_timeout": seconds, "socket_connect_timeout": seconds}}


def from_config(app: Flask, shared: Cache) -> FeedCache:
    """Build the app's feed cache: local tier only, or local in front of Redis."""
    config = app.config
    if not config["FEEDSVC_CACHE_URL"]:
        memo = Memo(config["FEEDSVC_CACHE_ENTRIES"], config["FEEDSVC_CACHE_BYTES"], weight)
        return FeedCache(memo)
    shared.init_app(app, config=backend_config(config))
    with app.app_context():
        backend: BaseCache = shared.cache
    memo = Memo(config["FEEDSVC_MEMO_ENTRIES"], config["FEEDSVC_MEMO_BYTES"], weight)
    return FeedCache(memo, backend, type(backend).__name__)
