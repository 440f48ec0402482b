"""A restart from the state file serves what a cold start of the same files serves; with
FEEDSVC_START_CHECK=background it serves the committed store at once, and the first check after it
finds the changes made while the service was down, under the rules of any reload."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from feedsvc import create_app
from feedsvc.dataset.statedir import state_file
from feedsvc.operations.reload import reloader
from feedsvc.operations.synth import write_archive

from .helpers import parse_feed, record_parses
from .servers import gunicorn_workers
from .test_gunicorn import Server, start, stop, until

BASE_URL = "https://feeds.example.org/"
FEEDS = ("/feeds/all.rss", "/feeds/all.atom", "/feeds/all.json",
         "/feeds/countries/th.atom?topic=social-security", "/feeds/topics/labour-migration.rss",
         "/feeds/all.json?q=training", "/feeds.opml")
EDITED = "releases/pr-2005-002.yaml"
SITEMAP = "http://www.sitemaps.org/schemas/sitemap/0.9"


def app_of(data: Path, snapshots: Path | None, **settings: Any) -> Flask:
    """Start an app on `data` (snapshots None: no snapshot, every file loaded)."""
    return create_app({"FEEDSVC_DATA": str(data), "FEEDSVC_BASE_URL": BASE_URL,
                       "FEEDSVC_SNAPSHOT_DIR": None if snapshots is None else str(snapshots),
                       **settings})


def fresh(data: Path) -> FlaskClient:
    """A cold start on `data` with a new, empty state directory (every file loaded): the same
    settings as the restarts it is compared with, so the fediverse's links are the same too."""
    return app_of(data, Path(tempfile.mkdtemp(dir=data.parent, prefix="fresh-"))).test_client()


def restarted(data: Path, snapshots: Path) -> Flask:
    """Start as deploy/gunicorn.conf.py does: the snapshot served at once."""
    return app_of(data, snapshots, FEEDSVC_START_CHECK="background", FEEDSVC_RELOAD_INTERVAL=5)


def feeds(client: FlaskClient) -> dict[str, Any]:
    """What a feed reader makes of each feed: feedparser's reading, or the JSON Feed's items."""
    seen: dict[str, Any] = {}
    for url in FEEDS:
        response = client.get(url)
        assert response.status_code == 200, url
        if ".json" in url:
            seen[url] = json.loads(response.data)
        elif url.endswith(".opml"):
            seen[url] = response.data
        else:
            parsed = parse_feed(response)
            seen[url] = (dict(parsed.feed), [dict(entry) for entry in parsed.entries])
    seen["release"] = client.get("/releases/pr-2005-002").data
    return seen


def readiness(client: FlaskClient) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/readyz").get_json()
    return body


def edit(data: Path) -> None:
    """Edit a release, delete one and add one: what a newsroom does while the service is down."""
    path = data / EDITED
    path.write_text(path.read_text().replace("title: ", "title: Corrected - ", 1))
    (data / "releases" / "pr-2004-002.yaml").unlink()
    added = (data / "releases" / "pr-2005-002.yaml").read_text().replace("pr-2005-002", "pr-new")
    (data / "releases" / "pr-new.yaml").write_text(added)


@pytest.fixture
def snapshots(tmp_path: Path) -> Path:
    return tmp_path / "snap"


def test_a_restart_serves_what_a_cold_start_serves(dataset_dir: Path, snapshots: Path) -> None:
    cold = app_of(dataset_dir, snapshots).test_client()
    assert list(snapshots.glob("*.sqlite")), "the cold start wrote the state file"
    warm = restarted(dataset_dir, snapshots).test_client()
    assert readiness(warm)["dataset"]["start_check"] == "pending"
    assert readiness(warm)["status"] == "ok"
    assert feeds(warm) == feeds(cold)
    assert readiness(warm)["dataset"]["version"] == readiness(cold)["dataset"]["version"]


def test_a_change_made_while_down_is_served_after_the_start_check(
        dataset_dir: Path, snapshots: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = feeds(app_of(dataset_dir, snapshots).test_client())
    edit(dataset_dir)
    parsed = record_parses(monkeypatch)
    app = restarted(dataset_dir, snapshots)
    client = app.test_client()
    assert parsed == [] and feeds(client) == before  # the last good data, at once
    assert reloader(app).check() == "reloaded"  # the watcher's first look
    assert sorted(parsed) == sorted(str(dataset_dir / name) for name in
                                    (EDITED, "releases/pr-new.yaml"))
    assert readiness(client)["dataset"]["start_check"] == "done"
    cold = fresh(dataset_dir)  # every file loaded, a new state directory
    assert feeds(client) == feeds(cold) != before
    assert readiness(client)["dataset"]["version"] == readiness(cold)["dataset"]["version"]


def test_a_cold_start_serves_what_it_read_and_the_first_look_finds_changes_made_meanwhile(
        dataset_dir: Path, snapshots: Path) -> None:
    app = restarted(dataset_dir, snapshots)  # no snapshot yet: every file read
    client = app.test_client()
    assert readiness(client)["dataset"]["start_check"] == "pending"
    before = feeds(client)
    edit(dataset_dir)  # as if written while the files were being read
    assert feeds(client) == before
    assert reloader(app).check() == "reloaded"  # the watcher's first look
    assert readiness(client)["dataset"]["start_check"] == "done"
    assert feeds(client) == feeds(fresh(dataset_dir)) != before


def test_nothing_changed_while_down(dataset_dir: Path, snapshots: Path) -> None:
    app_of(dataset_dir, snapshots)
    app = restarted(dataset_dir, snapshots)
    version = readiness(app.test_client())["dataset"]["version"]
    assert reloader(app).check() == "checked"  # news: the workers then report it done
    assert readiness(app.test_client())["dataset"] | {"loaded_at": None} == \
        readiness(app_of(dataset_dir, snapshots).test_client())["dataset"] | {"loaded_at": None}
    assert readiness(app.test_client())["dataset"]["version"] == version
    assert reloader(app).check() == "unchanged"


def test_invalid_data_found_at_the_start_check_is_rejected(dataset_dir: Path,
                                                           snapshots: Path) -> None:
    before = feeds(app_of(dataset_dir, snapshots).test_client())
    (dataset_dir / EDITED).write_text("id: [broken\n")
    app = restarted(dataset_dir, snapshots)
    client = app.test_client()
    assert reloader(app).check() == "rejected"
    ready = readiness(client)
    assert (ready["status"], ready["dataset"]["start_check"]) == ("degraded", "done")
    assert EDITED in ready["dataset"]["last_reload_error"]
    assert feeds(client) == before


def test_a_mass_removal_while_down_is_held(dataset_dir: Path, snapshots: Path) -> None:
    before = feeds(app_of(dataset_dir, snapshots).test_client())
    for path in sorted((dataset_dir / "releases").iterdir())[:5]:
        path.unlink()
    app = restarted(dataset_dir, snapshots)
    assert reloader(app).check() == "held"
    client = app.test_client()
    assert readiness(client)["status"] == "degraded" and feeds(client) == before


def test_a_damaged_state_file_means_every_file_is_read(dataset_dir: Path,
                                                      snapshots: Path) -> None:
    app_of(dataset_dir, snapshots)
    file = state_file(snapshots, dataset_dir, "sqlite")
    file.write_bytes(b"not a database " * 1000)
    for side in ("-wal", "-shm"):
        Path(f"{file}{side}").unlink(missing_ok=True)
    edit(dataset_dir)
    app = restarted(dataset_dir, snapshots)  # built again from every file: edits included
    assert reloader(app).check() == "checked"
    cold = fresh(dataset_dir)
    assert feeds(app.test_client()) == feeds(cold)
    assert reloader(app).check() == "unchanged"


def test_the_start_check_waits_without_a_watcher(dataset_dir: Path, snapshots: Path) -> None:
    app_of(dataset_dir, snapshots)
    edit(dataset_dir)
    app = app_of(dataset_dir, snapshots, FEEDSVC_START_CHECK="background",
                 FEEDSVC_RELOAD_INTERVAL=0)  # nothing would look later: it looks now
    client = app.test_client()
    assert readiness(client)["dataset"]["start_check"] == "done"
    assert feeds(client) == feeds(fresh(dataset_dir))


def test_a_snapshot_written_after_a_publish_restarts_to_the_same_data(
        dataset_dir: Path, snapshots: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app_of(dataset_dir, snapshots)
    app = restarted(dataset_dir, snapshots)
    client = app.test_client()
    client.get("/feeds/all.rss")
    edit(dataset_dir)
    assert reloader(app).check() == "reloaded"
    again = restarted(dataset_dir, snapshots)
    cold = fresh(dataset_dir)
    assert feeds(again.test_client()) == feeds(cold) == feeds(client)
    assert reloader(again).check() == "checked"
    # Each file's releases in the store's catalog are its own: an edit replaces them.
    path = dataset_dir / "releases" / "pr-2004-001.yaml"
    path.write_text(path.read_text().replace("title: ", "title: Again - ", 1))
    assert reloader(again).check() == "reloaded"
    assert feeds(again.test_client()) == feeds(fresh(dataset_dir))


@pytest.fixture(scope="module")
def thousand(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,000 synthetic releases, one file each."""
    return write_archive(1000, tmp_path_factory.mktemp("split") / "data", split=True)


def test_a_restart_reads_no_file_and_serves_what_a_cold_start_serves(
        thousand: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    shutil.copytree(thousand, data)
    snapshots = tmp_path / "snap"
    cold = app_of(data, snapshots).test_client()
    parsed = record_parses(monkeypatch)
    app = restarted(data, snapshots)
    client = app.test_client()
    assert readiness(client)["dataset"]["releases"] == 1000
    for url in ("/feeds/all.rss", "/feeds/countries/th.atom", "/feeds/", "/", "/sitemap.xml"):
        assert client.get(url).data == cold.get(url).data, url
    assert parsed == []  # served from the state file: no YAML read
    # The start check, then a publish: each reads only the files that changed.
    assert reloader(app).check() == "checked"
    [name] = sorted((data / "releases").iterdir())[:1]
    name.write_text(name.read_text().replace("title: ", "title: Corrected - ", 1))
    assert reloader(app).check() == "reloaded"
    assert parsed == [str(name)]
    changed = json.loads(client.get("/feeds/all.json?q=corrected").data)["items"]
    assert [item["title"][:12] for item in changed] == ["Corrected - "]


def test_a_restart_lists_the_whole_archive_in_its_sitemap(thousand: Path,
                                                          tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(thousand, data)
    snapshots = tmp_path / "snap"
    app_of(data, snapshots)
    app = app_of(data, snapshots, FEEDSVC_START_CHECK="background", FEEDSVC_RELOAD_INTERVAL=5,
                  FEEDSVC_SITEMAP_URLS=400)  # a restart, its sitemap in parts
    client = app.test_client()
    index = etree.fromstring(client.get("/sitemap.xml").data)
    parts = [loc.text for loc in index.iter(f"{{{SITEMAP}}}loc")]
    listed = [loc.text for part in parts
              for loc in etree.fromstring(client.get(urlsplit(part).path).data).iter(
                  f"{{{SITEMAP}}}loc")]
    assert sum("/releases/" in url for url in listed) == 1000


def _pids(server: Server) -> set[int]:
    return gunicorn_workers(server.process.pid)


def _every_worker_done(server: Server, version: str) -> bool:
    answers = server.readiness()
    return all(r["dataset"]["start_check"] == "done" and r["dataset"]["version"] == version
               for r in answers) and len(_pids(server)) == 2


def test_under_gunicorn_a_restart_serves_the_change_made_while_down(
        dataset_dir: Path, tmp_path: Path) -> None:
    first = start(dataset_dir, tmp_path / "first.log", 1,
               extra={"FEEDSVC_SNAPSHOT_DIR": str(tmp_path / "state")})
    try:
        old = json.loads(first.get("/readyz")[2])["dataset"]["version"]
    finally:
        stop(first)
    edit(dataset_dir)
    expected = readiness(fresh(dataset_dir))["dataset"]["version"]
    assert expected != old
    server = start(dataset_dir, tmp_path / "second.log", 1,
                extra={"FEEDSVC_SNAPSHOT_DIR": str(tmp_path / "state")})
    try:
        until(lambda: _every_worker_done(server, expected))
        code, _, body = server.get("/feeds/all.rss")
        assert code == 200 and b"Corrected - " in body
        assert server.get("/releases/pr-new")[0] == 200
        assert server.get("/releases/pr-2004-002")[0] == 404
        assert "checked for changes made while down" in server.log.read_text()
    finally:
        stop(server)
