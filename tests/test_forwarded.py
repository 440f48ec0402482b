"""The real gunicorn (deploy/gunicorn.conf.py) believes no proxy header: FEEDSVC_TRUST_PROXY decides.

gunicorn's own default trusted X-Forwarded-Proto/-Ssl/-Protocol and SCRIPT_NAME from loopback,
so a client there chose the scheme of every link, or got a 500, whatever feedsvc was told.
"""
from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest

from . import servers

FORGED = {"X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "on", "X-Forwarded-Protocol": "ssl",
          "Host": "feeds.example.org"}


def get(port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def links(body: bytes) -> set[str]:
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    return {parsed.feed.link} | {entry.link for entry in parsed.entries}


@pytest.fixture(params=["0", "1"], ids=["no-proxy", "trusted-proxy"])
def gunicorn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, int]]:
    # No FEEDSVC_BASE_URL: links are built from the request, as the headers say.
    server = servers.start_gunicorn(tmp_path, env={"FEEDSVC_TRUST_PROXY": request.param,
                                                    "FEEDSVC_BASE_URL": ""})
    yield request.param, server.port
    server.stop()


def test_proxy_headers_count_only_when_feedsvc_trusts_a_proxy(gunicorn: tuple[str, int]) -> None:
    trust, port = gunicorn
    status, body = get(port, "/feeds/all.atom", FORGED)
    assert status == 200
    scheme = "https" if trust == "1" else "http"
    assert links(body) and all(link.startswith(f"{scheme}://feeds.example.org/")
                               for link in links(body))


def test_a_script_name_header_is_ignored_not_a_500(gunicorn: tuple[str, int]) -> None:
    _, port = gunicorn
    plain = get(port, "/feeds/all.atom", {"Host": "feeds.example.org"})
    for script_name in ("/feeds", "/elsewhere", "x"):
        answer = get(port, "/feeds/all.atom", {"Host": "feeds.example.org",
                                               "SCRIPT_NAME": script_name})
        assert answer == plain, script_name  # the same 200, the same links
    assert plain[0] == 200
