"""A cold start of a large dataset under the shipped gunicorn config (a gevent master), and
one killed in the middle."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import feedparser

from feedsvc.dataset.coldstart import CHILD_LOAD_BYTES
from feedsvc.dataset.statedir import state_file
from feedsvc.operations.synth import write_archive

from .servers import Server, start_gunicorn


def _get(server: Server, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=30) as answer:
        body: bytes = answer.read()
    return body


def test_a_large_dataset_is_parsed_in_child_processes_of_a_gunicorn_master(
        tmp_path: Path) -> None:
    data = write_archive(15_000, tmp_path / "data", split=True)
    assert sum(p.stat().st_size for p in data.rglob("*.yaml")) > CHILD_LOAD_BYTES
    env = {"FEEDSVC_DATA": str(data), "FEEDSVC_SNAPSHOT_DIR": str(tmp_path / "snap")}
    server = start_gunicorn(tmp_path, env=env, ready_s=180)
    try:
        log = server.log.read_text()
        assert "loaded in child processes (" in log and "load failed" not in log, server.tail()
        # Served at once, what was read; the look for changes made meanwhile comes after.
        feed = feedparser.parse(_get(server, "/feeds/all.atom?q=training"))
        assert feed.entries and all("training" in (e.title + e.summary).lower()
                                    for e in feed.entries)
        deadline = time.monotonic() + 60
        while (ready := json.loads(_get(server, "/readyz")))["dataset"]["start_check"] != "done":
            assert time.monotonic() < deadline, server.tail()
            time.sleep(0.1)
        assert (ready["status"], ready["dataset"]["releases"]) == ("ok", 15_000)
    finally:
        server.stop(60)  # a clean stop
    assert server.process.returncode == 0, server.tail()
    again = start_gunicorn(tmp_path, env=env, ready_s=180)
    again.stop(60)
    restarted = again.log.read_text()  # served from the state file: no file read again
    assert "served from its state file" in restarted and "child processes" not in restarted, \
        again.tail()


def test_a_cold_build_killed_midway_leaves_no_store_and_the_next_builds_it_whole(
        tmp_path: Path) -> None:
    data, state = write_archive(15_000, tmp_path / "data", split=True), tmp_path / "state"
    build = _killed_when(data, state, "*.stage-*/*.sqlite")  # the children are staging
    store = state_file(state, data, "sqlite")
    with sqlite3.connect(store) as conn:  # nothing of the build is in the store
        assert conn.execute("SELECT count(*) FROM releases").fetchone() == (0,)
        assert conn.execute("SELECT value FROM meta WHERE name = 'code'").fetchone() is None
    assert list(state.glob("*.stage-*"))  # what it left: removed by the next build
    assert subprocess.run(build, capture_output=True, check=False).returncode == 0
    assert not list(state.glob("*.stage-*"))
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM releases").fetchone() == (15_000,)


def test_a_cold_build_killed_while_writing_its_new_file_leaves_nothing_after_the_next_start(
        tmp_path: Path) -> None:
    data, state = write_archive(15_000, tmp_path / "data", split=True), tmp_path / "state"
    _killed_when(data, state, "*.stage-*/store.sqlite")  # the new store is being written
    store = state_file(state, data, "sqlite")
    with sqlite3.connect(store) as conn:  # the file in place is not a half store
        assert conn.execute("SELECT value FROM meta WHERE name = 'code'").fetchone() is None
    server = start_gunicorn(tmp_path, env={"FEEDSVC_DATA": str(data),
                                           "FEEDSVC_SNAPSHOT_DIR": str(state)}, ready_s=180)
    try:
        assert not list(state.glob("*.stage-*")), server.tail()
        ready = json.loads(_get(server, "/readyz"))
        assert (ready["status"], ready["dataset"]["releases"]) == ("ok", 15_000), server.tail()
        feed = json.loads(_get(server, "/feeds/all.json?limit=5"))
        assert len(feed["items"]) == 5
    finally:
        server.stop(60)
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM releases").fetchone() == (15_000,)


def _killed_when(data: Path, state: Path, pattern: str) -> list[str]:
    """Start `feedsvc snapshot` of `data` into `state`; SIGKILL it and its loading processes
    the moment a file matching `pattern` exists in `state`; return the command."""
    build = [sys.executable, "-m", "feedsvc", "snapshot", str(data), "--dir", str(state)]
    first = subprocess.Popen(build, start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(state.glob(pattern)):
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    return build
