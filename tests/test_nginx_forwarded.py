"""No client can choose, through the shipped nginx's cache, what another client is answered.

The app believes one hop of X-Forwarded-* behind that nginx (FEEDSVC_TRUST_PROXY=1, as the
deploying guide says); the nginx cache key holds the scheme, host, URI and encoding class only.
So every forwarding header a client sends must be set or cleared by nginx: a forged one that
reached the app would be cached for everyone (a 400 under FEEDSVC_ALLOWED_HOSTS, links to the
forged port or prefix without it). Each variant fills a fresh cache entry first, then a clean
client reads that entry.
"""
from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest

from . import servers
from .test_deploy_compose import nginx_conf_for_test

HOST = "feeds.example.org"
# Each value is one a werkzeug, gunicorn or framework proxy reader would believe.
VARIANTS: list[list[tuple[str, str]]] = [
    [("X-Forwarded-Port", "6666")],
    [("x-forwarded-port", "6666")],
    [("X-Forwarded-Prefix", "/evil")],
    [("X-FORWARDED-PREFIX", "/evil")],
    [("X-Forwarded-Host", "evil.example.net")],
    [("X-Forwarded-Host", "evil.example.net"), ("X-Forwarded-Host", "evil.example.com")],
    [("X-Forwarded-Host", f"{HOST}:6666")],
    [("X-Forwarded-Proto", "https")],
    [("X-Forwarded-Proto", "gopher")],
    [("X-Forwarded-For", "127.0.0.1, 10.0.0.1")],
    [("X-Forwarded-Server", "evil.example.net")],
    [("X-Forwarded-Scheme", "https")],
    [("X-Forwarded-Ssl", "on")],
    [("X-Forwarded-Protocol", "ssl")],
    [("X_Forwarded_Port", "6666"), ("X_Forwarded_Host", "evil.example.net")],
    [("Forwarded", "for=127.0.0.1;host=evil.example.net;proto=https")],
    [("Forwarded", 'host="feeds.example.org:6666"')],
    [("X-Forwarded-Port", "6666"), ("X-Forwarded-Prefix", "/evil"),
     ("X-Forwarded-Host", "evil.example.net"), ("X-Forwarded-Proto", "https"),
     ("Forwarded", "host=evil.example.net")],
]


def get(port: int, path: str, headers: list[tuple[str, str]]
        ) -> tuple[int, bytes, http.client.HTTPMessage]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        for name, value in [("Host", HOST), *headers]:  # repeated names sent as they are
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read(), response.headers
    finally:
        conn.close()


def hrefs(body: bytes) -> set[str]:
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    found = {link.href for link in parsed.feed.links}
    found |= {link.href for entry in parsed.entries for link in entry.links}
    assert len(parsed.entries) > 0
    return found


@pytest.fixture(scope="module", params=["plain-allowed-hosts", "plain-no-base-url",
                                        "compose-no-base-url"])
def nginx(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[int]:
    """A shipped nginx (deploy/nginx/ or deploy/compose/) in front of gunicorn believing one
    proxy hop, with the host checked (a forged port is a 400) or without a base URL (links
    follow the forwarded host)."""
    workdir: Path = tmp_path_factory.mktemp("forwarded")
    env = {"FEEDSVC_TRUST_PROXY": "1", "FEEDSVC_BASE_URL": ""}
    if request.param.endswith("allowed-hosts"):
        env["FEEDSVC_ALLOWED_HOSTS"] = HOST
    app = servers.start_gunicorn(workdir, workers=1, env=env, ready_path=None)
    try:  # gunicorn is stopped even when the config or nginx fails to come up
        port = servers.free_port()
        if request.param.startswith("compose"):
            conf = workdir / "nginx.conf"  # start_nginx runs its workers as a user who can write
            conf.write_text(nginx_conf_for_test(workdir, app.port, app.port).replace(
                "listen 80 default_server;", f"listen 127.0.0.1:{port} default_server;"))
        else:
            conf = servers.render_nginx(workdir, port, [app.port], workdir / "cache")
        proxy = servers.start_nginx(workdir, conf, port)
        yield port
        proxy.stop()
    finally:
        app.stop()


@pytest.mark.parametrize("n", range(len(VARIANTS)))
def test_forged_forwarding_headers_never_reach_a_clean_client(nginx: int, n: int) -> None:
    path = f"/feeds/all.atom?utm_source=variant{n}"  # a cache entry of this variant's own
    forged = get(nginx, path, VARIANTS[n])
    assert forged[2]["X-Cache-Status"] == "MISS"
    status, body, headers = get(nginx, path, [])
    assert (status, headers["X-Cache-Status"]) == (200, "HIT"), body[:200]
    assert all(href.startswith(f"http://{HOST}/") and "evil" not in href
               for href in hrefs(body)), hrefs(body)
    # nginx cleared or set every one of them: the forging client was answered the same.
    assert (forged[0], forged[1]) == (status, body)


def test_each_answer_carries_its_own_request_id(nginx: int) -> None:
    # The id a client sends never reaches the cache; every answer, hit or not, has its own.
    path = "/feeds/all.rss?utm_source=request-id"
    ids = [get(nginx, path, [("X-Request-ID", "forged-id")])[2] for _ in range(3)]
    assert [h["X-Cache-Status"] for h in ids] == ["MISS", "HIT", "HIT"]
    seen = [h["X-Request-ID"] for h in ids] + [get(nginx, path, [])[2]["X-Request-ID"]]
    assert len(set(seen)) == 4 and "forged-id" not in seen
    assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in seen)  # nginx's $request_id
