"""The state file under a real gunicorn (gevent workers, the shipped config): what a crash
inside a publish, a damaged or missing file and a second instance on the same directory do
to what is served. Every claim is checked through HTTP, and the file with SQLite itself."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from feedsvc import create_app
from feedsvc.dataset.statedir import NO_STATE, state_file

from .servers import ROOT, free_port
from .test_gunicorn import Server, start, stop, until
from .test_gunicorn_reload import every_worker, worker_pids

WORKERS = 2
RELEASE = "releases/pr-2005-002.yaml"
CONF = """import sys
sys.path.insert(0, {root!r})
exec(compile(open({deploy!r}).read(), {deploy!r}, "exec"))
import tests.state_hold  # noqa: E402,F401
"""


def edit(data: Path, title: str) -> None:
    path = data / RELEASE
    text = path.read_text(encoding="utf-8")
    old = next(line for line in text.splitlines() if line.startswith("title:"))
    path.write_text(text.replace(old, f"title: {title}"), encoding="utf-8")


def cold(data: Path) -> Flask:
    """An app started from nothing on the same files: what the service must serve."""
    return create_app({"FEEDSVC_DATA": str(data), "FEEDSVC_BASE_URL": "https://feeds.example.org/",
                       "FEEDSVC_SNAPSHOT_DIR": None})


def version_of(app: Flask) -> str:
    return str(app.test_client().get("/readyz").get_json()["dataset"]["version"])


def serving(server: Server, version: str) -> Callable[[], bool]:
    return every_worker(server, WORKERS, lambda r: r["dataset"]["version"] == version)


def launch(data: Path, tmp: Path, name: str, state: Path, **extra: str) -> Server:
    return start(data, tmp / f"{name}.log", 1, WORKERS,
                 {**at(state), **extra})


def at(state: Path) -> dict[str, str]:
    """The state directory, by both its names (the tests' session sets the older one)."""
    return {"FEEDSVC_STATE_DIR": str(state), "FEEDSVC_SNAPSHOT_DIR": str(state)}


def test_a_publish_reaches_every_worker_without_a_refork(dataset_dir: Path,
                                                        tmp_path: Path) -> None:
    server = launch(dataset_dir, tmp_path, "g", tmp_path / "state")
    try:
        until(serving(server, version_of(cold(dataset_dir))))
        pids = worker_pids(server)
        edit(dataset_dir, "Published while serving")
        until(serving(server, version_of(cold(dataset_dir))))
        assert worker_pids(server) == pids  # the same workers read the new commit
        body = server.get("/feeds/all.rss")[2]
        assert b"Published while serving" in body
    finally:
        stop(server)


def test_a_kill_inside_the_publish_transaction_restarts_to_the_last_commit(
        dataset_dir: Path, tmp_path: Path) -> None:
    state, hold = tmp_path / "state", tmp_path / "hold"
    conf = tmp_path / "gunicorn-hold.conf.py"
    conf.write_text(CONF.format(root=str(ROOT), deploy=str(ROOT / "deploy/gunicorn.conf.py")),
                    encoding="utf-8")
    before = version_of(cold(dataset_dir))
    server = launch(dataset_dir, tmp_path, "first", state, STATE_HOLD_FILE=str(hold))
    server.expect_failure = True
    server.process.terminate()
    server.process.wait(timeout=20)  # the first start built the store; now the held one
    server = start(dataset_dir, tmp_path / "held.log", 1, WORKERS,
                   {**at(state), "STATE_HOLD_FILE": str(hold)},
                   conf=str(conf))
    hold.touch()
    until(lambda: len(worker_pids(server)) == WORKERS)  # every one: each holds the lock
    workers = worker_pids(server)
    edit(dataset_dir, "Written when the master died")
    until(Path(f"{hold}.reached").exists)  # the master is inside the write transaction
    for pid in (server.process.pid, *workers):
        os.kill(pid, signal.SIGKILL)
    server.process.wait(timeout=20)
    # SIGKILL is delivered, not awaited: until the last of them has exited, the instance's
    # lock is held (inherited by every worker), and a restart is refused.
    until(lambda: all(_exited(pid) for pid in workers))
    hold.unlink()
    store = state_file(state, dataset_dir, "sqlite")
    with sqlite3.connect(store) as conn:  # SQLite's own recovery: the WAL's last commit
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT value FROM meta WHERE name = 'version'").fetchone() \
            == (before,)
    server = launch(dataset_dir, tmp_path, "after", state)
    try:  # served at once, then the start check publishes the file, on every worker
        until(serving(server, version_of(cold(dataset_dir))))
        assert b"Written when the master died" in server.get("/feeds/all.rss")[2]
        assert "unusable" not in server.log.read_text()  # the file was used, not rebuilt
    finally:
        stop(server)


def _exited(pid: int) -> bool:
    """Tell whether a process has exited (gone, or a zombie not yet reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _deleted(store: Path) -> None:
    store.unlink()


def _truncated(store: Path) -> None:
    store.write_bytes(store.read_bytes()[: store.stat().st_size // 2])


def _garbage(store: Path) -> None:
    store.write_bytes(b"\x00garbage\xff" * 4096)


@pytest.mark.parametrize("damage", [_deleted, _truncated, _garbage])
def test_a_damaged_state_file_starts_from_the_yaml(dataset_dir: Path, tmp_path: Path,
                                                  damage: Callable[[Path], None]) -> None:
    state = tmp_path / "state"
    first = launch(dataset_dir, tmp_path, "first", state)
    stop(first)  # a clean stop: the WAL checkpointed into the file
    store = state_file(state, dataset_dir, "sqlite")
    damage(store)
    for side in ("-wal", "-shm"):
        Path(f"{store}{side}").unlink(missing_ok=True)
    server = launch(dataset_dir, tmp_path, "second", state)
    try:
        expected = cold(dataset_dir)
        until(serving(server, version_of(expected)))
        assert server.get("/feeds/all.atom")[2] == expected.test_client().get(
            "/feeds/all.atom").get_data()
        lines = [json.loads(line)["message"] for line in server.log.read_text().splitlines()
                 if line.startswith("{") and str(store) in line]
        says = "was missing: built from the YAML" if damage is _deleted else "unusable"
        assert len(lines) == 1 and says in lines[0], lines  # one line, naming the file
        ready = json.loads(server.get("/readyz")[2])
        assert (ready["status"], ready["dataset"]["state"]) == ("ok", "persistent")
    finally:
        stop(server)


def test_an_unusable_state_directory_serves_and_says_restarts_will_cold_start(
        dataset_dir: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)  # others could plant a file in it: not used
    server = launch(dataset_dir, tmp_path, "g", state)
    try:
        until(serving(server, version_of(cold(dataset_dir))))
        ready = json.loads(server.get("/readyz")[2])
        assert ready["status"] == "ok" and ready["dataset"]["state"].startswith(NO_STATE)
        assert str(state) in ready["dataset"]["state"]
    finally:
        stop(server)


@pytest.mark.parametrize("session", ["own session", "same parent"])
def test_a_second_instance_on_the_same_state_directory_refuses_to_start(
        dataset_dir: Path, tmp_path: Path, session: str) -> None:
    """A second shipped-config master on the directory, as systemd or a container starts it
    (its own session), or started by the same parent as the first (a test, a supervisor: the
    same parent pid and process group), refuses to start; the first keeps its file and serves."""
    state = tmp_path / "state"
    server = launch(dataset_dir, tmp_path, "first", state)
    try:
        until(serving(server, version_of(cold(dataset_dir))))
        store = state_file(state, dataset_dir, "sqlite")
        before = _file_identity(store)
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        env.update(FEEDSVC_BIND=f"127.0.0.1:{free_port()}", FEEDSVC_WORKERS="2",
                   FEEDSVC_DATA=str(dataset_dir), **at(state))
        second = subprocess.run([sys.executable, "-m", "gunicorn", "-c",
                                 "deploy/gunicorn.conf.py", "wsgi:app"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=60,
                                start_new_session=session == "own session")
        assert second.returncode != 0
        assert (f"state directory {state} is in use by another feedsvc instance (pid "
                f"{server.process.pid}); give each its own FEEDSVC_STATE_DIR") in second.stderr
        assert _file_identity(store) == before  # not moved aside, not written to
        assert sorted(path.name for path in state.iterdir() if ".bad" in path.name) == []
        status, _, body = server.get("/feeds/all.rss")  # the first goes on serving its data
        assert status == 200 and body == cold(dataset_dir).test_client().get(
            "/feeds/all.rss").get_data()
    finally:
        stop(server)
    after = launch(dataset_dir, tmp_path, "after", state)  # once it ends, the next may start
    try:
        until(serving(after, version_of(cold(dataset_dir))))
        assert "unusable" not in after.log.read_text()  # the first's file, used as it is
    finally:
        stop(after)


def _file_identity(store: Path) -> tuple[int, int, int, bytes]:
    found = store.stat()
    return found.st_ino, found.st_size, found.st_mtime_ns, store.read_bytes()


def test_plain_gunicorn_workers_share_one_state_directory(dataset_dir: Path,
                                                          tmp_path: Path) -> None:
    """`gunicorn -w 3` without the shipped config: every worker starts the app, they are
    instance-mates (not refused), and every one serves the same version."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    port = free_port()
    env.update(FEEDSVC_DATA=str(dataset_dir), FEEDSVC_BASE_URL="https://feeds.example.org/",
               **at(tmp_path / "state"))
    log = tmp_path / "plain.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "3", "-b",
                                    f"127.0.0.1:{port}", "wsgi:app"], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log, tmp_path)
    try:
        expected = version_of(cold(dataset_dir))
        until(lambda: process.poll() is None and _answers(server))
        until(every_worker(server, 3, lambda r: r["dataset"]["version"] == expected
                           and r["dataset"]["state"] == "persistent"))
        # One of them holds the lock (and writes); the others read the same file.
        holder = int(state_file(tmp_path / "state", dataset_dir, "lock").read_text().split()[0])
        assert holder in worker_pids(server)
        # Starting together, they took turns: none failed to boot (two creating one store).
        assert b"Exception in worker process" not in log.read_bytes()
    finally:
        stop(server)


def _answers(server: Server) -> bool:
    try:
        return server.get("/healthz")[0] == 200
    except OSError:
        return False


def test_a_publish_a_full_disk_refuses_is_said_by_every_worker(dataset_dir: Path,
                                                               tmp_path: Path) -> None:
    """The master's publish and its status both refused (the store's disk is full): workers,
    which read what the master says from the store, must still say degraded, not ok."""
    state, full = tmp_path / "state", tmp_path / "full"
    conf = tmp_path / "gunicorn-full.conf.py"
    conf.write_text(CONF.format(root=str(ROOT), deploy=str(ROOT / "deploy/gunicorn.conf.py"))
                    .replace("tests.state_hold", "tests.state_full"), encoding="utf-8")
    server = start(dataset_dir, tmp_path / "full.log", 1, WORKERS,
                   {**at(state), "STATE_FULL_FILE": str(full)}, conf=str(conf))
    server.expect_failure = True
    try:
        until(serving(server, version_of(cold(dataset_dir))))
        before = version_of(cold(dataset_dir))
        full.touch()
        edit(dataset_dir, "Not written as the disk is full")
        until(every_worker(server, WORKERS, lambda r: r["status"] == "degraded" and r[
            "dataset"]["last_reload_error"].startswith(
                "state not written: OperationalError: database or disk is full")))
        assert b"Not written" not in server.get("/feeds/all.rss")[2]  # the last commit
        assert every_worker(server, WORKERS, lambda r: r["dataset"]["version"] == before)()
        full.unlink()  # room again: the next change is written, and said by every worker
        edit(dataset_dir, "Written once the disk has room")
        until(every_worker(server, WORKERS, lambda r: r["status"] == "ok"))
        assert b"Written once the disk has room" in server.get("/feeds/all.rss")[2]
    finally:
        stop(server)
