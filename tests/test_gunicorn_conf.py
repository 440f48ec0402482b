"""deploy/gunicorn.conf.py's hooks, called directly (the real server is in test_gunicorn.py)."""
from __future__ import annotations

import atexit
import gc
import json
import os
import re
import runpy
import sys
import urllib.request
from pathlib import Path
from types import SimpleNamespace
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


@pytest.mark.parametrize("code", [0, 3, -1])
def test_worker_exit_ends_a_worker_at_once_with_the_status_gunicorn_gave(
        conf: dict[str, Any], tmp_path: Path, code: int) -> None:
    # As gunicorn's worker ends: sys.exit(code), and the hook in its `finally`. The
    # interpreter's teardown (atexit, freeing every object) must not run: it would cost
    # seconds per worker with a large dataset, and copy every page shared with the master.
    torn_down = tmp_path / "torn-down"
    pid = os.fork()
    if pid == 0:  # the worker
        try:
            atexit.register(torn_down.write_text, "the interpreter's teardown ran")
            try:
                sys.exit(code)
            finally:
                conf["worker_exit"](None, SimpleNamespace(pid=os.getpid()))
        finally:
            os._exit(99)  # only if the hook returned
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == code % 256
    assert not torn_down.exists()


def test_worker_exit_in_the_master_leaves_the_master_running(conf: dict[str, Any]) -> None:
    # gunicorn calls the hook in the master too, for a worker it found already gone when it
    # meant to signal it (Arbiter.kill_worker, ESRCH): a SIGHUP storm made the master end
    # silently there. Run as a forked "master", which must go on after the hook.
    pid = os.fork()
    if pid == 0:
        try:
            conf["worker_exit"](None, SimpleNamespace(pid=os.getpid() + 1))
            os._exit(7)  # went on
        finally:
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 7


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
