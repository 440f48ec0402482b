"""gunicorn's binary upgrade (USR2) under the shipped config: the new master says it is not
supported and stops; the old master, its workers and its deliverer go on serving."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from .servers import ROOT, free_port
from .test_gunicorn import Server, stop, until


def children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def test_usr2_is_refused_by_the_new_master_and_the_old_one_serves_on(dataset_dir: Path,
                                                                      tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "gunicorn.log"
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(FEEDSVC_BIND=f"127.0.0.1:{port}", FEEDSVC_WORKERS="2",
               FEEDSVC_DATA=str(dataset_dir), FEEDSVC_BASE_URL="https://feeds.example.org/",
               FEEDSVC_STATE_DIR=str(tmp_path / "state"), FEEDSVC_SNAPSHOT_DIR="",
               TMPDIR=str(tmp_path))
    # The console script, as the systemd unit runs it: USR2 execs the master's own argv again
    # (`python -m gunicorn` would run gunicorn/__main__.py, whose gunicorn/http hides the
    # standard library's http).
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    with log.open("wb") as out:
        process = subprocess.Popen([gunicorn, "-c", "deploy/gunicorn.conf.py", "wsgi:app"],
                                   cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log, tmp_path)
    try:
        until(lambda: _answers(server), 30)
        until(lambda: len(children(process.pid)) == 3)  # two workers and the deliverer
        before, feed = children(process.pid), server.get("/feeds/all.rss")[2]
        process.send_signal(signal.SIGUSR2)
        said = ("feedsvc: not starting: gunicorn's binary upgrade (USR2) is not supported: "
                f"master {process.pid} goes on serving; restart the service to run new code")
        until(lambda: said in log.read_text())
        until(lambda: children(process.pid) == before)  # the new master ended, nothing else
        assert "give each its own" not in log.read_text()  # not taken for another instance
        status, _, body = server.get("/feeds/all.rss")
        assert status == 200 and body == feed and process.poll() is None
    finally:
        stop(server)


def _answers(server: Server) -> bool:
    assert server.process.poll() is None, server.log.read_text()
    try:
        return server.get("/healthz")[0] == 200
    except OSError:
        return False
