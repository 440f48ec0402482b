"""Caching and conditional GET: validators, 304s, gzip, HEAD, and a cache that fails."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from feedsvc import create_app
from feedsvc.config import BUNDLED_DATA

from .conftest import BASE_URL
from .helpers import parse_feed
from .servers import free_port

FEED = "/feeds/countries/th.rss"


def test_feed_has_strong_etag_last_modified_and_cache_headers(client: FlaskClient) -> None:
    response = client.get(FEED)
    assert response.headers["ETag"].startswith('"') and not response.headers["ETag"].startswith("W/")
    assert response.headers["Last-Modified"] == "Sun, 16 Jan 2005 17:00:00 GMT"  # 17 Jan, Bangkok
    assert response.headers["Cache-Control"] == "public, max-age=300, stale-while-revalidate=600"
    assert response.headers["Vary"] == "Accept-Encoding"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_if_none_match_gets_304_without_a_body(client: FlaskClient) -> None:
    etag = client.get(FEED).headers["ETag"]
    response = client.get(FEED, headers={"If-None-Match": etag})
    assert response.status_code == 304 and response.data == b""
    assert response.headers["ETag"] == etag
    other = client.get(FEED, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200


def test_if_modified_since(client: FlaskClient) -> None:
    last = client.get(FEED).headers["Last-Modified"]
    assert client.get(FEED, headers={"If-Modified-Since": last}).status_code == 304
    older = "Sat, 15 Jan 2005 00:00:00 GMT"
    assert client.get(FEED, headers={"If-Modified-Since": older}).status_code == 200
    assert client.get(FEED, headers={"If-Modified-Since": "garbage"}).status_code == 200


def test_gzip_for_clients_that_accept_it(client: FlaskClient) -> None:
    plain = client.get(FEED)
    zipped = client.get(FEED, headers={"Accept-Encoding": "gzip, deflate"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.data) == plain.data
    assert zipped.headers["ETag"] != plain.headers["ETag"]
    refused = client.get(FEED, headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in refused.headers
    again = client.get(FEED, headers={"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["ETag"]})
    assert again.status_code == 304


def test_head_answers_like_get_without_a_body(client: FlaskClient) -> None:
    get, head = client.get(FEED), client.head(FEED)
    assert head.status_code == 200 and head.data == b""
    for name in ("ETag", "Content-Type", "Content-Length", "Last-Modified", "Cache-Control"):
        assert head.headers[name] == get.headers[name]


def test_repeat_requests_are_served_from_the_cache(app: Flask, client: FlaskClient) -> None:
    cache = app.extensions["feedsvc.cache"]
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
    assert app.extensions["feedsvc.cache"].errors >= 1
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
