"""deploy/gunicorn.conf.py's hooks, called directly (the real server is in test_gunicorn.py)."""
from __future__ import annotations

import gc
import json
import re
import runpy
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .servers import GUNICORN_CONF as CONF
from .servers import start_gunicorn

# feedsvc.logs.TextFormatter: `time LEVEL logger message key=value ...`
TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
                       r"(?P<logger>[\w.]+) ")


@pytest.fixture
def conf(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    # As on a HUP re-read: the metrics directory is already set up, nothing is created.
    monkeypatch.setenv("_FEEDSVC_METRICS_DIR", "/nonexistent")
    return runpy.run_path(str(CONF))


def test_pre_fork_freezes_the_loaded_objects_so_workers_do_not_copy_them(
        conf: dict[str, Any]) -> None:
    # Without the freeze, a worker's full collection dirties every page it shares with the
    # master: bench/soak.py saw each worker's PSS grow 32% in 5 minutes at flat RSS.
    assert gc.get_freeze_count() == 0
    try:
        conf["pre_fork"](None, None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


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
