"""A scheduled release goes live on both workers of a real 2-worker gunicorn, on time, with no
file change and no reload."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
import yaml

from .conftest import release_yaml
from .test_gunicorn import Server, start, stop, until

LEAD = 3.0  # seconds between the server answering and the release going live


@pytest.fixture
def scheduled(dataset_dir: Path, tmp_path: Path) -> Iterator[tuple[Server, datetime]]:
    """Serve the seed releases and one published a few seconds after the server is up."""
    # Start-up time varies with the machine's load: schedule after it, measured on a first run.
    started = time.monotonic()
    warm_up = start(dataset_dir, tmp_path / "warm-up.log", 0)
    startup = time.monotonic() - started
    stop(warm_up)
    when = (datetime.now(UTC) + timedelta(seconds=2 * startup + LEAD)).replace(microsecond=0)
    release = release_yaml(900, when.isoformat(), countries=("VN",), topics=("social-security",))
    (dataset_dir / "releases" / "t-900.yaml").write_text(yaml.safe_dump(release), encoding="utf-8")
    server = start(dataset_dir, tmp_path / "gunicorn.log", 1)
    yield server, when
    stop(server)


def _workers(server: Server) -> dict[int, tuple[str, int, str | None]]:
    """Return each worker's (dataset version, visible releases, next scheduled) from /readyz,
    once it serves the files on disk (the release file was written while the server was
    down: a restart serves its snapshot until its first look has found it)."""
    return {a["service"]["pid"]: (a["dataset"]["version"], a["dataset"]["visible"],
                                  a["dataset"]["next_scheduled"]) for a in server.readiness()
            if a["dataset"]["start_check"] == "done"}


def _vietnam(server: Server) -> list[str]:
    status, _headers, body = server.get("/feeds/countries/vn.atom")
    assert status == 200
    return [entry.id.rsplit(":", 1)[1] for entry in feedparser.parse(body).entries]


def test_scheduled_release_goes_live_on_every_worker(
        scheduled: tuple[Server, datetime]) -> None:
    server, when = scheduled
    both: dict[int, tuple[str, int, str | None]] = {}

    def seen_by_both() -> bool:
        both.update(_workers(server))
        return len(both) == 2
    until(seen_by_both)
    assert datetime.now(UTC) < when, "the server started too late to see the release scheduled"
    assert {state[1:] for state in both.values()} == {(10, when.isoformat())}
    assert _vietnam(server) == [] and server.get("/releases/t-900")[0] == 404
    version = {state[0] for state in both.values()}
    assert len(version) == 1

    live: dict[int, tuple[str, int, str | None]] = {}

    def live_on_both() -> bool:
        for pid, state in _workers(server).items():
            if state[1:] == (11, None):
                live[pid] = state
        return len(live) == 2
    until(live_on_both, deadline=(when - datetime.now(UTC)).total_seconds() + 30)
    assert {state[0] for state in live.values()} == version  # the same data: no reload
    assert _vietnam(server) == ["t-900"]
    status, _headers, body = server.get("/releases/t-900")
    assert status == 200 and b"Test release number 900" in body
    feed = json.loads(server.get("/feeds/all.json")[2])
    assert feed["items"][0]["id"].endswith(":release:t-900")
