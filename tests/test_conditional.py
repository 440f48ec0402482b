"""Caching and conditional GET: validators, 304s, gzip, HEAD, and a cache that fails."""
from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from feedsvc import create_app, state
from feedsvc.config import BUNDLED_DATA
from feedsvc.http import fastpath
from feedsvc.http.fastpath import FastPath

from .conftest import BASE_URL, build
from .helpers import parse_feed
from .servers import free_port

FEED = "/feeds/countries/th.rss"


def test_feed_has_strong_etag_last_modified_and_cache_headers(client: FlaskClient) -> None:
    response = client.get(FEED)
    assert response.headers["ETag"].startswith('"') and not response.headers["ETag"].startswith("W/")
    # No older than its newest entry (17 Jan 2005, Bangkok), nor than the dataset version:
    # a build a moment ago (test_last_modified.py says why).
    modified = parsedate_to_datetime(response.headers["Last-Modified"])
    assert datetime(2005, 1, 16, 17, tzinfo=UTC) < modified <= datetime.now(UTC)
    assert datetime.now(UTC) - modified < timedelta(minutes=1)
    assert response.headers["Cache-Control"] == "public, max-age=300, stale-while-revalidate=600"
    assert response.headers["Vary"] == "Accept-Encoding, Sec-Fetch-Dest"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@dataclass
class Layer:
    """An app whose conditional answers come from one chosen layer, and a check that they did."""

    app: Flask
    reached: Callable[[], int]

    def client(self) -> FlaskClient:
        return self.app.test_client()


@pytest.fixture(params=["fast-path", "flask-local", "flask-redis"])
def layer(request: pytest.FixtureRequest) -> Layer:
    """The fast path; Flask with the local tier (fast path off); Flask with Redis alone."""
    if request.param == "fast-path":
        app = build()
        fast = fastpath.fast_path(app)
        assert isinstance(fast, FastPath)
        return Layer(app, lambda: fast.answered)
    if request.param == "flask-local":
        app = build(FEEDSVC_FAST_PATH=False)
        return Layer(app, lambda: state.feed_cache(app).local_hits + conditional_answers(app))
    app = request.getfixturevalue("redis_app")(FEEDSVC_FAST_PATH=False, FEEDSVC_MEMO_ENTRIES=0)
    return Layer(app, lambda: state.feed_cache(app).shared_hits + conditional_answers(app))


def conditional_answers(app: Flask) -> int:
    """Count the 304s Flask answered (fast path off): from the metrics of the process."""
    samples = {(s.name, s.labels.get("status")): s.value for family in
               text_string_to_metric_families(app.test_client().get("/metrics").get_data(
                   as_text=True)) for s in family.samples}
    return int(samples.get(("feedsvc_http_not_modified_total", None), 0))


def test_if_none_match_gets_304_without_a_body(layer: Layer) -> None:
    client = layer.client()
    etag = client.get(FEED).headers["ETag"]
    reached = layer.reached()
    response = client.get(FEED, headers={"If-None-Match": etag})
    assert response.status_code == 304 and response.data == b""
    assert response.headers["ETag"] == etag
    other = client.get(FEED, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200
    assert layer.reached() == reached + 2


def test_if_modified_since(layer: Layer) -> None:
    client = layer.client()
    last = client.get(FEED).headers["Last-Modified"]
    reached = layer.reached()
    assert client.get(FEED, headers={"If-Modified-Since": last}).status_code == 304
    older = "Sat, 15 Jan 2005 00:00:00 GMT"
    assert client.get(FEED, headers={"If-Modified-Since": older}).status_code == 200
    assert client.get(FEED, headers={"If-Modified-Since": "garbage"}).status_code == 200
    assert layer.reached() == reached + 3


def test_gzip_for_clients_that_accept_it(layer: Layer) -> None:
    client = layer.client()
    plain = client.get(FEED)
    reached = layer.reached()
    zipped = client.get(FEED, headers={"Accept-Encoding": "gzip, deflate"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.data) == plain.data
    assert zipped.headers["ETag"] != plain.headers["ETag"]
    refused = client.get(FEED, headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in refused.headers
    again = client.get(FEED, headers={"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["ETag"]})
    assert again.status_code == 304
    assert layer.reached() == reached + 3


def test_head_answers_like_get_without_a_body(layer: Layer) -> None:
    client = layer.client()
    get = client.get(FEED)
    reached = layer.reached()
    head = client.head(FEED)
    assert head.status_code == 200 and head.data == b""
    for name in ("ETag", "Content-Type", "Content-Length", "Last-Modified", "Cache-Control"):
        assert head.headers[name] == get.headers[name]
    assert layer.reached() == reached + 1


def test_repeat_requests_are_served_from_the_cache(app: Flask, client: FlaskClient) -> None:
    cache = state.feed_cache(app)
    client.get(FEED)
    client.get(FEED + "?utm_source=x")
    client.get(FEED + "?limit=20")
    assert (cache.misses, cache.hits) == (1, 2)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_cache_that_is_down_never_fails_a_request(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app({"FEEDSVC_DATA": str(BUNDLED_DATA), "FEEDSVC_BASE_URL": BASE_URL,
                      "FEEDSVC_CACHE_URL": f"redis://127.0.0.1:{free_port()}/0"})
    client = app.test_client()
    for _ in range(3):
        assert [e.id for e in parse_feed(client.get(FEED)).entries]
    etag = client.get(FEED).headers["ETag"]
    assert client.get(FEED, headers={"If-None-Match": etag}).status_code == 304
    assert state.feed_cache(app).errors >= 1
    assert "feed cache get failed" in caplog.text


def test_configuration_changes_cache_control(tmp_path: Path) -> None:
    app = create_app({"FEEDSVC_DATA": str(BUNDLED_DATA), "FEEDSVC_MAX_AGE": 60,
                      "FEEDSVC_STALE_WHILE_REVALIDATE": 30})
    response = app.test_client().get(FEED)
    assert response.headers["Cache-Control"] == "public, max-age=60, stale-while-revalidate=30"
    # Without a configured base URL, links follow the request's host, and so does the cache.
    other = app.test_client().get(FEED, base_url="http://other.example/")
    assert parse_feed(other).feed.link == "http://other.example/countries/th"
    assert parse_feed(app.test_client().get(FEED)).feed.link == "http://localhost/countries/th"


CACHEABLE = ["/feeds/all.rss", "/feeds.opml", "/feeds/feed.xsl", "/embed.js", "/embed/countries/th",
             "/embed/topics/social-security?theme=dark", "/feeds/", "/feeds/?country=th", "/",
             "/countries/th?limit=3", "/topics/social-security", "/releases/pr-2004-001"]


@pytest.mark.parametrize("path", CACHEABLE)
def test_every_cacheable_route_has_validators_and_answers_304(path: str) -> None:
    client = build(FEEDSVC_FAST_PATH=False).test_client()
    first = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert first.status_code == 200 and first.headers["Content-Encoding"] == "gzip"
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('-gz"')
    assert first.headers["Cache-Control"] == "public, max-age=300, stale-while-revalidate=600"
    feed = path.startswith("/feeds/") and path.endswith((".rss", ".atom", ".json"))  # or a page
    assert first.headers["Vary"] == ("Accept-Encoding, Sec-Fetch-Dest" if feed else "Accept-Encoding")
    # The code's own assets have no date (the ETag alone validates them): test_last_modified.py.
    assert ("Last-Modified" in first.headers) == (path not in ("/feeds/feed.xsl", "/embed.js"))
    plain = client.get(path)
    assert gzip.decompress(first.data) == plain.data and plain.headers["ETag"] != etag
    modified = first.headers.get("Last-Modified")
    dated = [{"If-Modified-Since": modified}] if modified else []
    for conditional in ({"If-None-Match": etag}, *dated):
        again = client.get(path, headers={"Accept-Encoding": "gzip", **conditional})
        assert (again.status_code, again.data) == (304, b""), conditional
        assert again.headers["ETag"] == etag
