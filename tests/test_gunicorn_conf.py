"""deploy/gunicorn.conf.py's hooks, called directly (the real server is in test_gunicorn.py)."""
from __future__ import annotations

import json
import re
import runpy
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .servers import GUNICORN_CONF as CONF
from .servers import start_gunicorn

# feedsvc.operations.logs.TextFormatter: `time LEVEL logger message key=value ...`
TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
                       r"(?P<logger>[\w.]+) ")


@pytest.fixture
def conf(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    # As on a HUP re-read: the metrics directory is already set up, nothing is created.
    monkeypatch.setenv("_FEEDSVC_METRICS_DIR", "/nonexistent")
    return runpy.run_path(str(CONF))


def test_workers_are_neither_frozen_nor_cut_short_nor_reforked(conf: dict[str, Any]) -> None:
    # The store is shared through the kernel's page cache, not the master's heap: nothing to
    # freeze before a fork, nothing to spare at a worker's exit, no re-fork on publish.
    assert not {"pre_fork", "worker_exit", "refork_workers"} & conf.keys()
    assert conf["preload_app"] is True  # the master opens (or builds) the store, and writes it


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_gunicorn_lines_have_the_format_of_feedsvc_lines(tmp_path: Path, fmt: str) -> None:
    server = start_gunicorn(tmp_path, workers=1, env={"FEEDSVC_LOG_FORMAT": fmt})
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=10):
            pass
    finally:
        server.stop()
    loggers = []
    for line in server.log.read_text().splitlines():
        if fmt == "json":
            loggers.append(json.loads(line)["logger"])
        else:
            found = TEXT_LINE.match(line)
            assert found, line
            loggers.append(found["logger"])
    # One access line per request, feedsvc's (the readiness poll's, then /healthz's).
    assert "gunicorn.error" in loggers and "gunicorn.access" not in loggers
    assert loggers.count("feedsvc.access") == 2
