"""WebSub: feeds advertise the hub; a commit of new data pings the hub for each changed feed."""
from __future__ import annotations

import logging
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs

import feedparser
import pytest
from flask import Flask

from feedsvc import create_app, state
from feedsvc.config import ConfigError, from_env
from feedsvc.dataset.visible import StoreView
from feedsvc.feeds.query import FORMATS
from feedsvc.feeds.urls import Urls
from feedsvc.operations.claims import KEEP, Claims
from feedsvc.operations.reload import reloader
from feedsvc.operations.websub import Publisher

from .conftest import BASE_URL, release_yaml
from .helpers import publish
from .servers import ROOT


class Hub:
    """A stand-in WebSub hub: records every publish request it receives."""

    def __init__(self, status: str = "204 No Content") -> None:
        self.status = status
        self.received: queue.Queue[dict[str, list[str]]] = queue.Queue()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        self.received.put(parse_qs(environ["wsgi.input"].read(length).decode()))
        start_response(self.status, [("Content-Length", "0")])
        return []

    def drain(self) -> list[dict[str, list[str]]]:
        items = []
        while not self.received.empty():
            items.append(self.received.get_nowait())
        return items


def viewed(reads: ExitStack, root: Path) -> StoreView:
    """Return what readers see now of the dataset in `root` (a store of its own), for as
    long as `reads` keeps its read transaction."""
    app = create_app({"FEEDSVC_DATA": str(root), "FEEDSVC_BASE_URL": BASE_URL,
                      "FEEDSVC_SNAPSHOT_DIR": None})
    return reads.enter_context(state.live(app).reader.read()).view_at(datetime.now(UTC))


def _releases() -> list[dict[str, object]]:
    return [release_yaml(1, "2020-01-01", countries=("TH",), topics=("social-security",)),
            release_yaml(2, "2020-01-02", countries=("KH",), topics=("gender-equality",)),
            release_yaml(3, "2020-01-03", countries=("LA",), topics=("labour-migration",))]


@pytest.fixture
def hub_app(make_dataset: Callable[..., Path], serve: Callable[..., str]) -> Iterator[tuple[Flask, Hub, str]]:
    hub = Hub()
    hub_url = serve(hub) + "/hub"
    app = create_app({"FEEDSVC_DATA": str(make_dataset(_releases())), "FEEDSVC_BASE_URL": BASE_URL,
                      "FEEDSVC_WEBSUB_HUB": hub_url})
    yield app, hub, hub_url


def _swap(app: Flask, releases: list[dict[str, object]]) -> None:
    publish(app, releases)  # the reload path production uses: update, assemble, index, swap


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_feed_advertises_hub_and_self(hub_app: tuple[Flask, Hub, str], fmt: str) -> None:
    app, _hub, hub_url = hub_app
    body = app.test_client().get(f"/feeds/countries/th.{fmt}").data
    self_url = f"{BASE_URL}feeds/countries/th.{fmt}"
    if fmt == "json":
        feed = app.test_client().get(f"/feeds/countries/th.{fmt}").get_json()
        assert feed["hubs"] == [{"type": "WebSub", "url": hub_url}] and feed["feed_url"] == self_url
        return
    parsed = feedparser.parse(body)
    assert parsed.bozo == 0
    links = {(link.rel, link.href) for link in parsed.feed.links}
    assert {("hub", hub_url), ("self", self_url)} <= links


def test_no_hub_no_hub_link(client: Any) -> None:
    assert b'rel="hub"' not in client.get("/feeds/all.atom").data


def test_reload_notifies_the_hub_of_changed_feeds(hub_app: tuple[Flask, Hub, str],
                                                  make_dataset: Callable[..., Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    app, hub, _url = hub_app
    threads: list[threading.Thread | None] = []
    publisher = cast(Publisher, state.live(app).listeners[-1])
    state.live(app).listeners[-1] = lambda old, new: threads.append(publisher(old, new))
    # Release 2 (Cambodia, gender equality) changes its title; one in Thailand is added.
    changed = _releases()
    changed[1]["title"] = "A new title"
    changed.append(release_yaml(4, "2020-01-04", countries=("TH",), topics=("social-security",)))
    _swap(app, changed)
    (thread,) = threads
    assert thread is not None
    thread.join(timeout=30)
    assert not thread.is_alive()
    received = hub.drain()
    assert all(r["hub.mode"] == ["publish"] for r in received)
    urls = sorted(u for r in received for u in r["hub.url"])
    paths = ["all", "countries/kh", "countries/th", "topics/gender-equality", "topics/social-security"]
    assert urls == sorted(f"{BASE_URL}feeds/{p}.{f}" for p in paths for f in FORMATS)


def test_unchanged_data_is_not_published(hub_app: tuple[Flask, Hub, str]) -> None:
    app, hub, _url = hub_app
    threads: list[threading.Thread | None] = []
    publisher = cast(Publisher, state.live(app).listeners[-1])
    state.live(app).listeners[-1] = lambda old, new: threads.append(publisher(old, new))
    assert reloader(app).check(force=True) == "unchanged"  # every file read: nothing new
    for thread in threads:
        if thread is not None:
            thread.join(timeout=30)
    assert hub.drain() == []


def test_hub_failures_are_logged_and_never_raise(make_dataset: Callable[..., Path],
                                                 serve: Callable[..., str],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    failing = Hub("500 Internal Server Error")
    app = create_app({"FEEDSVC_DATA": str(make_dataset(_releases())), "FEEDSVC_BASE_URL": BASE_URL})
    publisher = Publisher(serve(failing) + "/hub", Urls(BASE_URL), timeout=5)
    changed = _releases()[:2]
    with caplog.at_level(logging.WARNING, logger="feedsvc.websub"), ExitStack() as reads:
        old = viewed(reads, Path(app.config["FEEDSVC_DATA"]))
        thread = publisher(old, viewed(reads, make_dataset(changed)))
        assert thread is not None
        thread.join(timeout=30)
    assert len(failing.drain()) == 9  # all, Laos and labour migration, each in three formats
    assert sum("refused or failed" in r.getMessage() for r in caplog.records) == 9
    # The request path never waits for the hub: serving works all along.
    assert app.test_client().get("/feeds/all.rss").status_code == 200


def test_hub_needs_a_base_url() -> None:
    with pytest.raises(ConfigError, match="FEEDSVC_BASE_URL"):
        from_env({"FEEDSVC_WEBSUB_HUB": "https://hub.example/"})
    with pytest.raises(ConfigError, match="absolute"):
        from_env({"FEEDSVC_WEBSUB_HUB": "hub.example", "FEEDSVC_BASE_URL": BASE_URL})
    config = from_env({"FEEDSVC_WEBSUB_HUB": "https://hub.example/", "FEEDSVC_BASE_URL": BASE_URL})
    assert config["FEEDSVC_WEBSUB_HUB"] == "https://hub.example/"


def test_unreachable_hub_is_logged(make_dataset: Callable[..., Path],
                                   caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    publisher = Publisher(f"http://127.0.0.1:{port}/hub", Urls(BASE_URL), timeout=5)
    with caplog.at_level(logging.WARNING, logger="feedsvc.websub"):
        assert publisher.ping(f"{BASE_URL}feeds/all.rss") is False
    assert "Connection refused" in caplog.text


def test_workers_forked_from_one_app_publish_a_version_once(make_dataset: Callable[..., Path],
                                                            serve: Callable[..., str]) -> None:
    hub = Hub()
    reads = ExitStack()
    old, new = viewed(reads, make_dataset(_releases())), viewed(reads, make_dataset(_releases()[:2]))
    first = Publisher(serve(hub) + "/hub", Urls(BASE_URL), timeout=5)
    # A second worker forked from the same preloaded app shares the publisher's claims.
    second = Publisher(first.hub, first.urls, timeout=5, claims=Claims(first.claims.path))
    with reads:
        started = [first(old, new), second(old, new)]
    assert started[1] is None
    assert started[0] is not None
    started[0].join(timeout=30)
    assert len(hub.drain()) == 9


# A preloading gunicorn master and one worker forked from it, in a process of its own: the
# master publishes a new version; the worker swaps the same one in and ends through sys.exit
# (its atexit handlers run); the master prints what its temporary directory holds, then exits.
MASTER_AND_WORKER = """
import os, sys, tempfile
from datetime import UTC, datetime
from feedsvc import create_app, state
from feedsvc.operations.websub import schedule

old_data, new_data, base, hub = sys.argv[1:]
app = create_app({"FEEDSVC_DATA": old_data, "FEEDSVC_BASE_URL": base, "FEEDSVC_WEBSUB_HUB": hub,
                  "FEEDSVC_SNAPSHOT_DIR": None})
other = create_app({"FEEDSVC_DATA": new_data, "FEEDSVC_BASE_URL": base,
                    "FEEDSVC_SNAPSHOT_DIR": None})
print(*sorted(n for n in os.listdir(tempfile.gettempdir()) if "websub" in n), flush=True)
publish = schedule(app).publisher
now = datetime.now(UTC)
with state.live(app).reader.read() as before, state.live(other).reader.read() as after:
    old, new = before.view_at(now), after.view_at(now)
    publish(old, new).join()
worker = os.fork()
if worker == 0:
    sys.exit(0 if publish(old, new) is None else 3)
_, status = os.waitpid(worker, 0)
print(os.waitstatus_to_exitcode(status),
      *sorted(n for n in os.listdir(tempfile.gettempdir()) if "websub" in n), flush=True)
"""


def test_the_claims_directory_goes_with_the_process_that_made_it(
        make_dataset: Callable[..., Path], serve: Callable[..., str], tmp_path: Path) -> None:
    hub = Hub()
    temp = tmp_path / "tmp"
    temp.mkdir()
    argv = [sys.executable, "-c", MASTER_AND_WORKER, str(make_dataset(_releases())),
            str(make_dataset(_releases()[:2])), BASE_URL, serve(hub) + "/hub"]
    done = subprocess.run(argv, cwd=ROOT, env={**os.environ, "TMPDIR": str(temp)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    built, after_worker = done.stdout.splitlines()
    assert built == ""  # made at the first claim, not when the app is built
    worker_status, *entries = after_worker.split()
    # The worker was refused the version (the box's claims are shared) and its exit left
    # them in place; the master's exit removed them.
    assert worker_status == "0"
    assert [entry.rsplit("-", 1)[0] for entry in entries] == ["feedsvc-websub"]
    assert list(temp.iterdir()) == []
    assert len(hub.drain()) == 9  # once for the box: all, Laos and labour migration, 3 formats


def test_claims_stay_few_however_many_versions_are_published(tmp_path: Path) -> None:
    claims = Claims(tmp_path / "claims")
    names = [f"version-{number:04d}" for number in range(3 * KEEP)]
    assert all(claims.claim(name) for name in names)
    assert len(list(claims.path.iterdir())) == KEEP
    # The newest are still refused to the box's other processes (no second ping for them).
    other = Claims(claims.path)
    assert not any(other.claim(name) for name in names[-KEEP:])
