"""The dataset watcher outlives its dataset: a folder removed while it is watched again, or the
whole dataset deleted and restored, is still noticed (bench/faults.py's `delete` fault)."""
from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from inotify_simple import INotify

from feedsvc.operations import watcher as watching


def test_a_dataset_deleted_while_its_folders_are_watched_again_is_noticed_when_restored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, backup = tmp_path / "data", tmp_path / "backup"
    (data / "releases" / "2024").mkdir(parents=True)
    (data / "releases" / "2024" / "a.yaml").write_text("x: 1\n")
    shutil.copytree(data, backup)
    removed: list[str] = []

    class Removing(INotify):  # type: ignore[misc]
        """Delete the dataset just before its first subfolder is watched: what a deletion
        racing the watcher's walk over the folders does."""

        def add_watch(self, path: str, mask: int) -> int:
            if removed == [] and path.startswith(str(data / "releases")):
                shutil.rmtree(data)
                removed.append(path)
            found: int = super().add_watch(path, mask)
            return found

    monkeypatch.setattr(watching, "INotify", Removing)
    removed.append("not yet")  # the first walk, at the start, is left alone
    watcher = watching.Watcher(str(data), interval=5, backend="notify", settle=0.2)
    try:
        removed.clear()
        (data / "new").mkdir()  # a folder made: every folder is watched again, and meanwhile...
        assert watcher.wait(timeout=30) and watcher.take() is None
        assert removed and not data.exists()  # ...the dataset went, mid-walk
        shutil.copytree(backup, tmp_path / "data.new")
        (tmp_path / "data.new").rename(data)  # restored, as bench/faults.py does
        assert watcher.wait(timeout=30) and watcher.take() is None
        (data / "releases" / "2024" / "a.yaml").write_text("x: 2\n")  # its folders watched too
        assert watcher.wait(timeout=30)
        assert str(data / "releases" / "2024" / "a.yaml") in (watcher.take() or set())
    finally:
        watcher.stop()


def test_a_watcher_that_cannot_watch_again_looks_every_interval(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dataset's parent folder removed too: nothing left to watch, so the owner is told
    to look at every file each interval, until the folders can be watched again."""
    parent = tmp_path / "parent"
    (parent / "data").mkdir(parents=True)
    watcher = watching.Watcher(str(parent / "data"), interval=1, backend="notify", settle=0.2)
    try:
        shutil.rmtree(parent)
        assert watcher.wait(timeout=30) and watcher.take() is None
        while not watcher.blind:  # the parent's removal may come in a later read
            assert watcher.wait(timeout=30) and watcher.take() is None
        assert watcher.wait(timeout=None) and watcher.take() is None  # an interval: look again
        (parent / "data").mkdir(parents=True)
        assert watcher.wait(timeout=None)  # watched again at the next interval...
        assert not watcher.blind
        watcher.take()
        (parent / "data" / "a.yaml").write_text("x: 1\n")  # ...and told of changes again
        assert watcher.wait(timeout=30)
        assert str(parent / "data" / "a.yaml") in (watcher.take() or set())
    finally:
        watcher.stop()


def test_a_watcher_in_a_process_holding_many_files_still_notices(tmp_path: Path) -> None:
    """Its inotify descriptor numbered above 1023 (select() refuses those): still watched."""
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    watcher = watching.Watcher(str(tmp_path), interval=5, backend="notify", settle=0.2)
    try:
        (tmp_path / "a.yaml").write_text("x: 1\n")
        assert watcher.wait(timeout=30)
        assert str(tmp_path / "a.yaml") in (watcher.take() or set())
    finally:
        watcher.stop()
        for fd in held:
            os.close(fd)


def test_a_reader_that_fails_says_so_and_the_watcher_polls(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Its wait refused (as select() refused a descriptor above 1023): never a silent end."""
    failing = threading.Event()

    def readable(fd: int) -> None:
        failing.wait()
        raise ValueError("filedescriptor out of range in select()")
    monkeypatch.setattr(watching, "_readable", readable)
    watcher = watching.Watcher(str(tmp_path), interval=1, backend="notify", settle=0.2)
    try:
        assert not watcher.wait(timeout=0.3) and watcher.backend == "notify"
        (tmp_path / "a.yaml").write_text("x: 1\n")  # unread: the reader is about to fail
        failing.set()
        assert watcher.wait(timeout=30) and watcher.take() is None  # look at every file
        assert watcher.backend == "poll"
        assert [r.getMessage() for r in caplog.records if r.name == "feedsvc.watcher"] == [
            "dataset watch: notification reader failed (ValueError('filedescriptor out of range "
            "in select()')); polling every 1 s"]
        assert watcher.wait(timeout=None)  # each interval from then on (the owner looks at all)
    finally:
        watcher.stop()
