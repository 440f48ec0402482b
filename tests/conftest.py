"""Fixtures: the app built from the bundled dataset or from small YAML datasets, and its clients."""
from __future__ import annotations

import itertools
import shutil
import textwrap
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
import yaml
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.test import TestResponse

from feedsvc import create_app
from feedsvc.clock import set_clock
from feedsvc.config import BUNDLED_DATA

from . import servers
from .storedata import bundled_skeleton

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

BASE_URL = "https://feeds.example.org/"


@pytest.fixture
def app() -> Flask:
    return create_app({"FEEDSVC_DATA": str(BUNDLED_DATA), "FEEDSVC_BASE_URL": BASE_URL})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def dataset_dir(tmp_path: Path) -> Path:
    """A copy of the bundled dataset that a test may edit."""
    target = tmp_path / "data"
    shutil.copytree(BUNDLED_DATA, target)
    return target


@pytest.fixture
def write_yaml(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write dedented YAML text to a file below tmp_path and return its path."""
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path
    return write


@pytest.fixture(autouse=True, scope="session")
def _snapshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """No state directory unless a test names one: never the user's cache, and no state file
    shared by the servers a session starts (one instance per directory: a second is refused).
    Each app then keeps its store in a private temporary directory."""
    directory = tmp_path_factory.mktemp("snapshots")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEEDSVC_SNAPSHOT_DIR", "off")
        yield directory


@pytest.fixture(autouse=True, scope="session")
def _buffered_test_clients() -> Iterator[None]:
    """Have every test client read each answer whole and close it: a file werkzeug streams
    (send_file: /static/) stays open until its response is closed, which a test that only
    looks at the status never does (a ResourceWarning, an error under filterwarnings)."""
    unbuffered = FlaskClient.open

    def open_buffered(self: FlaskClient, *args: Any, buffered: bool = True,
                      **kwargs: Any) -> TestResponse:
        return unbuffered(self, *args, buffered=buffered, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FlaskClient, "open", open_buffered)
        yield


@pytest.fixture(scope="session")
def archive_1k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic 1,000-release archive in one bundle file (generated once per session)."""
    from feedsvc.operations.synth import write_archive

    return write_archive(1000, tmp_path_factory.mktemp("archive") / "archive.yaml")


def release_yaml(number: int, published: str, *, countries: tuple[str, ...] = ("TH",),
                 topics: tuple[str, ...] = ("social-security",),
                 title: str | None = None) -> dict[str, object]:
    """Describe one made-up release, numbered, as a dataset file holds it."""
    return {"id": f"t-{number:03d}", "type": "press-release", "published": published,
            "title": title or f"Test release number {number}", "countries": list(countries),
            "topics": list(topics), "summary": f"Summary of test release {number}."}


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., Path]:
    """Write a dataset of the bundled site and topics with the given releases; return its folder."""
    counter = iter(range(1_000_000))

    def make(releases: list[dict[str, object]]) -> Path:
        root = bundled_skeleton(tmp_path / f"data-{next(counter)}")
        for release in releases:
            text = yaml.safe_dump(release, allow_unicode=True, sort_keys=False)
            (root / "releases" / f"{release['id']}.yaml").write_text(text, encoding="utf-8")
        return root
    return make


@pytest.fixture
def serve() -> Iterator[Callable[[WSGIApplication, str], str]]:
    """Serve WSGI apps on free loopback ports in threads; return each one's origin."""
    servers: list[tuple[BaseWSGIServer, threading.Thread]] = []

    def start(wsgi: WSGIApplication, host: str = "127.0.0.1") -> str:
        server = make_server(host, 0, wsgi, threaded=True)
        thread = threading.Thread(target=server.serve_forever, name=f"serve-{host}", daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://{host}:{server.server_port}"

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# Property-based tests: reproducible (the same examples on every run) and few enough for CI.
settings.register_profile("feedsvc", max_examples=60, deadline=None, derandomize=True,
                          database=None, suppress_health_check=[HealthCheck.too_slow])
# The same, with many more examples: `make flake` runs the stateful tests under it.
settings.register_profile("feedsvc-5000", parent=settings.get_profile("feedsvc"),
                          max_examples=5000)
settings.load_profile("feedsvc")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on loopback for the session (each test uses its own database)."""
    server = servers.start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{server.port}"
    finally:
        server.stop()


@pytest.fixture
def redis_app(redis_url: str) -> Iterator[Callable[..., Flask]]:
    """Build apps on an emptied Redis database of their own."""
    apps: list[Flask] = []
    url = f"{redis_url}/{next(_databases)}"
    with redis.Redis.from_url(url) as store:
        store.flushdb()

    def make(**settings: object) -> Flask:
        apps.append(app := build(FEEDSVC_CACHE_URL=url, **settings))
        return app
    yield make


_databases = itertools.cycle(range(1, 16))


def build(**settings: object) -> Flask:
    """Build an app of the bundled dataset and the public base URL, with these settings."""
    return create_app({"FEEDSVC_DATA": str(BUNDLED_DATA), "FEEDSVC_BASE_URL": BASE_URL, **settings})


class FakeClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


# The fake clock's starting instant, and the dates lifecycle tests publish around it.
NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def clocked_app(make_dataset: Callable[..., Path], clock: FakeClock) -> Callable[..., Flask]:
    """Build an app of the given releases whose time is the `clock` fixture's."""
    def make(releases: list[dict[str, object]], **settings: object) -> Flask:
        app = create_app({"FEEDSVC_DATA": str(make_dataset(releases)), "FEEDSVC_BASE_URL": BASE_URL,
                          **settings})
        set_clock(app, clock)
        return app
    return make
