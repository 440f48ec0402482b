"""Last-Modified as a poller that sends only If-Modified-Since relies on it: never a 304 for a
copy the dataset has changed since, never a date for a body that has none."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from feedsvc import create_app
from feedsvc.operations.cli import main
from feedsvc.operations.reload import reloader

from .conftest import BASE_URL
from .helpers import parse_feed

RELEASE = "releases/pr-2004-003.yaml"  # neither the newest release nor dated by an edit
PATHS = ["/feeds/all.rss", "/feeds/all.atom", "/feeds/countries/kr.json", "/", "/countries/kr",
         "/embed/countries/kr", "/releases/pr-2004-003"]
# The Last-Modified of every feed before: its newest entry's (17 Jan 2005, Bangkok).
OLD_COPY = "Sun, 16 Jan 2005 17:00:00 GMT"


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The wall clock, which dates commits and responses, standing still until a test moves
    it: a second passes when the test says so."""
    at = [time.time()]
    monkeypatch.setattr(time, "time", lambda: at[0])
    return at


@pytest.fixture(params=["fast-path", "flask"])
def app(request: pytest.FixtureRequest, dataset_dir: Path, wall: list[float]) -> Flask:
    return create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE_URL,
                       "FEEDSVC_FAST_PATH": request.param == "fast-path"})


def edit_title(dataset_dir: Path, title: str) -> None:
    """Fix a title as a newsroom does: no `updated`, no correction, no date moves."""
    path = dataset_dir / RELEASE
    text = path.read_text(encoding="utf-8")
    old = next(line for line in text.splitlines() if line.startswith("title:"))
    path.write_text(text.replace(old, f"title: {title}"), encoding="utf-8")


def since(client: FlaskClient, path: str, modified: str) -> int:
    return client.get(path, headers={"If-Modified-Since": modified}).status_code


def test_an_edit_that_moves_no_date_is_no_304_to_if_modified_since(
        app: Flask, dataset_dir: Path, wall: list[float]) -> None:
    client = app.test_client()
    before = {path: client.get(path) for path in PATHS}
    assert all(since(client, path, r.headers["Last-Modified"]) == 304
               for path, r in before.items())
    edit_title(dataset_dir, "Experts look at Asian working conditions again")
    assert reloader(app).check() == "reloaded"
    for moment in ("the same second", "a second later"):
        for path, old in before.items():
            response = client.get(path, headers={"If-Modified-Since":
                                                 old.headers["Last-Modified"]})
            assert response.status_code == 200, (path, moment)
            assert b"Asian working conditions again" in response.data, path
        wall[0] += 1
    # ... and the new copy is fresh again: no full download while nothing changes.
    for path in PATHS:
        assert since(client, path, client.get(path).headers["Last-Modified"]) == 304, path
    entries = parse_feed(client.get("/feeds/all.rss")).entries
    assert "Experts look at Asian working conditions again" in [e.title for e in entries]


def test_two_edits_within_a_second_are_two_dates(app: Flask, dataset_dir: Path,
                                                 wall: list[float]) -> None:
    """A poller that took the first edit, in the same second as the second: no 304 keeps it."""
    client = app.test_client()
    edit_title(dataset_dir, "First fix")
    assert reloader(app).check() == "reloaded"
    first = {path: client.get(path) for path in PATHS}
    assert all(b"First fix" in r.data for r in first.values())
    edit_title(dataset_dir, "Second fix")
    assert reloader(app).check() == "reloaded"
    for path, old in first.items():
        response = client.get(path, headers={"If-Modified-Since": old.headers["Last-Modified"]})
        assert response.status_code == 200 and b"Second fix" in response.data, path
        assert response.headers["Last-Modified"] == old.headers["Last-Modified"]  # not ahead
    wall[0] += 2
    for path in PATHS:
        assert since(client, path, client.get(path).headers["Last-Modified"]) == 304, path


def test_a_reload_that_changes_nothing_keeps_last_modified(app: Flask, dataset_dir: Path) -> None:
    client = app.test_client()
    modified = client.get("/feeds/all.atom").headers["Last-Modified"]
    (dataset_dir / RELEASE).write_bytes((dataset_dir / RELEASE).read_bytes())  # a touch
    reloader(app).check()
    assert since(client, "/feeds/all.atom", modified) == 304


def test_a_restart_keeps_last_modified(dataset_dir: Path, tmp_path: Path,
                                       wall: list[float]) -> None:
    settings = {"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE_URL,
                "FEEDSVC_SNAPSHOT_DIR": str(tmp_path / "state")}
    first = create_app(settings).test_client().get("/feeds/all.rss")
    wall[0] += 5
    again = create_app(settings).test_client()
    assert since(again, "/feeds/all.rss", first.headers["Last-Modified"]) == 304


@pytest.mark.parametrize("path", ["/embed.js", "/feeds/feed.xsl", "/favicon.ico"])
def test_a_body_with_no_date_sends_none(app: Flask, path: str) -> None:
    """The code's own assets change with an upgrade, not with the data: no date to compare,
    so an If-Modified-Since (of 1970, once sent) never keeps an old script; the ETag does."""
    client = app.test_client()
    response = client.get(path)
    assert response.status_code == 200 and "Last-Modified" not in response.headers
    assert since(client, path, "Thu, 01 Jan 1970 00:00:00 GMT") == 200
    assert client.get(path, headers={"If-None-Match": response.headers["ETag"]}
                      ).status_code == 304



def test_a_store_built_by_feedsvc_snapshot_is_dated(dataset_dir: Path, tmp_path: Path,
                                                    wall: list[float]) -> None:
    """A start from `feedsvc snapshot`'s store: an edit made before it is no 304 either."""
    edit_title(dataset_dir, "Fixed before the snapshot")
    assert main(["snapshot", str(dataset_dir), "--dir", str(tmp_path / "state")]) == 0
    client = create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE_URL,
                         "FEEDSVC_SNAPSHOT_DIR": str(tmp_path / "state")}).test_client()
    response = client.get("/feeds/all.rss", headers={"If-Modified-Since": OLD_COPY})
    assert response.status_code == 200 and b"Fixed before the snapshot" in response.data
    assert since(client, "/feeds/all.rss", response.headers["Last-Modified"]) == 304
