"""Reload under real gunicorn (deploy/gunicorn.conf.py), 2 and 4 workers: what EVERY worker serves.

The master watches and loads; each change must reach every worker, which is identified by the
pid /readyz reports and checked against the master's children at that moment.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import release_yaml
from .servers import gunicorn_workers
from .test_gunicorn import ROOT, Hammer, Server, metric, start, state_dir, stop, until


@pytest.fixture(params=[2, 4], ids=["2-workers", "4-workers"])
def workers(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def data(make_dataset: Callable[..., Path]) -> Path:
    return make_dataset([release_yaml(n, f"2020-01-{n:02d}") for n in range(1, 11)])


@pytest.fixture
def server(data: Path, tmp_path: Path, workers: int) -> Iterator[Server]:
    running = start(data, tmp_path / "gunicorn.log", 1, workers)
    yield running
    stop(running)


def worker_pids(server: Server) -> set[int]:
    return gunicorn_workers(server.process.pid)


def answers(server: Server, workers: int) -> list[tuple[int, dict[str, Any]]]:
    """Ask /readyz and the full feed from 4 connections at once, 8 times per worker."""
    def ask(number: int) -> tuple[int, dict[str, Any]]:
        code, _headers, body = server.get("/readyz")
        assert code == 200
        ready: dict[str, Any] = json.loads(body)
        return int(ready["service"]["pid"]), ready
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(ask, range(8 * workers)))


def every_worker(server: Server, workers: int,
                 want: Callable[[dict[str, Any]], bool]) -> Callable[[], bool]:
    """True once every worker now running has answered, and every answer is as wanted."""
    def check() -> bool:
        seen = answers(server, workers)
        pids = worker_pids(server)
        return (len(pids) == workers and pids <= {pid for pid, _ in seen}
                and all(want(ready) for _, ready in seen))
    return check


def ok_with(count: int) -> Callable[[dict[str, Any]], bool]:
    return lambda r: r["status"] == "ok" and r["dataset"]["releases"] == count


def version_of(server: Server) -> str:
    version: str = json.loads(server.get("/readyz")[2])["dataset"]["version"]
    return version


def write_release(data: Path, number: int, title: str | None = None) -> Path:
    path = data / "releases" / f"t-{number:03d}.yaml"
    text = yaml.safe_dump(release_yaml(number, f"2020-02-{number % 28 + 1:02d}", title=title),
                          sort_keys=False)
    partial = path.with_name(f".{path.name}.partial")  # complete when it appears: a rename
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    return path


def accept_removal(data: Path, snapshots: str) -> str:
    env = dict(os.environ, FEEDSVC_DATA=str(data), FEEDSVC_SNAPSHOT_DIR=snapshots)
    done = subprocess.run([sys.executable, "-m", "feedsvc", "accept-removal"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    return done.stdout


def test_add_edit_delete_and_bad_files_reach_every_worker(server: Server, data: Path,
                                                          workers: int) -> None:
    until(every_worker(server, workers, ok_with(10)))
    first = version_of(server)
    with Hammer(server):
        write_release(data, 11)
        until(every_worker(server, workers, ok_with(11)))
        assert server.get("/releases/t-011")[0] == 200
        added = version_of(server)
        write_release(data, 11, title="Corrected title of release eleven")
        until(every_worker(server, workers, lambda r: ok_with(11)(r)
                           and r["dataset"]["version"] not in (first, added)))
        assert b"Corrected title of release eleven" in server.get("/feeds/all.rss")[2]
        (data / "releases" / "t-011.yaml").unlink()
        until(every_worker(server, workers, ok_with(10)))
        assert server.get("/releases/t-011")[0] == 404
        served = version_of(server)
        os.mkfifo(data / "releases" / "zz-fifo.yaml")
        until(every_worker(server, workers, lambda r: r["status"] == "degraded"
                           and r["dataset"]["version"] == served
                           and "zz-fifo.yaml: not a regular file" in r["dataset"]["last_reload_error"]))
        (data / "releases" / "zz-fifo.yaml").unlink()
        until(every_worker(server, workers, ok_with(10)))
    text = server.get("/metrics")[2].decode()
    assert metric(text, "feedsvc_dataset_reloads_total", result="reloaded") == 3
    assert metric(text, "feedsvc_dataset_reloads_total", result="rejected") == 1
    log = server.log.read_text()
    # One process loads: each change is loaded, and each rejection logged, once per instance.
    assert log.count("dataset reloaded: version") == 3
    assert log.count("dataset reload rejected") == 1


def test_invalid_then_valid_edit(server: Server, data: Path, workers: int) -> None:
    until(every_worker(server, workers, ok_with(10)))
    served = version_of(server)
    path = data / "releases" / "t-005.yaml"
    whole = path.read_text(encoding="utf-8")
    path.write_text(whole.replace("published: '2020-01-05'", "published: '2020-02-30'"))
    until(every_worker(server, workers, lambda r: r["status"] == "degraded"
                       and r["dataset"]["version"] == served
                       and "field published" in r["dataset"]["last_reload_error"]))
    path.write_text(whole.replace("Test release number 5", "Release five, corrected"))
    until(every_worker(server, workers, lambda r: r["status"] == "ok"
                       and r["dataset"]["version"] != served))
    assert b"Release five, corrected" in server.get("/feeds/all.rss")[2]


def test_mass_deletion_is_held_then_accepted(server: Server, data: Path, workers: int) -> None:
    until(every_worker(server, workers, ok_with(10)))
    served = version_of(server)
    for path in (data / "releases").iterdir():
        path.unlink()
    until(every_worker(server, workers, lambda r: r["status"] == "degraded"
                       and r["dataset"]["version"] == served
                       and "10 of 10 releases would be removed" in r["dataset"]["last_reload_error"]))
    assert server.get("/releases/t-001")[0] == 200
    printed = accept_removal(data, str(state_dir(server.log)))
    assert "accepted: 10 of 10 releases removed" in printed
    until(every_worker(server, workers, ok_with(0)))
    assert server.get("/releases/t-001")[0] == 404


def test_a_media_file_changed_in_place_reaches_every_worker(
        make_dataset: Callable[..., Path], tmp_path: Path, workers: int) -> None:
    """A picture replaced under the same name: every worker's feeds give its new length and
    URL (its hash), though no YAML file changed."""
    illustrated = release_yaml(1, "2020-01-01")
    illustrated["attachments"] = [{"src": "report.pdf", "title": "The report"}]
    data = make_dataset([illustrated, *(release_yaml(n, f"2020-01-{n:02d}") for n in (2, 3))])
    report = data / "media" / "report.pdf"
    report.parent.mkdir()
    report.write_bytes(b"%PDF-1.4\n% first version\n")
    server = start(data, tmp_path / "gunicorn.log", 1, workers)
    try:
        until(every_worker(server, workers, ok_with(3)))
        first = version_of(server)
        assert attachment(server) == (len(b"%PDF-1.4\n% first version\n"), short_hash(report))
        bigger = b"%PDF-1.4\n% second version, written over the first in place\n"
        with report.open("r+b") as stream:  # same name, same inode: only its bytes change
            stream.write(bigger)
        until(every_worker(server, workers, lambda r: ok_with(3)(r)
                           and r["dataset"]["version"] != first))
        for _ in range(4 * workers):  # every worker serves the same, new version now
            assert attachment(server) == (len(bigger), short_hash(report))
        code, headers, body = server.get("/media/report.pdf")
        assert (code, body, headers["Content-Length"]) == (200, bigger, str(len(bigger)))
    finally:
        stop(server)
    log = server.log.read_text()
    assert log.count("dataset reloaded: version") == 1
    assert "exited with code" not in log  # each replaced worker ended as gunicorn meant it to


def short_hash(path: Path) -> str:
    """Return the short hash of a file's bytes now, as media URLs carry it (?v=)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def attachment(server: Server) -> tuple[int, str]:
    """Return the size and URL hash of release t-001's attachment in the JSON Feed."""
    items = json.loads(server.get("/feeds/all.json")[2])["items"]
    found = next(i for i in items if i["id"].endswith(":t-001"))["attachments"][0]
    return found["size_in_bytes"], found["url"].rsplit("?v=", 1)[1]
