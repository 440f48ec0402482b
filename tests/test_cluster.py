"""Two gunicorn instances sharing one Redis, behind the shipped nginx config, all on loopback.

Instance a owns the fediverse (FEEDSVC_ACTIVITYPUB=owner), b serves pages' ActivityStreams JSON
only (elsewhere), as deploy/compose.yaml runs app1 and app2 (docs/fediverse.md#several-instances).
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

import feedparser
import pytest
import redis

from . import servers as loopback

BASE_URL = "https://feeds.example.org/"
# What Mastodon sends when it fetches an object, and the other media type of ActivityStreams.
LD_JSON = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
MASTODON = f"application/activity+json, {LD_JSON}, text/html;q=0.1"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
RELEASE = "/releases/pr-2004-005"


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
    return send(port, path, None, headers)


def send(port: int, path: str, body: bytes | None, headers: dict[str, str]) -> Answer:
    """GET `path` (POST `body` to it) with `headers` (some_name: Some-Name)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body,
        headers={k.replace("_", "-"): v for k, v in headers.items()})
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
        owner = {**env, "FEEDSVC_ACTIVITYPUB": "owner", "FEEDSVC_ACTIVITYPUB_DELIVER": "external",
                 "FEEDSVC_SNAPSHOT_DIR": str(workdir / "owner-state")}
        servers.append(a := loopback.start_gunicorn(workdir, workers=1, env=owner, extra=log))
        elsewhere = {**env, "FEEDSVC_ACTIVITYPUB": "elsewhere",
                     "FEEDSVC_SNAPSHOT_DIR": str(workdir / "elsewhere-state")}
        servers.append(b := loopback.start_gunicorn(workdir, workers=1, env=elsewhere, extra=log))
        port = loopback.free_port()
        conf = loopback.render_nginx(workdir, port, [a.port, b.port], workdir / "nginx-cache",
                                     owner=a.port)
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
    etag = first.headers["ETag"]
    cached = get(cluster.nginx.port, "/feeds/all.rss", if_none_match=etag)
    assert (cached.status, cached.body) == (304, b"")
    assert cached.headers["ETag"] == etag and cached.headers["X-Cache-Status"] == "HIT"
    # A feed nginx has never cached: the app itself sees the validators and answers 304.
    path = "/feeds/countries/kh.json"
    etag = get(cluster.a.port, path).headers["ETag"]
    # Each instance dates a version by its own commit of it: a date no older than either's.
    modified = max((get(server.port, path).headers["Last-Modified"]
                    for server in (cluster.a, cluster.b)), key=parsedate_to_datetime)
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


# The fediverse's URLs, each asked through nginx (a GET, or a POST with its body).
FEDIVERSE = [("/.well-known/webfinger?resource=acct:th@feeds.example.org", None),
             ("/.well-known/nodeinfo", None), ("/nodeinfo/2.1", None),
             ("/ap/actors/th", None), ("/ap/actors/th/outbox", None),
             ("/ap/actors/th/followers", None), ("/ap/inbox", b"{}"),
             ("/ap/actors/th/inbox", b"{}")]


def logged(server: loopback.Server, path: str, agent: str = "") -> int:
    """Count the requests for `path` (from this User-Agent) in a gunicorn access log."""
    return sum(f' {path} HTTP/1.1"' in line and line.endswith(f'"{agent}"' if agent else '"')
               for line in server.log.read_text().splitlines())


def test_the_fediverse_is_answered_by_the_owner_alone(cluster: Cluster) -> None:
    assert get(cluster.b.port, "/ap/actors/th").status == 404  # b would say "no such actor"
    eventually(lambda: logged(cluster.b, "/ap/actors/th") == 1)
    for path, body in FEDIVERSE:
        asked, owned = logged(cluster.b, path), logged(cluster.a, path)
        for _ in range(3):  # round robin would send one of three to b
            answer = send(cluster.nginx.port, path, body, {})
            # Unsigned posts: the owner's inbox says 401 (b has no inbox: 404).
            assert answer.status == (401 if body else 200), (path, answer.status)
        eventually(lambda: logged(cluster.a, path) == owned + 3)  # noqa: B023 (called at once)
        assert logged(cluster.b, path) == asked, path
    actor = json.loads(get(cluster.nginx.port, "/ap/actors/th", accept=MASTODON).body)
    assert actor["id"] == f"{BASE_URL}ap/actors/th"
    assert actor["publicKey"]["id"] == f"{BASE_URL}ap/actors/th#main-key"
    # A country's, a topic's and the home page's AS answer is their actor (it carries the key):
    # the owner's too.
    for page, handle in (("/countries/th", "th"), ("/topics/social-security", "social-security"),
                         ("/", "all")):
        asked, owned = logged(cluster.b, page), logged(cluster.a, page)
        for _ in range(3):
            answer = get(cluster.nginx.port, page, accept=MASTODON)
            assert answer.headers["Content-Type"].startswith("application/activity+json")
            assert json.loads(answer.body)["id"] == f"{BASE_URL}ap/actors/{handle}"
        eventually(lambda: logged(cluster.a, page) == owned + 3)  # noqa: B023 (called at once)
        assert logged(cluster.b, page) == asked, page


def test_a_release_s_activity_json_is_answered_by_every_instance(cluster: Cluster) -> None:
    a, b = (get(server.port, RELEASE, accept=LD_JSON) for server in (cluster.a, cluster.b))
    assert (a.status, b.status) == (200, 200)
    assert a.body == b.body and a.headers["ETag"] == b.headers["ETag"]
    article = json.loads(b.body)
    assert (article["type"], article["id"]) == ("Article", f"{BASE_URL}{RELEASE[1:]}")
    # Counted by their User-Agent: gunicorn writes an access line after its answer, so the
    # direct requests' lines may land while nginx's are sent.
    agent = "round-robin"
    for _ in range(4):
        assert get(cluster.nginx.port, RELEASE, accept=MASTODON, user_agent=agent).body == a.body
    eventually(lambda: logged(cluster.a, RELEASE, agent) + logged(cluster.b, RELEASE, agent) == 4)
    assert logged(cluster.a, RELEASE, agent) > 0 and logged(cluster.b, RELEASE, agent) > 0


def is_activity(answer: Answer) -> bool:
    """Tell an ActivityStreams answer from an HTML one by its type and its body."""
    kind = answer.headers["Content-Type"].partition(";")[0]
    assert answer.status == 200 and "Accept" in answer.headers["Vary"], answer.headers
    if kind == "application/activity+json":
        assert json.loads(answer.body)["@context"]
        return True
    assert kind == "text/html" and answer.body.lstrip().lower().startswith(b"<!doctype html")
    return False


@pytest.mark.parametrize("path", [RELEASE, "/countries/kh", "/topics/gender-equality", "/"])
def test_html_and_activity_answers_never_share_a_cache_entry(cluster: Cluster, path: str) -> None:
    # Each answer is stored (the shared Redis, the app's memory) before the next asks for the
    # other type; twice round, so the second round is served from those stores.
    for _ in range(2):
        for accept, activity in ((BROWSER, False), (MASTODON, True), ("", False),
                                 (LD_JSON, True), ("*/*", False)):
            headers = {"accept": accept} if accept else {}
            assert is_activity(get(cluster.nginx.port, path, **headers)) is activity, accept
    # nginx decides, and tells the app: any Accept naming ActivityStreams gets it, even one
    # the app alone would answer with HTML (the cache key and the answer always agree).
    mixed = "text/html, application/activity+json;q=0.1"
    assert not is_activity(get(cluster.b.port, RELEASE, accept=mixed))
    assert is_activity(get(cluster.nginx.port, RELEASE, accept=mixed))


def test_with_the_owner_down_feeds_serve_and_the_fediverse_says_502(cluster: Cluster) -> None:
    """Last in this module: it stops the owner."""
    cluster.a.stop()
    for _ in range(4):
        assert len(feedparser.parse(get(cluster.nginx.port, "/feeds/all.atom").body).entries) == 10
        assert not is_activity(get(cluster.nginx.port, "/countries/th", accept=BROWSER))
        assert is_activity(get(cluster.nginx.port, RELEASE, accept=MASTODON))
    for path, body in [*FEDIVERSE, ("/countries/th", None)]:
        answer = send(cluster.nginx.port, path, body, {"accept": MASTODON})
        assert answer.status == 502, (path, answer.status)  # never b's 404: "no such actor"
    assert logged(cluster.b, "/ap/actors/th") == 1  # the first test's direct request alone
