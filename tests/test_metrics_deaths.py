"""Dead gunicorn workers' metric files: folded into the sums, so scrapes do not grow with deaths.

Each worker writes counter_<pid>.db and histogram_<pid>.db; before, a killed worker's files
stayed and every later scrape read them all. The shipped child_exit hook now retires them.
"""
from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from . import servers

FEED_RULE = "/feeds/all.<any(rss, atom, json):fmt>"
DEATHS = 20


def get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        assert response.status == 200
        return bytes(response.read())


def feeds_answered(port: int) -> float:
    text = get(port, "/metrics").decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "feedsvc_http_requests_total" and s.labels.get("route") == FEED_RULE)


def until(what: object, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not what():  # type: ignore[operator]
        assert time.monotonic() < deadline, "deadline passed"
        time.sleep(0.05)


def test_killed_workers_leave_no_files_and_lose_no_counts(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    server = servers.start_gunicorn(tmp_path, ready_path="/healthz", env={
        "PROMETHEUS_MULTIPROC_DIR": str(directory), "FEEDSVC_BASE_URL": "https://x.example/"})
    try:
        asked = 0
        for _ in range(DEATHS):
            for _ in range(4):
                get(server.port, "/feeds/all.rss")
                asked += 1
            pid = json.loads(get(server.port, "/readyz"))["service"]["pid"]
            assert (directory / f"counter_{pid}.db").exists()
            os.kill(pid, signal.SIGKILL)
            until(lambda: not (directory / f"counter_{pid}.db").exists())  # noqa: B023
        files = sorted(p.name for p in directory.glob("*.db"))
        # Two live workers' own files at most, and one archive per kind: not 2 files a death.
        assert len(files) <= 2 * 2 + 2, files
        assert {"counter_archive.db", "histogram_archive.db"} <= set(files)
        assert feeds_answered(server.port) == asked  # the dead workers' counts are all there
    finally:
        server.stop()
