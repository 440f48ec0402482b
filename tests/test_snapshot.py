"""Start-up snapshots: used when the data is unchanged, replaced when it changes, never trusted blindly."""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest

from feedsvc import create_app
from feedsvc.config import ConfigError, from_env
from feedsvc.dataset import DatasetError, load_dataset, saving, snapshot
from feedsvc.dataset.assemble import Loaded
from feedsvc.dataset.snapfile import FORMAT
from feedsvc.dataset.snapshot import load_index
from feedsvc.operations.cli import main

from .helpers import record_parses

FROM_SNAPSHOT = "loaded from snapshot"


def snapshots(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.pickle"))


def test_second_load_comes_from_the_snapshot(dataset_dir: Path, tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    snap = tmp_path / "snap"
    caplog.set_level(logging.INFO, "feedsvc.snapshot")
    first = load_index(dataset_dir, snap)
    assert FROM_SNAPSHOT not in caplog.text
    [file] = snapshots(snap)
    written = file.stat().st_mtime_ns
    second = load_index(dataset_dir, snap)
    assert FROM_SNAPSHOT in caplog.text
    assert second.releases == first.releases and second.version == first.version
    assert dict(second.by_country) == dict(first.by_country)
    assert snapshots(snap) == [file] and file.stat().st_mtime_ns == written
    assert oct(file.stat().st_mode & 0o777) == "0o600"


def test_a_changed_file_is_read_alone_and_the_snapshot_replaced(
        dataset_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    snap = tmp_path / "snap"
    before = load_index(dataset_dir, snap)
    [old] = snapshots(snap)
    written = old.read_bytes()
    release = dataset_dir / "releases" / "pr-2004-001.yaml"
    release.write_text(release.read_text().replace("special safety", "special"))
    parsed = record_parses(monkeypatch)
    caplog.set_level(logging.INFO, "feedsvc.snapshot")
    after = load_index(dataset_dir, snap)
    assert FROM_SNAPSHOT in caplog.text and parsed == [str(release)]
    assert after.version != before.version
    changed = after.release("pr-2004-001")
    assert changed is not None and changed.title.endswith("to get special training")
    [new] = snapshots(snap)  # one snapshot per source: the data served last
    assert new.read_bytes() != written
    assert load_index(dataset_dir, snap).version == after.version and parsed == [str(release)]


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "header", "public"])
def test_a_bad_snapshot_is_ignored_and_replaced(dataset_dir: Path, tmp_path: Path, damage: str,
                                                caplog: pytest.LogCaptureFixture) -> None:
    snap = tmp_path / "snap"
    good = load_index(dataset_dir, snap)
    [file] = snapshots(snap)
    data = file.read_bytes()
    if damage == "truncate":
        file.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        file.write_bytes(data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:])
    elif damage == "garbage":  # a valid checksum over something that is not an index
        import hashlib
        payload = b"\x80\x05K\x01."  # pickle of the int 1
        file.write_bytes(FORMAT + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
    elif damage == "header":
        file.write_bytes(b"feedsvc-snapshot 0\n" + data[len(FORMAT):])
    else:
        os.chmod(file, 0o666)
    caplog.set_level(logging.INFO, "feedsvc.snapshot")
    again = load_index(dataset_dir, snap)
    assert FROM_SNAPSHOT not in caplog.text and "ignored" in caplog.text
    assert again.releases == good.releases
    caplog.clear()
    load_index(dataset_dir, snap)  # the full load wrote a good one again
    assert FROM_SNAPSHOT in caplog.text


def test_an_unwritable_snapshot_dir_does_not_stop_the_load(dataset_dir: Path,
                                                           tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    index = load_index(dataset_dir, blocker / "snap")
    assert len(index.releases) == 10


def test_invalid_data_is_refused_after_the_child_process_fails(dataset_dir: Path,
                                                               tmp_path: Path) -> None:
    (dataset_dir / "releases" / "pr-2004-001.yaml").write_text("id: [\n")
    with pytest.raises(DatasetError, match="malformed YAML"):
        load_index(dataset_dir, tmp_path / "snap", child_over=0)
    assert snapshots(tmp_path / "snap") == []


def test_a_large_archive_is_loaded_in_a_child_process(dataset_dir: Path, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "feedsvc")
    index = load_index(dataset_dir, tmp_path / "snap", child_over=0)
    assert "loaded in child processes (1)" in caplog.text
    assert index.releases == load_dataset(dataset_dir).releases
    [file] = snapshots(tmp_path / "snap")  # the child's result became the snapshot as it was
    assert oct(file.stat().st_mode & 0o777) == "0o600"
    caplog.clear()
    assert load_index(dataset_dir, tmp_path / "snap").version == index.version
    assert FROM_SNAPSHOT in caplog.text


def test_the_app_starts_from_the_snapshot(dataset_dir: Path, tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    settings = {"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_SNAPSHOT_DIR": str(tmp_path / "s")}
    create_app(settings)
    caplog.set_level(logging.INFO, "feedsvc.snapshot")
    client = create_app(settings).test_client()
    assert FROM_SNAPSHOT in caplog.text
    assert client.get("/feeds/all.rss").status_code == 200


def test_the_snapshot_command_prepares_the_next_start(dataset_dir: Path, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    assert main(["snapshot", str(dataset_dir), "--dir", str(tmp_path / "s")]) == 0
    caplog.set_level(logging.INFO, "feedsvc.snapshot")
    load_index(dataset_dir, tmp_path / "s")
    assert FROM_SNAPSHOT in caplog.text
    (dataset_dir / "site.yaml").write_text("site: {}\n")
    assert main(["snapshot", str(dataset_dir), "--dir", str(tmp_path / "s")]) == 1


def test_snapshot_dir_setting() -> None:
    assert from_env({"FEEDSVC_SNAPSHOT_DIR": "off"})["FEEDSVC_SNAPSHOT_DIR"] is None
    assert from_env({"FEEDSVC_SNAPSHOT_DIR": "/srv/snap"})["FEEDSVC_SNAPSHOT_DIR"] == "/srv/snap"
    assert from_env({"XDG_CACHE_HOME": "/c"})["FEEDSVC_SNAPSHOT_DIR"] == "/c/feedsvc"
    with pytest.raises(ConfigError, match="absolute"):
        from_env({"FEEDSVC_SNAPSHOT_DIR": "relative/dir"})


def test_a_reload_is_journalled_and_a_restart_parses_nothing(
        dataset_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from feedsvc.operations.reload import reloader

    settings = {"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_SNAPSHOT_DIR": str(tmp_path / "s")}
    app = create_app(settings)
    saving.settle()  # the cold start's snapshot, written once the app could serve
    [file] = snapshots(tmp_path / "s")
    written = file.read_bytes()
    release = dataset_dir / "releases" / "pr-2004-001.yaml"
    release.write_text(release.read_text().replace("special safety", "special"))
    (dataset_dir / "releases" / "pr-2004-002.yaml").unlink()
    assert reloader(app).check() == "reloaded"
    version = app.test_client().get("/feeds/all.rss").headers["X-Dataset-Version"]
    assert file.read_bytes() == written and file.with_suffix(".journal").exists()
    parsed = record_parses(monkeypatch)
    client = create_app(settings).test_client()
    response = client.get("/feeds/all.rss")
    assert response.headers["X-Dataset-Version"] == version and parsed == []
    assert b"to get special training" in response.data
    assert client.get("/releases/pr-2004-002").status_code == 404


def test_a_cold_start_serves_first_and_writes_its_snapshot_after(
        dataset_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snap, gate = tmp_path / "snap", threading.Event()
    write = snapshot.write_snapshot

    def held_back(file: Path, loaded: Loaded) -> bool:
        assert gate.wait(timeout=60)
        return write(file, loaded)
    monkeypatch.setattr(snapshot, "write_snapshot", held_back)
    client = create_app({"FEEDSVC_DATA": str(dataset_dir),
                         "FEEDSVC_SNAPSHOT_DIR": str(snap)}).test_client()
    assert client.get("/feeds/all.rss").status_code == 200
    assert snapshots(snap) == []  # being written: served without waiting for it
    gate.set()
    saving.settle()
    [file] = snapshots(snap)
    found = snapshot.read_snapshot(file)
    assert found is not None and len(found.index.releases) == 10
