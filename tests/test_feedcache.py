"""The feed cache: the worker's local tier in front of the shared one (Redis), each reached on
purpose by switching off the tiers in front of it."""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import redis
from flask import Flask

from feedsvc import state
from feedsvc.http.conditional import Rendered
from feedsvc.http.feedcache import FeedCache, Memo

from .conftest import build
from .helpers import parse_feed

WHEN = datetime(2005, 1, 16, 17, tzinfo=UTC)
FEED = "/feeds/all.atom"


def rendered(text: str) -> Rendered:
    return Rendered.build(text.encode(), "text/plain", WHEN)


def test_memo_keeps_the_most_recently_used_entries() -> None:
    memo: Memo[str, Rendered] = Memo(2)
    memo.put("a", first := rendered("a"))
    memo.put("b", rendered("b"))
    assert memo.get("a") is first  # a is now the most recent
    memo.put("c", rendered("c"))
    assert memo.get("b") is None and memo.get("a") is first and memo.get("c") is not None


def test_memo_of_size_zero_keeps_nothing() -> None:
    memo: Memo[str, Rendered] = Memo(0)
    memo.put("a", rendered("a"))
    assert memo.get("a") is None and len(memo) == 0


def test_memo_bounded_in_bytes_drops_the_least_recently_used_first() -> None:
    memo: Memo[str, Rendered] = Memo(100, 30, lambda key, value: len(value.body))
    for name in "abc":
        memo.put(name, rendered(name * 10))
    assert memo.nbytes == 30
    memo.get("a")
    memo.put("d", rendered("d" * 15))  # b (10) then c (10) go: a was used after them
    assert [name for name in "abcd" if memo.get(name)] == ["a", "d"] and memo.nbytes == 25
    memo.put("a", rendered("a" * 12))  # replacing an entry counts its new size only
    assert memo.nbytes == 27
    memo.put("huge", rendered("h" * 31))  # heavier than the whole bound: not kept, nothing lost
    assert memo.get("huge") is None and len(memo) == 2


def cache_of(app: Flask) -> FeedCache:
    return state.feed_cache(app)


def test_the_local_tier_answers_flask_without_rendering_again() -> None:
    app = build(FEEDSVC_FAST_PATH=False)  # so that Flask, not the fast path, is asked
    cache, client = cache_of(app), app.test_client()
    first = client.get(FEED, headers={"Accept-Encoding": "gzip"})
    assert (cache.misses, cache.local_hits) == (1, 0) and cache.backend == "in-process"
    again = client.get(FEED, headers={"Accept-Encoding": "gzip"})
    assert (cache.misses, cache.local_hits) == (1, 1)
    assert again.data == first.data and again.headers["ETag"] == first.headers["ETag"]
    not_modified = client.get(FEED, headers={"If-None-Match": first.headers["ETag"]})
    assert not_modified.status_code == 304 and cache.local_hits == 1  # validators only


def test_the_local_tier_is_bounded_and_holds_one_copy_per_feed() -> None:
    app = build(FEEDSVC_CACHE_ENTRIES=10)
    client = app.test_client()
    for limit in range(1, 30):
        for encoding in ("identity", "gzip"):
            assert client.get(f"/feeds/all.json?limit={limit}",
                              headers={"Accept-Encoding": encoding}).status_code == 200
    assert len(cache_of(app).local) == 10
    assert cache_of(app).misses == 29  # gzip and identity share one entry


@pytest.mark.parametrize("setting", ["FEEDSVC_CACHE_BYTES", "FEEDSVC_MEMO_BYTES"])
def test_the_local_tier_is_bounded_in_bytes(setting: str, redis_app: Callable[..., Flask]) -> None:
    bound = 150_000
    settings = {setting: bound, "FEEDSVC_FAST_PATH": False}
    app = build(**settings) if setting == "FEEDSVC_CACHE_BYTES" else redis_app(
        FEEDSVC_MEMO_ENTRIES=10_000, **settings)
    client, local = app.test_client(), cache_of(app).local
    hot = "/feeds/all.rss?limit=3"
    client.get(hot)
    sent = 0
    for limit in range(1, 101):
        for fmt in ("rss", "atom", "json"):
            sent += len(client.get(f"/feeds/all.{fmt}?limit={limit}").data)
            assert local.nbytes <= bound
        client.get(hot)  # used after every round: never the least recently used
    assert sent > 3 * bound  # far more was asked for than the bound holds
    held = list(local._items.values())
    # What is accounted is at least what the bodies hold, both codings.
    assert local.nbytes >= sum(len(v.body) + len(v.gzipped) for v, _ in held) > bound * 0.7
    # The newest are kept, the oldest went first: the hot feed and the last feeds asked for.
    hits = cache_of(app).local_hits
    for path in (hot, "/feeds/all.json?limit=100", "/feeds/all.atom?limit=100"):
        client.get(path)
    assert cache_of(app).local_hits == hits + 3
    client.get("/feeds/all.rss?limit=1")  # among the first: rendered again (or taken from Redis)
    assert cache_of(app).local_hits == hits + 3


def redis_keys(app: Flask) -> list[str]:
    with redis.Redis.from_url(app.config["FEEDSVC_CACHE_URL"], decode_responses=True) as store:
        return [str(key) for key in store.keys("feedsvc:*")]


def test_without_the_local_tier_every_hit_reads_redis(redis_app: Callable[..., Flask]) -> None:
    app = redis_app(FEEDSVC_MEMO_ENTRIES=0)
    cache, client = cache_of(app), app.test_client()
    bodies = {client.get(FEED).data for _ in range(3)}
    assert len(bodies) == 1 and (cache.misses, cache.shared_hits, cache.local_hits) == (1, 2, 0)
    assert cache.backend == "RedisCache" and cache.reachable()
    assert len(redis_keys(app)) == 2  # the body and its validators


def test_a_304_comes_from_the_shared_validators_without_the_body(
        redis_app: Callable[..., Flask]) -> None:
    app = redis_app(FEEDSVC_MEMO_ENTRIES=0)
    client = app.test_client()
    etag = client.get(FEED).headers["ETag"]
    (body_key,) = [key for key in redis_keys(app) if not key.endswith(":v")]
    with redis.Redis.from_url(app.config["FEEDSVC_CACHE_URL"]) as store:
        store.delete(body_key)  # only the validators are left
    answer = client.get(FEED, headers={"If-None-Match": etag})
    assert answer.status_code == 304 and answer.headers["ETag"] == etag
    assert cache_of(app).misses == 1  # nothing was rendered again


def test_an_instance_takes_what_another_stored(redis_app: Callable[..., Flask]) -> None:
    one, other = redis_app(), redis_app()
    first = one.test_client().get(FEED)
    second = other.test_client().get(FEED)
    assert second.data == first.data and cache_of(other).shared_hits == 1
    assert cache_of(other).misses == 0
    assert other.test_client().get(FEED).data == first.data
    assert cache_of(other).local_hits == 1  # then kept in its own local tier


def test_a_failing_cache_is_skipped_for_a_while_and_the_request_answered(
        caplog: pytest.LogCaptureFixture) -> None:
    app = build(FEEDSVC_CACHE_URL="redis://127.0.0.1:9/0", FEEDSVC_MEMO_ENTRIES=0)
    cache, client = cache_of(app), app.test_client()
    for limit in (1, 2, 3):
        assert len(parse_feed(client.get(f"/feeds/all.rss?limit={limit}")).entries) == limit
    assert cache.errors == 1 and cache.misses == 3  # one failure, then left alone
    assert "feed cache get failed, rendering without it" in caplog.text
    assert not cache.reachable()
    later = time.monotonic() + cache.retry_after
    cache.clock = lambda: later
    client.get("/feeds/all.rss?limit=4")
    assert cache.errors == 2  # tried again once the interval is over
