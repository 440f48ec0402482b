"""Renders off the event loop (issue 11, section 2): a gevent worker answers cached feeds while
a miss is being rendered, and runs one render at a time.

A render is CPU work that never waits on the network, so under gevent it would hold the whole
worker. The worker here (the shipped config, one worker) gets a renderer that does not finish
until the test says so, burning CPU meanwhile as feedgen does; the test then asks for a cached
feed, /healthz and a second miss, and looks at what is answered before the held render ends.
"""
from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import feedparser
import pytest

from . import servers
from .servers import GUNICORN_CONF

# The shipped config, plus a hook that makes RSS renders of a query holding "hold" or "next"
# burn CPU until a file appears (after writing one that says they started).
HELD_CONF = """
exec(compile(open({conf!r}).read(), {conf!r}, "exec"))
_shipped_post_fork = post_fork


def post_fork(server, worker):
    _shipped_post_fork(server, worker)
    from pathlib import Path
    from feedsvc.feeds import render

    rss = render.RENDERERS["rss"]

    def held(doc):
        for name in ("hold", "next"):
            if f"q={{name}}" in doc.self_url:
                Path({tmp!r}, name + ".started").touch()
                while not Path({tmp!r}, name + ".go").exists():
                    sum(range(20_000))  # CPU, holding the GIL, as a render of 100 entries does
        return rss(doc)

    render.RENDERERS["rss"] = held
"""
TIMEOUT_S = 30.0


@dataclass
class Background:
    """A GET running in a thread of the test: its status and body once answered."""

    url: str
    status: int = 0
    body: bytes = b""
    error: OSError | None = None

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._get, daemon=True)
        self.thread.start()

    def _get(self) -> None:
        try:
            self.status, self.body = get(self.url)
        except OSError as error:  # reported by the test's assertions, not as a thread's
            self.error = error

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        return response.status, response.read()


def wait_for(path: Path) -> None:
    """Wait, with a deadline, until the worker has written `path`."""
    event = threading.Event()
    for _ in range(int(TIMEOUT_S / 0.02)):
        if path.exists():
            return
        event.wait(0.02)
    raise AssertionError(f"{path.name} never appeared")


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    conf = tmp_path / "held.conf.py"
    conf.write_text(HELD_CONF.format(conf=str(GUNICORN_CONF), tmp=str(tmp_path)))
    server = servers.start_gunicorn(
        tmp_path, workers=1, env={"FEEDSVC_BASE_URL": "https://feeds.example.org/"},
        extra=["-c", str(conf)])
    yield f"http://127.0.0.1:{server.port}", tmp_path
    for name in ("hold", "next"):  # never leave a worker burning CPU
        (tmp_path / f"{name}.go").touch()
    server.stop()
    assert "WORKER TIMEOUT" not in server.log.read_text()


def test_cached_feeds_are_answered_while_the_worker_renders_a_miss(
        held: tuple[str, Path]) -> None:
    origin, tmp = held
    assert get(origin + "/feeds/all.rss")[0] == 200  # now held by the worker: a hit from here
    miss = Background(origin + "/feeds/all.rss?q=hold")
    wait_for(tmp / "hold.started")
    second = Background(origin + "/feeds/all.rss?q=next")

    status, body = get(origin + "/feeds/all.rss")
    assert status == 200 and feedparser.parse(body).entries
    assert get(origin + "/healthz")[0] == 200
    # Still rendering (it ends only when told): the hit did not wait for it ...
    assert not miss.done and not (tmp / "next.started").exists()
    # ... and the second miss waits for its turn: one render at a time per worker.
    (tmp / "hold.go").touch()
    wait_for(tmp / "next.started")
    assert not second.done
    (tmp / "next.go").touch()
    second.thread.join(TIMEOUT_S)
    miss.thread.join(TIMEOUT_S)
    assert (miss.status, second.status) == (200, 200), (miss.error, second.error)
    assert feedparser.parse(miss.body).feed.title.endswith("“hold”")
    assert feedparser.parse(second.body).feed.title.endswith("“next”")
