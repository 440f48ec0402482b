"""The faults of bench/faults.py without the load: what is served, what /readyz says, and that
every worker answers, under real gunicorn (deploy/gunicorn.conf.py, 2 workers).

Redis stopped and restarted, an invalid file, a half-written one, the dataset directory
deleted and restored, a one-file dataset deleted and restored, a worker killed with SIGKILL,
and a storm of SIGHUPs. How fast each recovers, under load, stays bench/faults.py's question.
Most faults share one server (each test leaves the dataset as it found it); a one-file
dataset and Redis need servers of their own.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import feedparser
import pytest
import redis
import yaml

from feedsvc.config import BUNDLED_DATA

from . import servers
from .servers import gunicorn_workers
from .test_gunicorn import DEADLINE, Server, start, stop, until

EDITED = "pr-2005-002"
MARK = "FAULTMARKTITLE"
Answer = tuple[str, str]  # (dataset version, readiness status)


# --- what every worker says, and what it serves ------------------------------------------------

def worker_pids(server: Server) -> set[int]:
    return gunicorn_workers(server.process.pid)


def answers(server: Server) -> dict[int, set[Answer]]:
    """Ask /readyz until every live worker has answered; return what each one said.

    Several rounds may be needed to reach them all (one worker can take every new
    connection); every answer of every round is kept, so none is forgiven.
    """
    seen: dict[int, set[Answer]] = {}
    begin = time.monotonic()
    while True:
        for ready in server.readiness(16):
            pid = ready["service"]["pid"]
            seen.setdefault(pid, set()).add((ready["dataset"]["version"], ready["status"]))
        live = worker_pids(server)
        if len(live) == 2 and live <= seen.keys():
            return seen
        assert time.monotonic() - begin < DEADLINE, f"workers {live} answered: {seen}"


def everywhere(server: Server) -> set[Answer]:
    """Return every (version, status) any worker gave while every worker was asked."""
    return set().union(*answers(server).values())


def settles(server: Server, want: Answer) -> Callable[[], bool]:
    return lambda: everywhere(server) == {want}


def moves_on(server: Server, old: str) -> str:
    """Wait until every worker serves one version other than `old`, and is ok; return it."""
    seen: list[set[Answer]] = []

    def moved() -> bool:
        seen.append(everywhere(server))
        return len(seen[-1]) == 1 and next(iter(seen[-1]))[0] != old \
            and next(iter(seen[-1]))[1] == "ok"
    until(moved)
    return next(iter(seen[-1]))[0]


def readiness(server: Server) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(server.get("/readyz")[2])
    return found


def titles_served(server: Server, version: str) -> set[str]:
    """Fetch the full Atom feed from several connections (both workers); check each answer
    parses and comes from `version`; return the entry titles."""
    titles: set[str] = set()
    for _ in range(8):
        status, headers, body = server.get("/feeds/all.atom")
        assert status == 200 and headers["X-Dataset-Version"] == version
        parsed = feedparser.parse(body)
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        titles |= {entry.title for entry in parsed.entries}
    return titles


def marked(server: Server, version: str) -> bool:
    return any(MARK in title for title in titles_served(server, version))


# --- the dataset and its edits ---------------------------------------------------------------

def release(data: Path, rid: str = EDITED) -> Path:
    return data / "releases" / f"{rid}.yaml"


def edited(text: str) -> str:
    title = next(line for line in text.splitlines() if line.startswith("title:"))
    return text.replace(title, f"title: Training {MARK} in Cambodia")


def replace_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")  # a hidden name the loader skips
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def no_failure_logged(server: Server) -> None:
    """The log names no failed check, no dead thread and no traceback."""
    log = server.log.read_text()
    for sign in ("dataset check failed", "Exception in thread", "Traceback"):
        assert sign not in log, f"{sign!r} in the log:\n{log[-3000:]}"


# --- one server for the faults of a dataset folder ---------------------------------------------

@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path, str]]:
    """gunicorn on a copy of the bundled dataset; its original version, every worker ok."""
    work = tmp_path_factory.mktemp("faults")
    data = work / "data"
    shutil.copytree(BUNDLED_DATA, data)
    server = start(data, work / "gunicorn.log", 1)
    try:
        version = readiness(server)["dataset"]["version"]
        until(settles(server, (version, "ok")))
        yield server, data, version
    finally:
        stop(server)
    no_failure_logged(server)


@pytest.fixture
def served(folder: tuple[Server, Path, str]) -> Iterator[tuple[Server, Path, str]]:
    """The folder's server as each test must find and leave it: the original data, ok."""
    server, data, version = folder
    original = release(data).read_text(encoding="utf-8")
    assert everywhere(server) == {(version, "ok")}
    yield folder
    if release(data).read_text(encoding="utf-8") != original:
        replace_atomically(release(data), original)
    until(settles(server, (version, "ok")))


def test_an_invalid_then_half_written_file_keeps_the_last_good_data_until_it_is_complete(
        served: tuple[Server, Path, str]) -> None:
    server, data, old = served
    path = release(data)
    original = path.read_text(encoding="utf-8")
    replace_atomically(path, original.replace("[gender-equality]", "[no-such-topic]"))
    until(settles(server, (old, "degraded")))
    assert "'no-such-topic' is not a topic" in readiness(server)["dataset"]["last_reload_error"]
    assert not marked(server, old)
    complete = edited(original)
    cut = complete.index("\ncountries:")
    path.write_text(complete[:cut], encoding="utf-8")  # half-written, in place
    until(lambda: "countries" in readiness(server)["dataset"]["last_reload_error"])
    assert everywhere(server) == {(old, "degraded")}
    assert not marked(server, old)
    with path.open("a", encoding="utf-8") as rest:
        rest.write(complete[cut:])
    new = moves_on(server, old)
    assert marked(server, new)


def test_a_deleted_directory_keeps_the_last_good_data_and_its_return_is_watched_again(
        served: tuple[Server, Path, str]) -> None:
    server, data, old = served
    backup = data.with_name("backup")
    shutil.copytree(data, backup)
    shutil.rmtree(data)
    until(settles(server, (old, "degraded")))
    assert "no such file or directory" in readiness(server)["dataset"]["last_reload_error"]
    assert titles_served(server, old)
    shutil.copytree(backup, data.with_name("data.new"))
    data.with_name("data.new").rename(data)
    until(settles(server, (old, "ok")))
    # Still watched: an edit of the restored folder is served.
    replace_atomically(release(data), edited(release(data).read_text(encoding="utf-8")))
    new = moves_on(server, old)
    assert marked(server, new)
    shutil.rmtree(backup)


def test_a_worker_killed_with_sigkill_is_replaced_by_one_serving_the_current_data(
        served: tuple[Server, Path, str]) -> None:
    server, data, old = served
    replace_atomically(release(data), edited(release(data).read_text(encoding="utf-8")))
    new = moves_on(server, old)
    for _ in range(2):
        before = worker_pids(server)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        until(replaced(server, victim))
        seen = answers(server)
        assert victim not in seen and set().union(*seen.values()) == {(new, "ok")}
        assert marked(server, new)
    assert server.process.poll() is None


def replaced(server: Server, victim: int) -> Callable[[], bool]:
    return lambda: len(worker_pids(server)) == 2 and victim not in worker_pids(server)


def test_a_storm_of_sighups_ends_with_every_worker_on_the_last_valid_data(
        served: tuple[Server, Path, str]) -> None:
    """Each HUP comes with a change of the files: the master forks its new workers while the
    watcher is being told of the change (a worker forked then must not hang, see
    Watcher._forked); the storm ends with a burst faster than the master handles them."""
    server, data, old = served
    path = release(data)
    original = path.read_text(encoding="utf-8")
    texts = [original] * 3 + [original.replace("[gender-equality]", "[no-such-topic]")] * 3 \
        + [edited(original)] * 3
    for number, text in enumerate(texts):
        replace_atomically(path, text)
        server.process.send_signal(signal.SIGHUP)
        until(hung_up(server, number + 1))
    for _ in range(5):
        server.process.send_signal(signal.SIGHUP)
    new = moves_on(server, old)
    assert server.process.poll() is None
    assert marked(server, new)
    log = server.log.read_text()
    assert "HUP: dataset rejected" in log and "WORKER TIMEOUT" not in log


def hung_up(server: Server, count: int) -> Callable[[], bool]:
    """True once the master has handled `count` HUPs (it logs each as it begins)."""
    return lambda: server.log.read_text().count("Hang up:") >= count


# --- a one-file dataset ------------------------------------------------------------------------

def test_a_deleted_bundle_keeps_the_last_good_data_until_it_returns(tmp_path: Path) -> None:
    def load(path: Path) -> dict[str, Any]:
        found: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
        return found
    releases = [load(path) for path in sorted((BUNDLED_DATA / "releases").glob("*.yaml"))]
    bundle = tmp_path / "bundle.yaml"
    whole = {**load(BUNDLED_DATA / "site.yaml"), **load(BUNDLED_DATA / "topics.yaml"),
             "releases": releases}
    saved = yaml.safe_dump(whole, allow_unicode=True, sort_keys=False)
    bundle.write_text(saved, encoding="utf-8")
    next(r for r in releases if r["id"] == EDITED)["title"] = f"Training {MARK} in Cambodia"
    changed = yaml.safe_dump(whole, allow_unicode=True, sort_keys=False)
    server = start(bundle, tmp_path / "gunicorn.log", 1)
    try:
        old = readiness(server)["dataset"]["version"]
        until(settles(server, (old, "ok")))
        bundle.unlink()
        until(settles(server, (old, "degraded")))
        assert "no such file or directory" in readiness(server)["dataset"]["last_reload_error"]
        assert titles_served(server, old)
        replace_atomically(bundle, saved)
        until(settles(server, (old, "ok")))
        replace_atomically(bundle, changed)  # watched again: a change is served
        new = moves_on(server, old)
        assert marked(server, new)
    finally:
        stop(server)
    no_failure_logged(server)


# --- Redis -------------------------------------------------------------------------------------

def test_redis_stopped_leaves_feeds_served_and_degraded_until_it_returns(
        dataset_dir: Path, tmp_path: Path) -> None:
    store = servers.start_redis(tmp_path)
    url = f"redis://127.0.0.1:{store.port}/0"
    server = start(dataset_dir, tmp_path / "gunicorn.log", 1, extra={"FEEDSVC_CACHE_URL": url})
    try:
        version = readiness(server)["dataset"]["version"]
        until(settles(server, (version, "ok")))
        assert titles_served(server, version)
        assert redis.Redis.from_url(url).dbsize() > 0  # the feeds were stored
        store.stop()
        until(settles(server, (version, "degraded")))
        assert readiness(server)["cache"]["reachable"] is False
        assert titles_served(server, version)
        for number in range(4):  # new queries: rendered, though they cannot be stored
            status, _, body = server.get(f"/feeds/all.atom?q=probe{number}")
            assert status == 200 and feedparser.parse(body).bozo == 0
        store = servers.start_redis(tmp_path, store.port)  # back, and empty
        until(settles(server, (version, "ok")))
        until(lambda: server.get(f"/feeds/all.atom?q=after{time.monotonic_ns()}")[0] == 200
              and redis.Redis.from_url(url).dbsize() > 0)
    finally:
        stop(server)
        store.stop()
    assert not any(status >= 500 for status in server.statuses)
    no_failure_logged(server)
