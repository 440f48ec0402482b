"""Live reload: valid edits are swapped in; broken data never is, and the old data keeps serving."""
from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import feedparser
import pytest
from flask import Flask
from flask.testing import FlaskClient

from feedsvc import create_app
from feedsvc.dataset import loader
from feedsvc.dataset.problems import Problem
from feedsvc.dataset.visible import StoreView
from feedsvc.dataset.yamlsource import read_source
from feedsvc.operations.cli import check_data
from feedsvc.operations.reload import reload_now, reloader, start_watching
from feedsvc.state import Served, live

from .helpers import record_parses

BASE_URL = "https://feeds.example.org/"

RELEASE = "releases/pr-2005-002.yaml"
NEW_TITLE = "ILO offers renewed training in Cambodian Women Workers' Rights"


@pytest.fixture
def live_app(dataset_dir: Path) -> Flask:
    return create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE_URL})


def edit_title(dataset_dir: Path, title: str = NEW_TITLE) -> None:
    path = dataset_dir / RELEASE
    text = path.read_text(encoding="utf-8")
    old = next(line for line in text.splitlines() if line.startswith("title:"))
    path.write_text(text.replace(old, f"title: {title}"), encoding="utf-8")


def served(client: FlaskClient) -> tuple[str, bytes]:
    """Fetch the main feed; it must succeed whatever is on disk."""
    response = client.get("/feeds/all.rss")
    assert response.status_code == 200
    return response.headers["X-Dataset-Version"], response.get_data()


def readiness(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/readyz")
    assert response.status_code == 200
    found: dict[str, Any] = response.get_json()
    return found


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Record the files the loader reads and parses from now on."""
    seen: dict[str, list[str]] = {"read": []}

    def read(path: str, name: str, limit: int, opened: tuple[int, os.stat_result] | None = None
             ) -> tuple[bytes | None, Problem | None]:
        seen["read"].append(name)
        return read_source(path, name, limit, opened)

    monkeypatch.setattr(loader, "read_source", read)
    seen["parsed"] = record_parses(monkeypatch)
    return seen


def age(dataset_dir: Path) -> None:
    """Date every file an hour back: older than a write that could share its mtime tick."""
    for path in dataset_dir.rglob("*.yaml"):
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - 3600 * 10**9))


def test_unchanged_files_are_not_read_again(dataset_dir: Path, reads: dict[str, list[str]]) -> None:
    age(dataset_dir)
    app = create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE_URL})
    reads["read"].clear()
    assert reloader(app).check() == "unchanged"
    assert reloader(app).check() == "unchanged"
    assert reads["read"] == []


def test_a_valid_edit_is_swapped_in(live_app: Flask, dataset_dir: Path,
                                    reads: dict[str, list[str]]) -> None:
    client = live_app.test_client()
    old_version, _ = served(client)
    swaps: list[tuple[StoreView, StoreView]] = []
    live(live_app).on_swap(lambda old, new: swaps.append((old, new)))
    edit_title(dataset_dir)
    assert reloader(live_app).check() == "reloaded"
    version, body = served(client)
    assert version != old_version and NEW_TITLE.encode() in body
    assert [(old.index.version, new.index.version) for old, new in swaps] \
        == [(old_version, version)]
    assert reads["parsed"] == [str(dataset_dir / RELEASE)]  # only the edited file


def test_touching_without_changing_content_keeps_the_index(live_app: Flask,
                                                          dataset_dir: Path) -> None:
    state = live(live_app)
    before = state.index
    (dataset_dir / RELEASE).write_bytes((dataset_dir / RELEASE).read_bytes())
    assert reloader(live_app).check() == "unchanged"
    assert state.index is before


def _half_written(dataset_dir: Path) -> None:
    path = dataset_dir / RELEASE
    raw = path.read_bytes()
    path.write_bytes(raw[: raw.index(b"title:") + 20])  # cut inside the title line


def _topics_deleted(dataset_dir: Path) -> None:
    (dataset_dir / "topics.yaml").unlink()


def _directory_deleted(dataset_dir: Path) -> None:
    shutil.rmtree(dataset_dir)


def _one_bad_file(dataset_dir: Path) -> None:
    (dataset_dir / "releases" / "pr-2005-003.yaml").write_text(
        "id: pr-2005-003\ntype: press-release\ntitle: A new release\npublished: 2005-02-30\n"
        "countries: [KH]\ntopics: [gender-equality]\nsummary: Not a real date.\n",
        encoding="utf-8")


@pytest.mark.parametrize("break_data", [_half_written, _topics_deleted, _one_bad_file,
                                        _directory_deleted])
def test_broken_data_is_never_served(live_app: Flask, dataset_dir: Path,
                                     break_data: Callable[[Path], None],
                                     capsys: pytest.CaptureFixture[str],
                                     caplog: pytest.LogCaptureFixture) -> None:
    client = live_app.test_client()
    old_version, old_body = served(client)
    break_data(dataset_dir)
    with caplog.at_level(logging.ERROR, logger="feedsvc"):
        assert reloader(live_app).check() == "rejected"
    assert served(client) == (old_version, old_body)
    assert check_data(str(dataset_dir)) == 1
    report = capsys.readouterr().err.rstrip("\n")
    ready = readiness(client)
    assert ready["status"] == "degraded"
    assert ready["dataset"]["version"] == old_version
    assert ready["dataset"]["last_reload_error"] == report
    assert any(report in r.getMessage() and old_version in r.getMessage() for r in caplog.records)
    # Rejected once, not again on every check while nothing changes.
    assert reloader(live_app).check() == "unchanged"


def test_the_next_valid_edit_recovers(live_app: Flask, dataset_dir: Path) -> None:
    client = live_app.test_client()
    _one_bad_file(dataset_dir)
    assert reloader(live_app).check() == "rejected"
    (dataset_dir / "releases" / "pr-2005-003.yaml").unlink()
    edit_title(dataset_dir)
    assert reloader(live_app).check() == "reloaded"
    ready = readiness(client)
    assert ready["status"] == "ok" and ready["dataset"]["last_reload_error"] is None
    assert NEW_TITLE.encode() in served(client)[1]


def test_reverting_a_bad_edit_clears_the_rejection(live_app: Flask, dataset_dir: Path) -> None:
    client = live_app.test_client()
    old_version, _ = served(client)
    original = (dataset_dir / RELEASE).read_bytes()
    _half_written(dataset_dir)
    assert reloader(live_app).check() == "rejected"
    (dataset_dir / RELEASE).write_bytes(original)
    assert reloader(live_app).check() == "recovered"
    assert readiness(client)["status"] == "ok"
    assert served(client)[0] == old_version


def test_a_file_written_while_read_is_looked_at_again(live_app: Flask, dataset_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    state: Served = live(live_app)
    before = state.index
    path = dataset_dir / RELEASE
    whole = path.read_bytes()
    real_read = read_source

    def read_then_finish(file: str, name: str, limit: int,
                         opened: tuple[int, os.stat_result] | None = None
                         ) -> tuple[bytes | None, Problem | None]:
        found = real_read(file, name, limit, opened)
        path.write_bytes(whole.replace(b"title:", b"title: Finished,"))  # the writer goes on
        return found

    _half_written(dataset_dir)
    monkeypatch.setattr(loader, "read_source", read_then_finish)
    assert reloader(live_app).check() == "changing"
    assert state.index is before and reloader(live_app).error is None
    monkeypatch.setattr(loader, "read_source", real_read)
    assert reloader(live_app).check() == "reloaded"
    assert b"Finished," in served(live_app.test_client())[1]


def test_a_deleted_bundle_file_is_reported_and_its_return_clears_it(dataset_dir: Path,
                                                                   tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.yaml"
    bundle.write_text((dataset_dir / "site.yaml").read_text() + (dataset_dir / "topics.yaml").read_text()
                      + "releases: []\n", encoding="utf-8")
    app = create_app({"FEEDSVC_DATA": str(bundle), "FEEDSVC_BASE_URL": BASE_URL})
    client, saved = app.test_client(), bundle.read_bytes()
    version = served(client)[0]
    bundle.unlink()
    assert reloader(app).check() == "rejected"
    ready = readiness(client)
    assert (ready["status"], ready["dataset"]["version"]) == ("degraded", version)
    assert ready["dataset"]["last_reload_error"].endswith(f"{bundle}: no such file or directory")
    assert served(client)[0] == version
    bundle.write_bytes(saved)
    assert reloader(app).check() == "recovered"
    assert readiness(client)["status"] == "ok"


def test_hup_reloads_even_when_the_files_look_unchanged(dataset_dir: Path) -> None:
    age(dataset_dir)
    app = create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE_URL})
    path = dataset_dir / RELEASE
    stat = path.stat()
    path.write_bytes(path.read_bytes().replace(b"title: ", b"title: X", 1)[:-1])  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as after `cp -p`: stat cannot tell
    assert reloader(app).check() == "unchanged"
    assert reload_now(app) == "reloaded"


def test_no_watcher_when_the_interval_is_zero(dataset_dir: Path) -> None:
    app = create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_RELOAD_INTERVAL": 0})
    assert start_watching(app) is None


def test_notified_paths_alone_are_looked_at(dataset_dir: Path,
                                            reads: dict[str, list[str]]) -> None:
    from feedsvc.dataset import load_dataset

    age(dataset_dir)
    app = create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE_URL})
    added = dataset_dir / "releases" / "a-new.yaml"
    added.write_text((dataset_dir / RELEASE).read_text().replace("pr-2005-002", "a-new"))
    edit_title(dataset_dir)  # changed too, but not notified
    reads["read"].clear()
    assert reloader(app).check(paths=[str(added.resolve())]) == "reloaded"
    assert reads["read"] == [str(added)]
    client = app.test_client()
    assert client.get("/releases/a-new").status_code == 200
    assert NEW_TITLE.encode() not in served(client)[1]
    assert reloader(app).check() == "reloaded"  # a full look finds the rest
    assert served(client)[0] == load_dataset(dataset_dir).version


def test_a_notified_folder_or_link_means_a_full_look(dataset_dir: Path) -> None:
    app = create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE_URL})
    (dataset_dir / "more").mkdir()
    (dataset_dir / "more" / "x.yaml").write_text(
        (dataset_dir / RELEASE).read_text().replace("pr-2005-002", "in-more"))
    assert reloader(app).check(paths=[str((dataset_dir / "more").resolve())]) == "reloaded"
    assert app.test_client().get("/releases/in-more").status_code == 200


def test_the_watcher_wakes_on_changes_not_on_reads(tmp_path: Path) -> None:
    from feedsvc.operations.watcher import Watcher

    watcher = Watcher(str(tmp_path), interval=5, backend="notify", settle=0.2)
    try:
        assert watcher.backend == "notify"
        (tmp_path / "a.yaml").write_text("x: 1\n")
        assert watcher.wait(timeout=30)
        assert str(tmp_path / "a.yaml") in (watcher.take() or set())
        (tmp_path / "a.yaml").read_text()
        assert not watcher.wait(timeout=1)  # reading (as a check does) is not a change
        (tmp_path / "sub").mkdir()
        assert watcher.wait(timeout=30) and watcher.take() is None  # a folder: look at all
    finally:
        watcher.stop()


def test_a_one_file_dataset_is_watched_and_not_the_files_beside_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from inotify_simple import Event, parse_events

    from feedsvc.operations import watcher as watching

    read: list[str] = []

    def parsed(data: bytes) -> list[Event]:
        events: list[Event] = parse_events(data)
        read.extend(event.name for event in events)
        return events

    monkeypatch.setattr("feedsvc.operations.watcher.parse_events", parsed)
    data, log = tmp_path / "releases.yaml", tmp_path / "server.log"
    data.write_text("x: 1\n")
    log.touch()  # made before: making an entry is news of the folder, writing one is not
    watcher = watching.Watcher(str(data), interval=5, backend="notify", settle=0.2)
    try:
        with log.open("a") as out:  # a server's log beside the dataset, written line by line
            for number in range(20):
                out.write(f"line {number}\n")
                out.flush()
        with data.open("a") as out:  # the dataset written in place
            out.write("y: 2\n")
        assert watcher.wait(timeout=30) and watcher.take() is None
        assert "server.log" not in read  # the kernel never told the reader of the log
        data.unlink()
        (tmp_path / "new.yaml").write_text("x: 3\n")
        (tmp_path / "new.yaml").rename(data)  # replaced, as an editor or a deploy saves
        assert watcher.wait(timeout=30) and watcher.take() is None
        read.clear()
        data.write_text("x: 4\n")  # the new file is watched in turn
        assert watcher.wait(timeout=30) and read
    finally:
        watcher.stop()


def test_each_reload_serves_what_a_restart_would(dataset_dir: Path) -> None:
    app = create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE_URL})
    source = (dataset_dir / RELEASE).read_text()
    steps: list[Callable[[], object]] = [
        lambda: (dataset_dir / "releases" / "new-1.yaml").write_text(
            source.replace("pr-2005-002", "new-1").replace("2005-", "2030-")),
        lambda: edit_title(dataset_dir),
        lambda: (dataset_dir / "releases" / "pr-2004-001.yaml").unlink(),
        lambda: (dataset_dir / "releases" / "new-2.yaml").write_text(
            source.replace("pr-2005-002", "new-2").replace("2005-", "1999-")),
        lambda: (dataset_dir / "releases" / "new-1.yaml").unlink(),
    ]
    for step in steps:
        step()
        assert reloader(app).check() == "reloaded"
        # A cold start of its own (no state directory): what a restart from nothing serves.
        fresh = create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE_URL,
                            "FEEDSVC_SNAPSHOT_DIR": None})
        for path in ("/feeds/all.json", "/feeds/all.atom", "/feeds/countries/kh.rss",
                     "/feeds/all.json?q=workers&limit=3", "/releases/new-2", "/sitemap.xml"):
            mine, theirs = app.test_client().get(path), fresh.test_client().get(path)
            assert (mine.status_code, mine.get_data()) == (theirs.status_code,
                                                            theirs.get_data()), path
            assert mine.headers.get("X-Dataset-Version") == theirs.headers.get(
                "X-Dataset-Version")


def test_a_query_is_checked_against_the_topics_of_the_data_served(live_app: Flask,
                                                                  dataset_dir: Path) -> None:
    """A query string answered before a reload is judged again by the new vocabulary."""
    client = live_app.test_client()
    url = "/feeds/all.rss?topic=decent-work"
    topics = dataset_dir / "topics.yaml"
    original = topics.read_text(encoding="utf-8")
    assert client.get(url).status_code == 400
    topics.write_text(original + "  - slug: decent-work\n    label: Decent work\n"
                                 "    description: Productive work in freedom and dignity.\n",
                      encoding="utf-8")
    assert reloader(live_app).check() == "reloaded"
    for _ in range(2):  # the second one from the fast path
        response = client.get(url)
        assert response.status_code == 200
        assert feedparser.parse(response.data).entries == []  # no release has the topic yet
    topics.write_text(original, encoding="utf-8")
    assert reloader(live_app).check() == "reloaded"
    response = client.get(url)
    assert response.status_code == 400 and "decent-work" in response.get_data(as_text=True)


def test_a_reload_that_removes_releases_logs_their_ids(live_app: Flask, dataset_dir: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "feedsvc.reload")
    (dataset_dir / "releases" / "pr-2004-001.yaml").unlink()
    (dataset_dir / "releases" / "pr-2005-002.yaml").rename(dataset_dir / "releases" / "moved.yaml")
    assert reloader(live_app).check() == "reloaded"
    removals = [r.getMessage() for r in caplog.records if "removed" in r.getMessage()]
    # The renamed file's release is still served: only the deleted one is named.
    assert removals == ["dataset reload removed 1 releases: pr-2004-001"]


def test_the_vocabulary_is_still_checked_after_a_sighup(live_app: Flask,
                                                        dataset_dir: Path) -> None:
    # A look that reads every file again (SIGHUP) keeps knowing site.yaml for what it is.
    edit_title(dataset_dir)
    assert reload_now(live_app) == "reloaded"
    (dataset_dir / "site.yaml").unlink()
    assert reload_now(live_app) == "rejected"
    assert served(live_app.test_client())[1].count(NEW_TITLE.encode()) >= 1
