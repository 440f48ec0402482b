"""The dataset watch is set up while the workers serve (at a million files, a scandir of every
folder takes seconds), and no file written meanwhile is missed: under the shipped config."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from .servers import ROOT
from .test_gunicorn import start, stop, until
from .test_gunicorn_reload import every_worker, ok_with, worker_pids

WORKERS = 2
RELEASE = "releases/pr-2005-002.yaml"
CONF = """import sys
sys.path.insert(0, {root!r})
exec(compile(open({deploy!r}).read(), {deploy!r}, "exec"))
import tests.watch_hold  # noqa: E402,F401
"""


def add(data: Path, rid: str) -> None:
    text = (data / RELEASE).read_text(encoding="utf-8").replace("pr-2005-002", rid)
    (data / "releases" / f"{rid}.yaml").write_text(text, encoding="utf-8")


@pytest.mark.parametrize("start_kind", ["cold", "restart", "restart-checked"])
def test_workers_serve_while_the_watch_is_set_up_and_no_file_is_missed(
        dataset_dir: Path, tmp_path: Path, start_kind: str) -> None:
    conf = tmp_path / "conf.py"
    conf.write_text(CONF.format(root=str(ROOT), deploy=str(ROOT / "deploy/gunicorn.conf.py")))
    hold = tmp_path / "hold"
    state = str(tmp_path / "state")  # by both its names (the tests' session sets the older)
    env = {"WATCH_HOLD_FILE": str(hold), "FEEDSVC_STATE_DIR": state, "FEEDSVC_SNAPSHOT_DIR": state}
    if start_kind == "restart-checked":  # the files compared before serving: again after
        env["FEEDSVC_START_CHECK"] = "wait"
    if start_kind != "cold":  # a first run leaves the state a restart serves from
        stop(start(dataset_dir, tmp_path / "first.log", 1, WORKERS, env, conf=str(conf)))
    hold.touch()
    server = start(dataset_dir, tmp_path / "gunicorn.log", 1, WORKERS, env, conf=str(conf))
    try:
        until((tmp_path / "hold.reached").exists)  # the watch is half set up...
        until(lambda: len(worker_pids(server)) == WORKERS)
        count = json.loads(server.get("/readyz")[2])["dataset"]["releases"]
        for _ in range(4 * WORKERS):  # ...and every worker serves meanwhile
            assert server.get("/feeds/all.rss")[0] == 200
        add(dataset_dir, "written-during-setup")  # in releases/, not watched yet
        hold.unlink()
        until(every_worker(server, WORKERS, ok_with(count + 1)))
        add(dataset_dir, "written-after-setup")  # told by the watch
        until(every_worker(server, WORKERS, ok_with(count + 2)))
        for rid in ("written-during-setup", "written-after-setup"):
            assert server.get(f"/releases/{rid}")[0] == 200
    finally:
        stop(server)
