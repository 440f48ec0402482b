"""Any failure inside a reload keeps the last committed data served and says so; a write the
store cannot take (a full disk) is rolled back, said, and tried again at the next look.

Faults are injected by monkeypatching the stage they stand for (test-only code): the look at
the files (read, parse, validate) and the store's write transaction.
"""
from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from lxml import etree

from feedsvc import create_app
from feedsvc.dataset import sync, write
from feedsvc.operations.reload import reloader

from .conftest import release_yaml
from .test_metrics import scrape, value
from .test_reload import NEW_TITLE, edit_title, readiness, served

BASE_URL = "https://feeds.example.org/"


class Injected(RuntimeError):
    """The fault a test puts into a stage of the reload."""


def _broken(*args: Any, **kwargs: Any) -> Any:
    raise Injected("injected fault")


# Each stage of a reload, as the name the Reloader calls it by.
STAGES = {
    "look": (sync.Looker, "look"),
    "write": (sync, "commit"),  # the store's transaction, of a change or of every file
}


@pytest.fixture
def live_app(dataset_dir: Path, tmp_path: Path) -> Flask:
    return create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE_URL,
                       "FEEDSVC_SNAPSHOT_DIR": str(tmp_path / "snapshots")})


def failures_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "feedsvc.reload" and r.exc_info]


@pytest.mark.parametrize("stage", sorted(STAGES))
@pytest.mark.parametrize("retry", ["next change", "sighup"])
def test_a_failed_reload_keeps_serving_says_so_and_is_tried_again(
        live_app: Flask, dataset_dir: Path, stage: str, retry: str,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    client = live_app.test_client()
    old_version, old_body = served(client)
    before = scrape(client)
    owner, name = STAGES[stage]
    with monkeypatch.context() as patch:
        patch.setattr(owner, name, _broken)
        edit_title(dataset_dir)
        assert reloader(live_app).check() == "failed"
        assert served(client) == (old_version, old_body)
        ready = readiness(client)
        assert ready["status"] == "degraded"
        assert "Injected: injected fault" in ready["dataset"]["last_reload_error"]
        # Looked at again (the parse fails again): not logged, counted or re-forked again.
        assert reloader(live_app).check() == "unchanged"
        assert reloader(live_app).check() == "unchanged"
    after = scrape(client)
    assert value(after, "feedsvc_dataset_reloads_total", result="failed") - \
        value(before, "feedsvc_dataset_reloads_total", result="failed") == 1
    logged = failures_logged(caplog)
    assert len(logged) == 1 and "Injected: injected fault" in logged[0].getMessage()
    assert "_broken" in caplog.text  # the traceback names where it came from
    # The fault is gone: the next change, or SIGHUP, reloads.
    if retry == "next change":
        edit_title(dataset_dir, NEW_TITLE + " again")
        assert reloader(live_app).check() == "reloaded"
        assert (NEW_TITLE + " again").encode() in served(client)[1]
    else:
        assert reloader(live_app).check(force=True) == "reloaded"
        assert NEW_TITLE.encode() in served(client)[1]
    assert readiness(client)["status"] == "ok"
    # And the reload after that goes the incremental way again.
    edit_title(dataset_dir, "A third title")
    assert reloader(live_app).check() == "reloaded"
    assert b"A third title" in served(client)[1]


def _disk_full(*args: Any, **kwargs: Any) -> None:
    raise sqlite3.OperationalError("database or disk is full")


def test_state_not_written_keeps_the_last_commit_says_so_and_is_tried_again(
        live_app: Flask, dataset_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = live_app.test_client()
    old_version, old_body = served(client)
    with monkeypatch.context() as patch:
        patch.setattr(write, "apply", _disk_full)  # the store's transaction for a publish
        edit_title(dataset_dir)
        assert reloader(live_app).check() == "failed"
        assert served(client) == (old_version, old_body)  # serving is the committed store
        ready = readiness(client)
        assert ready["status"] == "degraded"
        assert ready["dataset"]["last_reload_error"].startswith(
            "state not written: OperationalError: database or disk is full")
    # The disk has room again: the next look writes the publish, and a restart serves it.
    assert reloader(live_app).check() == "reloaded"
    assert NEW_TITLE.encode() in served(client)[1]
    assert readiness(client)["status"] == "ok"
    edit_title(dataset_dir, "Written at last")
    assert reloader(live_app).check() == "reloaded"
    again = create_app(dict(live_app.config))
    assert b"Written at last" in served(again.test_client())[1]


def test_a_rebuild_of_the_served_version_hides_the_right_releases(
        make_dataset: Any, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """After a failure, the files put back as they were: the rebuilt index (the same version,
    labelled afresh) has its own facts (withdrawn, updated), as a fresh process has, and the
    next edits of them work (they were worked out from the other index's labels: wrong
    feeds, then an IndexError in the swap listener)."""
    releases = [release_yaml(n, f"2020-01-{n:02d}") for n in range(1, 9)]
    releases[3]["withdrawn"] = "2020-02-01T00:00:00+00:00"
    releases[5]["updated"] = "2020-03-01T00:00:00+00:00"
    root = make_dataset(releases)
    app = create_app({"FEEDSVC_DATA": str(root), "FEEDSVC_BASE_URL": BASE_URL,
                      "FEEDSVC_SNAPSHOT_DIR": None})
    watch = reloader(app)
    (root / "releases" / "t-020.yaml").write_text(
        yaml.safe_dump(release_yaml(20, "2020-01-04")), encoding="utf-8")
    assert watch.check() == "reloaded"  # labelled between its neighbours: not as afresh
    assert feeds(app) == feeds(fresh_app(root))
    edited = root / "releases" / "t-002.yaml"
    kept = edited.read_bytes()
    edited.write_text(yaml.safe_dump(release_yaml(2, "2020-01-02", title="Edited")))
    with monkeypatch.context() as patch:
        patch.setattr(sync, "commit", _broken)
        assert watch.check() == "failed"
    edited.write_bytes(kept)  # put back: the files are again what the store holds
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert watch.check() == "recovered"  # the failed write left the store as it was
        assert feeds(app) == feeds(fresh_app(root))
        # Then the withdrawn release is put back, and the updated one withdrawn.
        for number, changes in ((4, {}), (6, {"withdrawn": "2020-02-01T00:00:00+00:00"})):
            (root / "releases" / f"t-{number:03d}.yaml").write_text(yaml.safe_dump(
                {**release_yaml(number, f"2020-01-{number:02d}"), **changes}), encoding="utf-8")
        assert watch.check() == "reloaded", readiness(app.test_client())
        assert feeds(app) == feeds(fresh_app(root))
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def fresh_app(root: Path) -> Flask:
    return create_app({"FEEDSVC_DATA": str(root), "FEEDSVC_BASE_URL": BASE_URL,
                       "FEEDSVC_SNAPSHOT_DIR": None})


def feeds(app: Flask) -> tuple[Any, bytes]:
    """Return the JSON Feed and the Atom feed (canonical XML, tombstones included), parsed."""
    client = app.test_client()
    atom = etree.fromstring(client.get("/feeds/all.atom").get_data())
    return client.get("/feeds/all.json").get_json(), etree.tostring(atom, method="c14n")
