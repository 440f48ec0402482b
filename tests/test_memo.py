"""The per-process memo of prepared feeds in front of the shared cache."""
from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from feedsvc import create_app
from feedsvc.conditional import Prepared, prepare, ready
from feedsvc.config import BUNDLED_DATA
from feedsvc.feedcache import FeedCache, Memo

WHEN = datetime(2005, 1, 16, 17, tzinfo=UTC)


def prepared(text: str) -> Prepared:
    return ready(prepare(text.encode(), "text/plain", WHEN), "public, max-age=300")


def test_memo_keeps_the_most_recently_used_entries() -> None:
    memo = Memo(2)
    memo.put("a", first := prepared("a"))
    memo.put("b", prepared("b"))
    assert memo.get("a") is first  # a is now the most recent
    memo.put("c", prepared("c"))
    assert memo.get("b") is None and memo.get("a") is first and memo.get("c") is not None


def test_memo_of_size_zero_keeps_nothing() -> None:
    memo = Memo(0)
    memo.put("a", prepared("a"))
    assert memo.get("a") is None


def test_a_memo_hit_answers_exactly_like_the_first_response(client: FlaskClient, app: Flask) -> None:
    cache: FeedCache = app.extensions["feedsvc.cache"]
    for encoding in ("identity", "gzip"):
        first = client.get("/feeds/all.atom", headers={"Accept-Encoding": encoding})
        misses = cache.misses
        again = client.get("/feeds/all.atom", headers={"Accept-Encoding": encoding})
        assert cache.misses == misses  # served from the memo
        assert again.data == first.data
        def same(response: TestResponse) -> list[tuple[str, str]]:
            return sorted((k, v) for k, v in response.headers.items() if k != "X-Request-ID")
        assert same(again) == same(first)
    head = client.head("/feeds/all.atom", headers={"Accept-Encoding": "gzip"})
    assert head.data == b"" and head.headers["Content-Length"] == first.headers["Content-Length"]


def test_memo_answers_conditional_requests(client: FlaskClient) -> None:
    first = client.get("/feeds/all.rss", headers={"Accept-Encoding": "gzip"})
    again = client.get("/feeds/all.rss", headers={"Accept-Encoding": "gzip",
                                                  "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    for name in ("ETag", "Cache-Control", "Vary"):  # werkzeug drops Last-Modified from 304s
        assert again.headers[name] == first.headers[name]


def test_without_memo_every_hit_reads_the_shared_cache() -> None:
    app = create_app({"FEEDSVC_DATA": str(BUNDLED_DATA), "FEEDSVC_BASE_URL": "https://x.example/",
                      "FEEDSVC_MEMO_ENTRIES": 0})
    cache: FeedCache = app.extensions["feedsvc.cache"]
    client = app.test_client()
    bodies = {client.get("/feeds/all.json").data for _ in range(3)}
    assert len(bodies) == 1 and (cache.misses, cache.hits) == (1, 2)
