"""A restart on a Kubernetes ConfigMap dataset (every file a link through `..data`) serves the
last good data when the files on disk are invalid, under real gunicorn (deploy/gunicorn.conf.py).

With FEEDSVC_START_CHECK=background (the shipped setting) it serves the snapshot and its
journal (the reloads since), and the first look rejects the invalid files and says degraded;
with FEEDSVC_START_CHECK=wait it refuses to start, naming the file.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import feedparser

from feedsvc.config import BUNDLED_DATA

from .servers import free_port
from .test_faults_functional import answers
from .test_gunicorn import ROOT, Server, start, stop, until

EDITED = "releases/pr-2005-002.yaml"
BROKEN = "releases/pr-2005-001.yaml"


class ConfigMap:
    """A dataset laid out, and updated, as the kubelet does a ConfigMap volume: each version
    in a new timestamped hidden folder, `..data` a link to it swapped by a rename, the
    top-level entries links through `..data`, the previous folder then removed."""

    def __init__(self, root: Path) -> None:
        self.root, self.count = root, 0
        root.mkdir()

    def publish(self, files: dict[str, str]) -> None:
        self.count += 1
        payload = self.root / f"..2026_12_07_00_00_{self.count:02d}.000000000"
        for path, text in files.items():
            (payload / path).parent.mkdir(parents=True, exist_ok=True)
            (payload / path).write_text(text, encoding="utf-8")
        old = (self.root / "..data").resolve() if (self.root / "..data").exists() else None
        link = self.root / "..data_tmp"
        link.symlink_to(payload.name)
        os.replace(link, self.root / "..data")
        for top in {path.split("/")[0] for path in files}:
            if not (self.root / top).is_symlink():
                (self.root / top).symlink_to(f"..data/{top}")
        if old is not None:
            shutil.rmtree(old)


def bundled() -> dict[str, str]:
    return {str(path.relative_to(BUNDLED_DATA)): path.read_text(encoding="utf-8")
            for path in sorted(BUNDLED_DATA.rglob("*.yaml"))}


def retitled(files: dict[str, str], title: str) -> dict[str, str]:
    text = files[EDITED]
    line = next(line for line in text.splitlines() if line.startswith("title:"))
    return {**files, EDITED: text.replace(line, f"title: {title}")}


def broken(files: dict[str, str]) -> dict[str, str]:
    text = files[BROKEN].replace("topics: [", "topics: [no-such-topic, ", 1)
    assert text != files[BROKEN]
    return {**files, BROKEN: text}


def settles(server: Server, want: tuple[str, str]) -> None:
    """Wait until every worker serves `want[0]` and says `want[1]`; else say what they said."""
    seen: list[dict[int, set[tuple[str, str]]]] = []

    def agree() -> bool:
        seen.append(answers(server))
        return set().union(*seen[-1].values()) == {want}
    try:
        until(agree)
    except AssertionError:
        raise AssertionError(f"wanted {want} from every worker; last answers {seen[-1:]}") from None


def moved_from(server: Server, *old: str) -> str:
    """Wait until a worker serves a version other than `old`; return that version (asking
    again could reach a worker not yet re-forked)."""
    seen: list[str] = []

    def moved() -> bool:
        seen.append(version_of(server))
        return seen[-1] not in old
    until(moved)
    return seen[-1]


def version_of(server: Server) -> str:
    found: str = json.loads(server.get("/readyz")[2])["dataset"]["version"]
    return found


def titles(server: Server) -> set[str]:
    status, _, body = server.get("/feeds/all.atom")
    assert status == 200
    return {entry.title for entry in feedparser.parse(body).entries}


def test_a_restart_on_invalid_configmap_data_serves_the_last_good_data_and_says_degraded(
        tmp_path: Path) -> None:
    files = bundled()
    volume = ConfigMap(tmp_path / "volume")
    volume.publish(files)
    server = start(volume.root, tmp_path / "first.log", 1,
                   extra={"FEEDSVC_SNAPSHOT_DIR": str(tmp_path / "state")})
    try:
        first = version_of(server)
        settles(server, (first, "ok"))
        volume.publish(retitled(files, "Published before the restart"))  # a reload: journal
        good = moved_from(server, first)
        settles(server, (good, "ok"))
    finally:
        stop(server)
    volume.publish(broken(retitled(files, "Invalid, never served")))
    server = start(volume.root, tmp_path / "second.log", 1,
                   extra={"FEEDSVC_SNAPSHOT_DIR": str(tmp_path / "state")})
    try:
        settles(server, (good, "degraded"))
        error = json.loads(server.get("/readyz")[2])["dataset"]["last_reload_error"]
        assert f"{BROKEN.split('/')[1]}" in error and "no-such-topic" in error
        assert "Published before the restart" in titles(server)
        assert "Invalid, never served" not in titles(server)
        volume.publish(retitled(files, "Fixed after the restart"))  # the next valid data
        fixed = moved_from(server, first, good)
        settles(server, (fixed, "ok"))
        assert "Fixed after the restart" in titles(server)
    finally:
        stop(server)
    assert "dataset check failed" not in server.log.read_text()
    # Under FEEDSVC_START_CHECK=wait, invalid data on disk still stops the start, named.
    volume.publish(broken(files))
    refused = start_and_wait(volume.root, {"FEEDSVC_START_CHECK": "wait"})
    assert refused.returncode != 0
    said = refused.stdout + refused.stderr
    assert "dataset invalid" in said and BROKEN.split("/")[1] in said


def start_and_wait(data: Path, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run gunicorn as deployed on `data`; return how it ended (it must end by itself)."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(FEEDSVC_BIND=f"127.0.0.1:{free_port()}", FEEDSVC_WORKERS="2",
               FEEDSVC_DATA=str(data), FEEDSVC_RELOAD_INTERVAL="1", **extra)
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
