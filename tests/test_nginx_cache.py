"""The shipped nginx micro-cache (deploy/nginx/) across publishes, run for real in front of gunicorn.

A hit is served from a cache file each nginx worker keeps open (open_file_cache); when the app's
Cache-Control lets a stored feed go and nginx stores the new one, every later hit on that worker
is the new feed, never the file it held open before. One keep-alive connection keeps every
request on one worker, the one that holds the old file.
"""
from __future__ import annotations

import http.client
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest

from . import servers

RELEASES = "releases"
NEWEST = "pr-2005-002.yaml"  # the bundled dataset's newest release: the first entry of every feed


class Reader:
    """One keep-alive connection to nginx, as a feed reader polling /feeds/all.rss keeps it."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def poll(self) -> tuple[str, str]:
        """Return the answer's X-Cache-Status and the title of its first entry."""
        self.conn.request("GET", "/feeds/all.rss", headers={"Host": "feeds.example.org"})
        response = self.conn.getresponse()
        body = response.read()
        assert response.status == 200
        assert response.getheader("Connection") != "close"  # still the same worker
        return str(response.getheader("X-Cache-Status")), feedparser.parse(body).entries[0].title

    def until_first_title(self, title: str, deadline_s: float = 20.0) -> list[tuple[str, str]]:
        """Poll until the first entry is `title` and a hit has shown it; return every answer
        from the first that showed it. nginx's clock is real: the app's max-age must pass."""
        answers: list[tuple[str, str]] = []
        deadline = time.monotonic() + deadline_s
        while not answers or answers[-1] != ("HIT", title):
            assert time.monotonic() < deadline, (title, answers, self.poll())
            status, first = self.poll()
            if first == title or answers:
                answers.append((status, first))
            time.sleep(0.05)
        return answers


@pytest.fixture
def app(dataset_dir: Path, tmp_path: Path) -> Iterator[servers.Server]:
    """gunicorn on a copy of the dataset, feeds fresh for 1 s. It reloads on HUP alone: the
    test says when (a watcher's timing is tests/test_gunicorn.py's subject, not this one's)."""
    env = {"FEEDSVC_BASE_URL": "https://feeds.example.org/", "FEEDSVC_DATA": str(dataset_dir),
           "FEEDSVC_MAX_AGE": "1", "FEEDSVC_STALE_WHILE_REVALIDATE": "0",
           "FEEDSVC_RELOAD_INTERVAL": "0"}
    server = servers.start_gunicorn(tmp_path, env=env)
    yield server
    server.stop()


@pytest.fixture
def reader(app: servers.Server, tmp_path: Path) -> Iterator[Reader]:
    """A feed reader's kept connection to the shipped nginx config in front of the app."""
    proxy = servers.start_shipped_nginx(tmp_path, app.port)
    kept = Reader(proxy.port)
    yield kept
    kept.conn.close()
    proxy.stop()


def publish(app: servers.Server, dataset_dir: Path, title: str) -> None:
    """Add a release newer than every other (or retitle it), as `feedsvc new` would write it,
    and tell the app (HUP)."""
    text = (dataset_dir / RELEASES / NEWEST).read_text().replace("pr-2005-002", "pr-2005-003")
    text = text.replace("published: 2005-01-17", "published: 2005-01-18")
    lines = [f"title: {title}" if line.startswith("title: ") else line
             for line in text.splitlines()]
    (dataset_dir / RELEASES / "pr-2005-003.yaml").write_text("\n".join(lines) + "\n")
    app.process.send_signal(signal.SIGHUP)


def test_a_publish_and_two_edits_each_reach_the_hits_on_a_kept_connection(
        app: servers.Server, reader: Reader, dataset_dir: Path) -> None:
    status, before = reader.poll()
    assert status == "MISS"
    assert reader.poll() == ("HIT", before)  # the worker now holds the cache file open
    for title in ("Workers publish", "Workers publish - corrected", "Workers publish - again"):
        publish(app, dataset_dir, title)
        answers = reader.until_first_title(title)
        # Once nginx has stored the new feed, the file the worker held open is never served again.
        assert [first for _, first in answers] == [title] * len(answers)
    assert {first for _, first in (reader.poll() for _ in range(5))} == {title}


def cached(proxy: servers.Server, path: str, accept: str) -> str:
    """GET `path` through nginx with `accept`; return its X-Cache-Status."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": "feeds.example.org", "Accept": accept})
        response = conn.getresponse()
        assert response.status == 200 and feedparser.parse(response.read()).entries
        return str(response.getheader("X-Cache-Status"))
    finally:
        conn.close()


def test_the_accept_choice_is_part_of_the_cache_key(app: servers.Server, tmp_path: Path) -> None:
    """ActivityStreams requests (either media type, folded to one) and all others have keys of
    their own: an answer stored for one is never served to the other."""
    proxy = servers.start_shipped_nginx(tmp_path, app.port)
    ld_json = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
    try:
        path = "/feeds/countries/th.atom"
        assert [cached(proxy, path, "*/*"), cached(proxy, path, "text/html")] == ["MISS", "HIT"]
        assert [cached(proxy, path, "application/activity+json"),
                cached(proxy, path, ld_json),
                cached(proxy, path, "application/json, application/activity+json;q=0.9")
                ] == ["MISS", "HIT", "HIT"]
        assert cached(proxy, path, "application/json") == "HIT"
    finally:
        proxy.stop()
    # The keys nginx wrote in its cache files for the path: one per choice (nginx's readiness
    # check stored /feeds/all.rss too).
    keys = {re.search(rb"\nKEY: ([^\n]*)\n", file.read_bytes())[1]  # type: ignore[index]
            for file in (tmp_path / "cache").rglob("*") if file.is_file()}
    assert {key for key in keys if path.encode() in key} == {
            b"httpfeeds.example.org" + path.encode(),
                    b"httpfeeds.example.org" + path.encode() + b"activity"}
