"""Under real gunicorn (deploy/gunicorn.conf.py, 2 workers): a failed reload and SIGHUP never
end the master; every worker keeps the last good data and says degraded; the next SIGHUP
after the fault is gone reloads; SIGTERM still stops gracefully. And issue 21's sequence (a
release with a picture, another edit, then an edit of it) reaches every worker.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .test_gunicorn import ROOT, Server, start, stop, until
from .test_gunicorn_reload import every_worker
from .test_reload_stateful import _png

WORKERS = 2
# The shipped config, then the fault: a test's own config (never a switch in production).
CONF = """import sys
sys.path.insert(0, {root!r})
exec(compile(open({deploy!r}).read(), {deploy!r}, "exec"))
import tests.reload_fault  # noqa: E402,F401
"""


@pytest.fixture
def fault(tmp_path: Path) -> Path:
    return tmp_path / "fault-on"


@pytest.fixture
def server(dataset_dir: Path, tmp_path: Path, fault: Path) -> Iterator[Server]:
    conf = tmp_path / "gunicorn-fault.conf.py"
    conf.write_text(CONF.format(root=str(ROOT), deploy=str(ROOT / "deploy/gunicorn.conf.py")),
                    encoding="utf-8")
    running = start(dataset_dir, tmp_path / "gunicorn.log", 1, WORKERS,
                    {"RELOAD_FAULT_FILE": str(fault)}, conf=str(conf))
    yield running
    stop(running)


def settled(server: Server, want: Callable[[dict[str, Any]], bool]) -> None:
    """Wait until every worker answers as wanted; else fail with the end of the server's log."""
    try:
        until(every_worker(server, WORKERS, want))
    except AssertionError as error:
        tail = "\n".join(server.log.read_text(errors="replace").splitlines()[-40:])
        raise AssertionError(f"{error}; the server's log ends:\n{tail}") from None


def feed(server: Server) -> str:
    code, _, body = server.get("/feeds/all.rss")
    assert code == 200
    return body.decode()


def edit_summary(path: Path, text: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    start_at = next(i for i, line in enumerate(lines) if line.startswith("summary:"))
    end = next((i for i in range(start_at + 1, len(lines))
                if lines[i] and not lines[i].startswith(" ")), len(lines))
    lines[start_at:end] = [f"summary: {text}"]
    partial = path.with_name(f".{path.name}.partial")  # complete when it appears
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    partial.replace(path)


def test_a_failed_reload_and_sighup_never_end_the_master(server: Server, dataset_dir: Path,
                                                         fault: Path) -> None:
    server.expect_failure = True
    release = dataset_dir / "releases" / "pr-2005-002.yaml"
    fault.touch()
    edit_summary(release, "Edited while the reload is broken.")
    settled(server, lambda r: r["status"] == "degraded"
            and "InjectedFault" in (r["dataset"]["last_reload_error"] or ""))
    assert "Edited while the reload is broken." not in feed(server)
    server.process.send_signal(signal.SIGHUP)  # still failing: the master must survive it
    settled(server, lambda r: r["status"] == "degraded")
    assert server.process.poll() is None
    fault.unlink()
    server.process.send_signal(signal.SIGHUP)
    settled(server, lambda r: r["status"] == "ok")
    assert "Edited while the reload is broken." in feed(server)
    stop(server)
    assert server.process.returncode == 0  # SIGTERM's graceful stop, not a kill
    log = server.log.read_text(errors="replace")
    assert log.count("dataset reload failed: InjectedFault") == 1, log  # logged once
    assert "Unhandled exception in main loop" not in log


def test_an_edit_of_a_release_with_a_picture_reaches_every_worker(
        server: Server, dataset_dir: Path) -> None:
    (dataset_dir / "media" / "photos").mkdir(parents=True)
    (dataset_dir / "media" / "photos" / "workers.png").write_bytes(_png(200))
    env = dict(os.environ, FEEDSVC_DATA=str(dataset_dir))
    made = subprocess.run(
        [sys.executable, "-m", "feedsvc", "new", "--data", str(dataset_dir), "--title",
         "Picture release", "--country", "TH", "--topic", "social-security", "--summary",
         "With a picture.", "--image", "photos/workers.png", "--alt", "a"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    new = next(p for p in (dataset_dir / "releases").rglob("*.yaml")
               if "Picture release" in p.read_text(encoding="utf-8"))
    until(lambda: "With a picture." in feed(server))
    edit_summary(dataset_dir / "releases" / "pr-2004-001.yaml", "Another release edited.")
    until(lambda: "Another release edited." in feed(server))
    edit_summary(new, "The picture release, edited.")
    until(every_worker(server, WORKERS, lambda r: r["status"] == "ok"
                       and r["dataset"]["releases"] == 11))
    until(lambda: "The picture release, edited." in feed(server))
    server.process.send_signal(signal.SIGHUP)
    until(every_worker(server, WORKERS, lambda r: r["status"] == "ok"))
    assert server.process.poll() is None, made.stdout
    ready = json.loads(server.get("/readyz")[2])
    assert ready["dataset"]["last_reload_error"] is None


# The shipped config, with workers slow to set themselves up after the fork (test-only).
SLOW_BOOT = """import sys, time
sys.path.insert(0, {root!r})
exec(compile(open({deploy!r}).read(), {deploy!r}, "exec"))
_post_fork = post_fork  # noqa: F821


def post_fork(server, worker):
    time.sleep(2)  # before the worker's own signal handlers: as on a loaded machine
    _post_fork(server, worker)
"""


def test_a_reload_while_workers_still_start_reaches_every_worker(
        dataset_dir: Path, tmp_path: Path) -> None:
    conf = tmp_path / "gunicorn-slow.conf.py"
    conf.write_text(SLOW_BOOT.format(root=str(ROOT),
                                     deploy=str(ROOT / "deploy/gunicorn.conf.py")),
                    encoding="utf-8")
    server = start(dataset_dir, tmp_path / "gunicorn.log", 1, WORKERS, conf=str(conf))
    try:
        until(lambda: server.get("/readyz")[0] == 200)
        edit_summary(dataset_dir / "releases" / "pr-2004-001.yaml", "First edit.")
        until(lambda: "dataset reloaded" in server.log.read_text(errors="replace"))
        # Workers may still be starting when this edit is committed: each reads the store's
        # version at its next request, whenever it came up.
        edit_summary(dataset_dir / "releases" / "pr-2005-002.yaml", "Second edit.")
        until(lambda: all("Second edit." in feed(server) for _ in range(4 * WORKERS)))
        settled(server, lambda r: r["status"] == "ok")
    finally:
        stop(server)


def test_a_sighup_during_a_check_is_loaded_after_it(dataset_dir: Path, tmp_path: Path) -> None:
    """The watcher's look (polling, once an hour) holds after reading the files; an edit and
    SIGHUP meanwhile: once the look ends, the SIGHUP's look runs and every worker serves it."""
    conf = tmp_path / "gunicorn-hold.conf.py"
    conf.write_text(CONF.format(root=str(ROOT), deploy=str(ROOT / "deploy/gunicorn.conf.py"))
                    .replace("tests.reload_fault", "tests.reload_hold"), encoding="utf-8")
    hold = tmp_path / "hold"
    hold.touch()  # the first look, at start, holds
    server = start(dataset_dir, tmp_path / "gunicorn.log", 3600, WORKERS,
                   {"RELOAD_HOLD_FILE": str(hold), "FEEDSVC_RELOAD_WATCH": "poll"},
                   conf=str(conf))
    try:
        until(Path(f"{hold}.reached").exists)
        version = json.loads(server.get("/readyz")[2])["dataset"]["version"]
        edit_summary(dataset_dir / "releases" / "pr-2005-002.yaml", "Edited during a check.")
        server.process.send_signal(signal.SIGHUP)
        until(lambda: b"HUP: a dataset check is running" in server.log.read_bytes())
        hold.unlink()
        settled(server, lambda r: r["status"] == "ok" and r["dataset"]["version"] != version)
        assert "Edited during a check." in feed(server)
    finally:
        stop(server)
