"""The cache of rendered feeds: one key function, and a cache failure never fails a request."""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Generic, TypeVar

from flask import Flask
from flask_caching import Cache
from redis.exceptions import RedisError

from .conditional import Prepared, Rendered, Validators, ready

log = logging.getLogger(__name__)

# Bumped when the shape of cached values changes, so old entries are never unpickled.
FORMAT = 1


@lru_cache(maxsize=4096)  # asked on every request, mostly for the same few feeds
def cache_key(version: str, settings: str, path: str, fmt: str, canonical_query: str) -> str:
    """Return the one key of a rendered body: dataset version, the settings that shape links
    (base URL or request host, hub), the feed, its format and the canonical query."""
    ident = "\0".join((settings, path, fmt, canonical_query))
    return f"feedsvc:{FORMAT}:{version}:{hashlib.sha256(ident.encode()).hexdigest()[:32]}"


K = TypeVar("K")
V = TypeVar("V")


class Memo(Generic[K, V]):
    """A bounded, per-process LRU (of prepared feeds, or of replayable responses).

    Its keys hold the dataset version, so an entry is never stale: a new dataset simply
    stops asking for the old keys and they age out. With 0 entries it keeps nothing.
    """

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> V:
        if self.entries:
            with self._lock:
                self._items[key] = value
                while len(self._items) > self.entries:
                    self._items.popitem(last=False)
        return value


@dataclass
class FeedCache:
    """Wraps the flask-caching backend: errors are logged, counted, and treated as misses.

    After an error the backend is left alone for `retry_after` seconds, so a cache that
    hangs costs one timeout per interval, not one per request; then it is tried again.
    """

    cache: Cache
    cache_control: str
    memo: Memo[str, Prepared] = field(default_factory=lambda: Memo(0))
    retry_after: float = 1.0
    hits: int = 0
    misses: int = 0
    errors: int = 0
    _down_until: float = field(default=0.0, repr=False)
    on_event: Callable[[str], None] = field(default=lambda event: None, repr=False)
    on_render: Callable[[float], None] = field(default=lambda seconds: None, repr=False)

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        if time.monotonic() < self._down_until:
            return None
        try:
            return fn()
        # Any failure of the backend (network, timeout, a corrupt entry) must only cost a render.
        except Exception as exc:  # noqa: BLE001
            self.errors += 1
            self.on_event("error")
            self._down_until = time.monotonic() + self.retry_after
            log.warning("feed cache %s failed, rendering without it: %s: %s",
                        what, type(exc).__name__, exc)
            return None

    def validators(self, key: str) -> Validators | None:
        """Return a cached feed's validators without fetching its body."""
        prepared = self.memo.get(key)
        if prepared is not None:
            return prepared.validators
        value = self._call("get", lambda: self.cache.get(f"{key}:v"))
        return value if isinstance(value, Validators) else None

    def count_hit(self) -> None:
        """Count a feed answered without rendering (memo, replay or shared cache)."""
        self.hits += 1
        self.on_event("hit")

    def prepared(self, key: str, render: Callable[[], Rendered]) -> Prepared:
        """Return the feed ready to send: from the memo, else the shared cache, else rendered."""
        prepared = self.memo.get(key)
        if prepared is not None:
            self.count_hit()
            return prepared
        rendered, _hit = self.get_or_render(key, render)
        return self.memo.put(key, ready(rendered, self.cache_control))

    def get_or_render(self, key: str, render: Callable[[], Rendered]) -> tuple[Rendered, bool]:
        """Return the shared cache's rendering, or render and store it; and whether it was a hit."""
        value = self._call("get", lambda: self.cache.get(key))
        if isinstance(value, Rendered):
            self.count_hit()
            return value, True
        self.misses += 1
        self.on_event("miss")
        started = time.perf_counter()
        rendered = render()
        self.on_render(time.perf_counter() - started)
        self._call("set", lambda: self.cache.set_many({key: rendered, f"{key}:v": rendered.validators}))
        return rendered, False

    @property
    def backend(self) -> str:
        return type(self.cache.cache).__name__

    def reachable(self) -> bool:
        """Ask the backend now, ignoring the retry window: Redis must answer PING in time."""
        client = getattr(self.cache.cache, "_write_client", None)
        if client is None:  # in-process: always there
            return True
        try:
            return bool(client.ping())
        except (RedisError, OSError) as exc:
            log.info("feed cache unreachable: %s: %s", type(exc).__name__, exc)
            return False


def backend_config(config: dict[str, Any]) -> dict[str, Any]:
    """Choose the flask-caching backend: Redis when a URL is set, else in-process and bounded."""
    url = config["FEEDSVC_CACHE_URL"]
    timeout = config["FEEDSVC_CACHE_TIMEOUT"]
    if url:
        seconds = config["FEEDSVC_CACHE_SOCKET_TIMEOUT_MS"] / 1000
        return {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url, "CACHE_DEFAULT_TIMEOUT": timeout,
                "CACHE_KEY_PREFIX": "", "CACHE_OPTIONS": {
                    "socket_timeout": seconds, "socket_connect_timeout": seconds}}
    # SimpleCache prunes only once it holds more than its threshold: threshold + 1 at most.
    return {"CACHE_TYPE": "SimpleCache", "CACHE_THRESHOLD": config["FEEDSVC_CACHE_ENTRIES"] - 1,
            "CACHE_DEFAULT_TIMEOUT": timeout}


def init_app(app: Flask, cache: Cache) -> None:
    """Bind the cache to the app and keep the fault-tolerant wrapper beside it."""
    cache.init_app(app, config=backend_config(app.config))
    config = app.config
    control = (f"public, max-age={config['FEEDSVC_MAX_AGE']}, "
               f"stale-while-revalidate={config['FEEDSVC_STALE_WHILE_REVALIDATE']}")
    app.extensions["feedsvc.cache"] = FeedCache(cache, control, Memo(config["FEEDSVC_MEMO_ENTRIES"]))
