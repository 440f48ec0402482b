"""Never serve less than a restart would: bad files are rejected, mass removals are held."""
from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask

from feedsvc import create_app
from feedsvc.config import ConfigError, MaxRemoval, from_env
from feedsvc.dataset.guard import accept_removal
from feedsvc.dataset.statedir import state_file
from feedsvc.operations.cli import check_data, main
from feedsvc.operations.reload import reloader

from .conftest import BASE_URL, release_yaml
from .helpers import entry_ids, record_parses


@pytest.fixture
def ten(make_dataset: Callable[..., Path]) -> Path:
    return make_dataset([release_yaml(n, f"2020-01-{n:02d}") for n in range(1, 11)])


def build(data: Path, **settings: object) -> Flask:
    return create_app({"FEEDSVC_DATA": str(data), "FEEDSVC_BASE_URL": BASE_URL, **settings})


def readiness(app: Flask) -> dict[str, Any]:
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 200
    found: dict[str, Any] = answer.get_json()
    return found


def feed_ids(app: Flask) -> list[str]:
    return entry_ids(app.test_client().get("/feeds/all.rss?limit=100"), "rss")


def _dangling_link(releases: Path) -> str:
    (releases / "zz-new.yaml").symlink_to(releases / "nowhere.yaml")
    return "zz-new.yaml: not a regular file"


def _fifo(releases: Path) -> str:
    os.mkfifo(releases / "zz-new.yaml")
    return "zz-new.yaml: not a regular file"


def _oversize(releases: Path) -> str:
    (releases / "zz-new.yaml").write_text("summary: " + "x" * 5000 + "\n")
    return "zz-new.yaml: larger than 4096 bytes (FEEDSVC_MAX_FILE_BYTES)"


@pytest.mark.parametrize("add", [_dangling_link, _fifo, _oversize])
def test_a_bad_file_beside_valid_ones_is_rejected_like_an_edit(
        ten: Path, add: Callable[[Path], str], caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    app = build(ten, FEEDSVC_MAX_FILE_BYTES=4096)
    version = readiness(app)["dataset"]["version"]
    expected = add(ten / "releases")
    with caplog.at_level(logging.ERROR, logger="feedsvc"):
        assert reloader(app).check() == "rejected"
        assert reloader(app).check() == "unchanged"  # logged once
    assert sum("reload rejected" in r.getMessage() for r in caplog.records) == 1
    ready = readiness(app)
    assert (ready["status"], ready["dataset"]["version"]) == ("degraded", version)
    assert expected in ready["dataset"]["last_reload_error"]
    monkeypatch.setenv("FEEDSVC_MAX_FILE_BYTES", "4096")
    capsys.readouterr()
    assert check_data(str(ten), 4096) == 1  # what a restart would refuse
    assert capsys.readouterr().err.rstrip("\n") == ready["dataset"]["last_reload_error"]
    (ten / "releases" / "zz-new.yaml").unlink()
    assert reloader(app).check() == "recovered"
    assert readiness(app)["status"] == "ok"


def test_a_mass_removal_is_held_until_accepted(ten: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    snapshots = tmp_path / "snap"
    app = build(ten, FEEDSVC_SNAPSHOT_DIR=str(snapshots))
    served = feed_ids(app)
    version = readiness(app)["dataset"]["version"]
    store = state_file(str(snapshots), str(ten), "sqlite")
    committed = stored(store)
    for number in range(1, 4):  # 3 of 10: more than the default 20%
        (ten / "releases" / f"t-{number:03d}.yaml").unlink()
    assert reloader(app).check() == "held"
    ready = readiness(app)
    assert (ready["status"], ready["dataset"]["version"]) == ("degraded", version)
    assert "3 of 10 releases would be removed" in ready["dataset"]["last_reload_error"]
    assert feed_ids(app) == served
    assert stored(store) == committed  # a held reload writes nothing
    assert reloader(app).check() == "unchanged"
    # A restart serves the store and holds the removal too.
    again = build(ten, FEEDSVC_SNAPSHOT_DIR=str(snapshots))
    assert readiness(again)["status"] == "degraded" and feed_ids(again) == served
    monkeypatch.setenv("FEEDSVC_SNAPSHOT_DIR", str(snapshots))
    assert main(["accept-removal", str(ten)]) == 0
    assert reloader(app).check() == "reloaded"
    assert feed_ids(app) == served[:7]
    assert readiness(app)["status"] == "ok"
    assert main(["accept-removal", str(ten)]) == 1  # nothing held any more


def stored(store: Path) -> list[tuple[object, ...]]:
    """Return what the store file holds: its version and releases (the committed data)."""
    conn = sqlite3.connect(store)
    try:
        return conn.execute("SELECT value FROM meta WHERE name = 'version'").fetchall() + \
            conn.execute("SELECT key, id, title FROM releases ORDER BY key").fetchall()
    finally:
        conn.close()


def test_removing_up_to_the_limit_is_a_normal_reload(ten: Path) -> None:
    app = build(ten, FEEDSVC_MAX_REMOVAL=MaxRemoval(count=3, spec="3"))
    for number in range(1, 4):
        (ten / "releases" / f"t-{number:03d}.yaml").unlink()
    assert reloader(app).check() == "reloaded"
    assert len(feed_ids(app)) == 7


def test_restoring_the_files_ends_the_hold(ten: Path) -> None:
    app = build(ten)
    saved = {p: p.read_bytes() for p in (ten / "releases").iterdir()}
    for path in saved:
        path.unlink()
    assert reloader(app).check() == "held"
    assert "10 of 10 releases" in readiness(app)["dataset"]["last_reload_error"]
    for path, raw in saved.items():
        path.write_bytes(raw)
    assert reloader(app).check() == "recovered"
    assert readiness(app)["status"] == "ok"


def test_a_bundle_is_parsed_once_per_edit_even_when_invalid(
        archive_1k: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "bundle.yaml"
    bundle.write_bytes(archive_1k.read_bytes())
    app = build(bundle, FEEDSVC_SNAPSHOT_DIR=str(tmp_path / "snap"))
    parsed = record_parses(monkeypatch)
    whole = bundle.read_bytes()
    bundle.write_bytes(whole.replace(b"published: ", b"published: 2021-02-30", 1))
    assert reloader(app).check() == "rejected"
    assert reloader(app).check() == "unchanged"
    assert parsed == [str(bundle)]
    bundle.write_bytes(whole.replace(b"title: ", b"title: Corrected ", 1))
    assert reloader(app).check() == "reloaded"
    assert parsed == [str(bundle)] * 2


def test_max_removal_setting() -> None:
    assert from_env({})["FEEDSVC_MAX_REMOVAL"].allowed(100) == 20
    assert from_env({"FEEDSVC_MAX_REMOVAL": "5%"})["FEEDSVC_MAX_REMOVAL"].allowed(1000) == 50
    assert from_env({"FEEDSVC_MAX_REMOVAL": "500"})["FEEDSVC_MAX_REMOVAL"].allowed(10) == 500
    assert from_env({"FEEDSVC_MAX_REMOVAL": "100%"})["FEEDSVC_MAX_REMOVAL"].allowed(10) == 10
    for bad in ("20 %", "-1", "150%", "lots"):
        with pytest.raises(ConfigError, match="FEEDSVC_MAX_REMOVAL"):
            from_env({"FEEDSVC_MAX_REMOVAL": bad})


@pytest.mark.parametrize("start_check", ["wait", "background"])
def test_a_restart_keeps_a_held_removal_held_and_the_publishes_before_it(
        ten: Path, tmp_path: Path, start_check: str) -> None:
    """Publish one, remove every file (held), restart: the restart serves what was served."""
    snapshots = str(tmp_path / "snap")
    settings: dict[str, object] = {"FEEDSVC_SNAPSHOT_DIR": snapshots, "FEEDSVC_RELOAD_INTERVAL": 1,
                                   "FEEDSVC_MAX_REMOVAL": MaxRemoval(count=2, spec="2")}
    app = build(ten, **settings)
    published = release_yaml(11, "2020-02-01")
    (ten / "releases" / "t-011.yaml").write_text(yaml.safe_dump(published), encoding="utf-8")
    assert reloader(app).check() == "reloaded"
    served, version = feed_ids(app), readiness(app)["dataset"]["version"]
    assert "t-011" in " ".join(served)
    for path in (ten / "releases").iterdir():
        path.unlink()
    assert reloader(app).check() == "held"
    for restarts in range(2):  # and again: the restart's own state is what the next one reads
        app = build(ten, FEEDSVC_START_CHECK=start_check, **settings)
        if start_check == "background":  # the watcher's first look, at the files changed
            assert reloader(app).check() in ("held", "unchanged", "checked")
        ready = readiness(app)
        assert (ready["status"], ready["dataset"]["version"]) == ("degraded", version), restarts
        assert "11 of 11 releases would be removed" in ready["dataset"]["last_reload_error"]
        assert feed_ids(app) == served
    # Accepted, the removal is served, as it would have been without the restarts.
    accept_removal(str(ten), snapshots)
    assert reloader(app).check() == "reloaded"
    assert feed_ids(app) == [] and readiness(app)["status"] == "ok"


@pytest.mark.parametrize("start_check", ["wait", "background"])
def test_a_restart_serves_an_accepted_removal(ten: Path, tmp_path: Path,
                                             start_check: str) -> None:
    """An accepted removal small enough for the journal is served again after a restart."""
    snapshots = str(tmp_path / "snap")
    settings: dict[str, object] = {"FEEDSVC_SNAPSHOT_DIR": snapshots, "FEEDSVC_RELOAD_INTERVAL": 1,
                                   "FEEDSVC_MAX_REMOVAL": MaxRemoval(count=2, spec="2")}
    app = build(ten, **settings)
    for number in range(1, 4):
        (ten / "releases" / f"t-{number:03d}.yaml").unlink()
    assert reloader(app).check() == "held"
    accept_removal(str(ten), snapshots)
    assert reloader(app).check() == "reloaded"
    served, version = feed_ids(app), readiness(app)["dataset"]["version"]
    assert len(served) == 7
    again = build(ten, FEEDSVC_START_CHECK=start_check, **settings)
    if start_check == "background":
        assert reloader(again).check() == "checked"
    ready = readiness(again)
    assert (ready["status"], ready["dataset"]["version"]) == ("ok", version)
    assert feed_ids(again) == served
