"""A cold start of a large dataset under the shipped gunicorn config (a gevent master)."""
from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import feedparser

from feedsvc.dataset.coldstart import CHILD_LOAD_BYTES
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
