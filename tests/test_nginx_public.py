"""The public side of the shipped nginx config (deploy/nginx/), run for real in front of gunicorn.

Operational endpoints answer this host only; costly query shapes are rate-limited per client,
cheap ones never. Other hosts are simulated with other loopback source addresses (127.0.0.0/8).
"""
from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from . import servers


def get(port: int, path: str, source: str = "127.0.0.1") -> tuple[int, bytes]:
    status, _, body = ask(port, "GET", path, source)
    return status, body


def ask(port: int, method: str, path: str, source: str = "127.0.0.1",
        body: bytes | None = None) -> tuple[int, str, bytes]:
    """Return an answer's status, Content-Type and body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                      source_address=(source, 0))
    try:
        conn.request(method, path, body, headers={"Host": "feeds.example.org"})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    workdir: Path = tmp_path_factory.mktemp("gunicorn")
    server = servers.start_gunicorn(workdir, env={
        "FEEDSVC_BASE_URL": "https://feeds.example.org/", "FEEDSVC_SNAPSHOT_DIR": str(workdir),
        "FEEDSVC_ACTIVITYPUB_DELIVER": "external"})  # the inboxes need a state directory
    yield server
    server.stop()


@pytest.fixture
def nginx(app: servers.Server, tmp_path: Path) -> Iterator[int]:
    """A fresh nginx (and so fresh rate-limit budgets) for each test."""
    proxy = servers.start_shipped_nginx(tmp_path, app.port)
    yield proxy.port
    proxy.stop()


def test_readyz_and_metrics_answer_this_host_only(nginx: int) -> None:
    for path in ("/readyz", "/metrics"):
        assert get(nginx, path, "127.0.0.2")[0] == 403, path
        assert get(nginx, path)[0] == 200, path
    status, body = get(nginx, "/readyz")
    assert json.loads(body)["status"] == "ok"
    for path in ("/healthz", "/feeds/all.rss", "/"):
        assert get(nginx, path, "127.0.0.2")[0] == 200, path


@pytest.mark.parametrize("query", ["q=employment", "since=2005-01-01", "limit=7",
                                   "before=20050116T170000Z~pr-2005-001", "%71=employment"])
def test_costly_queries_are_limited_per_client_after_a_burst(nginx: int, query: str) -> None:
    source = "127.0.1.1"
    statuses = [get(nginx, f"/feeds/all.rss?{query}", source)[0] for _ in range(40)]
    assert statuses[:21] == [200] * 21, statuses  # one, then a burst of 20
    assert 429 in statuses and set(statuses) <= {200, 429}, statuses
    # Meanwhile the same client's cheap requests, and other clients, are not limited.
    assert get(nginx, "/feeds/all.rss", source)[0] == 200
    assert get(nginx, "/feeds/countries/th.rss?country=kh", source)[0] == 200
    assert get(nginx, f"/feeds/all.rss?{query}", "127.0.0.9")[0] == 200


def test_cheap_queries_are_never_limited(nginx: int) -> None:
    for path in ("/feeds/all.rss", "/feeds/all.atom?country=th", "/feeds/all.json?utm_source=x",
                 "/feeds/all.rss?q="):
        statuses = {get(nginx, path, "127.0.2.1")[0] for _ in range(40)}
        assert statuses == {200}, path


def test_costly_queries_are_limited_for_everyone_together(nginx: int) -> None:
    # 16 clients, each within its own burst (15 requests), together past the shared budget
    # (20/s after a burst of 60): 240 requests in the time 180 more would take (9 s).
    def client(n: int) -> list[int]:
        return [get(nginx, "/feeds/all.rss?q=employment", f"127.0.3.{n + 1}")[0]
                for _ in range(15)]
    with ThreadPoolExecutor(8) as pool:
        statuses = [s for answers in pool.map(client, range(16)) for s in answers]
    assert statuses.count(200) >= 61 and 429 in statuses and set(statuses) <= {200, 429}
    assert get(nginx, "/feeds/all.rss", "127.0.3.1")[0] == 200


def test_a_hit_is_served_from_the_cache_file_its_worker_keeps_open(nginx: int,
                                                                   tmp_path: Path) -> None:
    # One keep-alive connection: one worker. Once it has served the feed from its cache file it
    # keeps the file open, so a hit neither opens nor stats it: with the file gone from the
    # disk, the next hit is still served, from the open file, without asking the app.
    conn = http.client.HTTPConnection("127.0.0.1", nginx, timeout=10)
    answers = []
    for _ in range(3):
        conn.request("GET", "/feeds/all.rss", headers={"Host": "feeds.example.org"})
        response = conn.getresponse()
        answers.append((response.status, response.getheader("X-Cache-Status"), response.read()))
        if len(answers) == 2:
            stored = [path for path in (tmp_path / "cache").rglob("*") if path.is_file()]
            assert stored
            for path in stored:
                path.unlink()
    conn.close()
    assert [status for status, _, _ in answers] == [200, 200, 200]
    assert [cache for _, cache, _ in answers] == ["MISS", "HIT", "HIT"]
    assert answers[2][2] == answers[0][2]


NGINX_PAGE = "text/html"  # nginx's own error pages; the app's inbox answers text/plain


def test_an_inbox_post_over_256_kib_is_refused_by_nginx(nginx: int) -> None:
    for path in ("/ap/inbox", "/ap/actors/th/inbox"):
        status, kind, _ = ask(nginx, "POST", path, body=b" " * (256 * 1024 + 1))
        assert (status, kind) == (413, NGINX_PAGE), path
        # At the cap the app reads it (and refuses it unsigned, with its own plain answer).
        status, kind, _ = ask(nginx, "POST", path, body=b" " * (256 * 1024))
        assert (status, kind.partition(";")[0]) == (401, "text/plain"), path


def test_inbox_posts_are_limited_per_client_after_a_burst(nginx: int) -> None:
    source = "127.0.4.1"
    answers = [ask(nginx, "POST", "/ap/inbox", source, b"{}")[:2] for _ in range(50)]
    statuses = [status for status, _ in answers]
    assert statuses[:31] == [401] * 31, statuses  # one, then a burst of 30: the app's 401s
    assert (429, NGINX_PAGE) in answers and set(statuses) <= {401, 429}, statuses
    # The same client's GETs of actors are not counted, nor another client's posts.
    assert get(nginx, "/ap/actors/th", source)[0] == 200
    assert ask(nginx, "POST", "/ap/inbox", "127.0.4.2", b"{}")[0] == 401


def cache_status(port: int, path: str, etag: str | None = None
                 ) -> tuple[int, str | None, bytes, str | None]:
    """Return an answer's status, X-Cache-Status (None: not a cached location), body and ETag."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": "feeds.example.org",
                                           **({"If-None-Match": etag} if etag else {})})
        response = conn.getresponse()
        return (response.status, response.getheader("X-Cache-Status"), response.read(),
                response.getheader("ETag"))
    finally:
        conn.close()


@pytest.mark.parametrize("path, cached", [
    ("/embed/countries/th", True), ("/embed/topics/social-security?theme=dark", True),
    ("/feeds/", True),  # the directory of feeds
    ("/releases/pr-2005-002", False), ("/sitemap.xml", False), ("/countries/th", False)])
def test_embeds_are_cached_like_feeds_and_pages_are_not(nginx: int, path: str,
                                                        cached: bool) -> None:
    # An embed is fetched on every view of each page that embeds it: few URLs, many requests,
    # as a feed. A release page or a sitemap is the long tail (one URL per release, read by
    # crawlers once each): stored, it would only push the hot feeds out of the cache.
    first, second = cache_status(nginx, path), cache_status(nginx, path)
    assert first[0] == second[0] == 200 and first[2] == second[2]
    assert (first[1], second[1]) == (("MISS", "HIT") if cached else (None, None))
    assert first[3] and cache_status(nginx, path, first[3])[0] == 304  # from the copy, or the app
