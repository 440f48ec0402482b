"""Two gunicorn instances sharing one Redis, behind the shipped nginx config, all on loopback."""
from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import feedparser
import pytest
import redis

from . import servers as loopback

BASE_URL = "https://feeds.example.org/"


@dataclass
class Cluster:
    store: loopback.Server
    a: loopback.Server
    b: loopback.Server
    nginx: loopback.Server
    workdir: Path

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.store.port, socket_timeout=2)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def get(port: int, path: str, **headers: str) -> Answer:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={k.replace("_", "-"): v for k, v in headers.items()})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Answer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:  # urllib raises on 304 as on any non-2xx status
        return Answer(error.code, dict(error.headers), error.read())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("cluster")
    servers: list[loopback.Server] = []
    try:
        servers.append(store := loopback.start_redis(workdir))
        env = {"FEEDSVC_BASE_URL": BASE_URL, "FEEDSVC_CACHE_URL": f"redis://127.0.0.1:{store.port}/0"}
        log = ["--access-logfile", "-"]
        servers.append(a := loopback.start_gunicorn(workdir, workers=1, env=env, extra=log))
        servers.append(b := loopback.start_gunicorn(workdir, workers=1, env=env, extra=log))
        port = loopback.free_port()
        conf = loopback.render_nginx(workdir, port, [a.port, b.port], workdir / "nginx-cache")
        servers.append(nginx := loopback.start_nginx(workdir, conf, port, "/feeds/all.rss"))
        running = Cluster(store, a, b, nginx, workdir)
        yield running
        servers.append(running.store)  # a test may have restarted it
    finally:
        for server in reversed(servers):
            server.stop()


def eventually(condition: Callable[[], bool], deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.02)


def writes(store: redis.Redis) -> int:
    """Count the commands that store feeds (flask-caching writes with SETEX, or SET)."""
    stats = store.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("setex", "set"))


def test_both_instances_give_the_same_etag(cluster: Cluster) -> None:
    for encoding in ("identity", "gzip"):
        a = get(cluster.a.port, "/feeds/countries/th.atom", accept_encoding=encoding)
        b = get(cluster.b.port, "/feeds/countries/th.atom", accept_encoding=encoding)
        assert (a.status, b.status) == (200, 200)
        assert a.headers["ETag"] == b.headers["ETag"]
        assert a.body == b.body
    assert get(cluster.a.port, "/feeds/countries/th.atom", accept_encoding="gzip").headers[
        "ETag"].endswith('-gz"')


def test_nginx_answers_304_and_passes_validators_through(cluster: Cluster) -> None:
    first = get(cluster.nginx.port, "/feeds/all.rss")
    assert first.status == 200 and first.headers["Server"] == "nginx"  # no version
    assert len(feedparser.parse(first.body).entries) == 10
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    cached = get(cluster.nginx.port, "/feeds/all.rss", if_none_match=etag)
    assert (cached.status, cached.body) == (304, b"")
    assert cached.headers["ETag"] == etag and cached.headers["X-Cache-Status"] == "HIT"
    # A feed nginx has never cached: the app itself sees the validators and answers 304.
    path = "/feeds/countries/kh.json"
    etag = get(cluster.a.port, path).headers["ETag"]
    for validator in ({"if_none_match": etag}, {"if_modified_since": modified}):
        passed = get(cluster.nginx.port, path, **validator)
        assert (passed.status, passed.headers["X-Cache-Status"]) == (304, "MISS")
        assert passed.headers["ETag"] == etag
    # The app's own 304s, not nginx's (gunicorn logs a request once it has answered it).
    logged = f'"GET {path} HTTP/1.1" 304'
    eventually(lambda: (cluster.a.log.read_text() + cluster.b.log.read_text()).count(logged) == 2)


def test_nginx_keeps_gzip_and_identity_apart(cluster: Cluster) -> None:
    path = "/feeds/topics/gender-equality.rss"
    for _ in range(2):  # the second round comes from nginx's cache
        zipped = get(cluster.nginx.port, path, accept_encoding="gzip, deflate")
        plain = get(cluster.nginx.port, path)
        star = get(cluster.nginx.port, path, accept_encoding="*")
        assert zipped.headers["Content-Encoding"] == "gzip"
        assert "Content-Encoding" not in plain.headers and "Content-Encoding" not in star.headers
        assert feedparser.parse(plain.body).feed.title == feedparser.parse(star.body).feed.title
    assert plain.headers["X-Cache-Status"] == "HIT"


def test_an_entry_stored_by_one_instance_is_served_by_the_other(cluster: Cluster) -> None:
    store, path = cluster.client(), "/feeds/topics/social-security.json?country=th"
    keys, stored = set(store.keys("feedsvc:*")), writes(store)
    rendered = get(cluster.a.port, path)
    new = set(store.keys("feedsvc:*")) - keys
    assert rendered.status == 200 and len(new) == 2  # the feed and its validators
    assert writes(store) > stored
    stored = writes(store)
    served = get(cluster.b.port, path)
    assert (served.status, served.body) == (200, rendered.body)
    assert served.headers["ETag"] == rendered.headers["ETag"]
    assert writes(store) == stored  # b read the entry; it rendered and stored nothing


def test_feeds_are_served_without_redis_and_cached_again_after(cluster: Cluster) -> None:
    cluster.store.stop()
    for instance in (cluster.a, cluster.b):
        down = get(instance.port, "/feeds/all.rss?limit=3")  # in no cache: rendered
        assert down.status == 200
        assert len(feedparser.parse(down.body).entries) == 3
        assert "feed cache get failed, rendering without it" in instance.log.read_text()
    cluster.store = loopback.start_redis(cluster.workdir, cluster.store.port)
    store = cluster.client()
    assert store.keys("feedsvc:*") == []
    # After a failure an instance leaves the cache alone for a second: poll with fresh feeds.
    limits = iter(range(1, 101))

    def cached_again() -> bool:
        assert get(cluster.a.port, f"/feeds/all.rss?limit={next(limits)}").status == 200
        return bool(store.keys("feedsvc:*"))
    eventually(cached_again, 15)
