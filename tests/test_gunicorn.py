"""The service started exactly as deploy/gunicorn.conf.py says: 2 workers, metrics, reload, HUP."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .servers import assert_no_failed_reload, free_port

ROOT = Path(__file__).resolve().parent.parent
NEW_TITLE = "ILO offers renewed training in Cambodian Women Workers' Rights"
DEADLINE = 20.0


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str
    log: Path
    temp: Path  # its TMPDIR
    statuses: list[int] = field(default_factory=list)
    # A test that makes a reload fail on purpose; any other fails if its log shows one.
    expect_failure: bool = False

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as response:
                result = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            result = error.code, dict(error.headers), error.read()
        self.statuses.append(result[0])
        return result

    def readiness(self, times: int = 24) -> list[dict[str, Any]]:
        """Ask /readyz from 4 connections at once, so that every worker answers some."""
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: self.get("/readyz"), range(times)))
        return [json.loads(body) for _, _, body in answers]


def until(what: Callable[[], bool], deadline: float = DEADLINE) -> float:
    """Poll `what` until true; return the seconds it took (fail after `deadline`)."""
    start = time.monotonic()
    while not what():
        assert time.monotonic() - start < deadline, "deadline passed"
        time.sleep(0.1)
    return time.monotonic() - start


def state_dir(log: Path) -> Path:
    """Return the state directory of the server that logs to `log` (start)."""
    return log.with_name(f"{log.stem}-state")


def start(data: Path, log: Path, interval: int, workers: int = 2,
          extra: dict[str, str] | None = None, conf: str = "deploy/gunicorn.conf.py") -> Server:
    port = free_port()
    temp = log.with_name(f"{log.stem}-tmp")  # not /tmp: a killed server leaves its dirs here
    temp.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(FEEDSVC_BIND=f"127.0.0.1:{port}", FEEDSVC_WORKERS=str(workers),
               FEEDSVC_DATA=str(data), FEEDSVC_BASE_URL="https://feeds.example.org/",
               FEEDSVC_LOG_FORMAT="json", FEEDSVC_RELOAD_INTERVAL=str(interval),
               TMPDIR=str(temp))
    env.update({"FEEDSVC_SNAPSHOT_DIR": str(state_dir(log)), **(extra or {})})  # its own
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", conf, "wsgi:app"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log, temp)

    def healthy() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return server.get("/healthz")[0] == 200
        except OSError:
            return False

    until(healthy)
    return server


def stop(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    if not server.expect_failure:
        assert_no_failed_reload(server.log)


@pytest.fixture
def served(dataset_dir: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    server = start(dataset_dir, tmp_path / "gunicorn.log", getattr(request, "param", 1))
    yield server
    stop(server)


def edit_title(data: Path, title: str = NEW_TITLE) -> None:
    path = data / "releases" / "pr-2005-002.yaml"
    text = path.read_text(encoding="utf-8")
    old = next(line for line in text.splitlines() if line.startswith("title:"))
    path.write_text(text.replace(old, f"title: {title}"), encoding="utf-8")


def workers_serving(server: Server) -> dict[int, tuple[str, str]]:
    """Return each worker's (dataset version, status) seen by a burst of /readyz."""
    return {a["service"]["pid"]: (a["dataset"]["version"], a["status"])
            for a in server.readiness()}


def settled(server: Server) -> tuple[str, str] | None:
    """Return the (version, status) both workers report, or None while they differ."""
    seen = workers_serving(server)
    agreed = set(seen.values())
    return agreed.pop() if len(seen) == 2 and len(agreed) == 1 else None


def settles_apart_from(server: Server, before: tuple[str, str],
                       seen: list[tuple[str, str]]) -> Callable[[], bool]:
    """Poll until both workers agree on something other than `before`; keep it in `seen`
    (asking again after the poll could catch a burst that reached one worker only)."""
    def moved() -> bool:
        now = settled(server)
        if now is None or now == before:
            return False
        seen.append(now)
        return True
    return moved


def every_worker(server: Server, want: tuple[str, str]) -> Callable[[], bool]:
    return lambda: settled(server) == want


def metric(text: str, name: str, **labels: str) -> float:
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


class Hammer:
    """Fetch a feed continuously from a thread, to see that no request fails meanwhile."""

    def __init__(self, server: Server) -> None:
        self.server, self.done = server, threading.Event()
        self.statuses: list[int] = []
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        while not self.done.is_set():
            self.statuses.append(self.server.get("/feeds/all.rss")[0])

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=30)
        assert self.statuses and set(self.statuses) == {200}


def test_health_readiness_and_metrics_across_both_workers(served: Server) -> None:
    status, headers, body = served.get("/healthz")
    assert (status, json.loads(body), headers["Cache-Control"]) == (200, {"status": "ok"},
                                                                     "no-store")
    until(lambda: len(workers_serving(served)) == 2)
    before = served.get("/metrics")[2].decode()
    answers = served.readiness(40)
    assert len({a["service"]["pid"] for a in answers}) == 2
    assert {a["status"] for a in answers} == {"ok"}
    after = served.get("/metrics")[2].decode()
    # Each worker counts only what it answered: the sum over both is what was asked.
    readyz = {"route": "/readyz", "status": "200"}
    assert metric(after, "feedsvc_http_requests_total", **readyz) - \
        metric(before, "feedsvc_http_requests_total", **readyz) == 40
    assert metric(after, "feedsvc_http_request_duration_seconds_count", route="/readyz") - \
        metric(before, "feedsvc_http_request_duration_seconds_count", route="/readyz") == 40
    assert metric(after, "feedsvc_dataset_releases") == 10

    def readyz_lines() -> int:
        lines = [json.loads(line) for line in served.log.read_text().splitlines()
                 if line.startswith("{")]
        return sum(line.get("path") == "/readyz" for line in lines)

    # A worker writes its access lines when its event loop's turn ends, just after answering.
    until(lambda: readyz_lines() >= 40)


def test_reload_reaches_both_workers_and_broken_data_never_serves(served: Server,
                                                                 dataset_dir: Path) -> None:
    start: list[tuple[str, str]] = []
    until(settles_apart_from(served, ("", ""), start))
    old, _ = start[-1]
    seen: list[tuple[str, str]] = []
    with Hammer(served):
        edit_title(dataset_dir)
        # How soon is a benchmark's question (bench/), not a timed test's: wait for it.
        until(settles_apart_from(served, (old, "ok"), seen))
        new, status = seen[-1]
        assert new != old and status == "ok"
        assert NEW_TITLE.encode() in served.get("/feeds/all.rss")[2]
        original = (dataset_dir / "topics.yaml").read_bytes()
        (dataset_dir / "topics.yaml").unlink()
        until(every_worker(served, (new, "degraded")))
        (dataset_dir / "topics.yaml").write_bytes(original)
        until(every_worker(served, (new, "ok")))
        release = dataset_dir / "releases" / "pr-2005-001.yaml"
        whole = release.read_bytes()
        release.write_bytes(whole[: len(whole) // 3])
        until(every_worker(served, (new, "degraded")))
        (dataset_dir / "releases" / "zz-bad.yaml").write_text("id: [not, a, string]\n")
        release.write_bytes(whole)
        until(every_worker(served, (new, "degraded")))
        (dataset_dir / "releases" / "zz-bad.yaml").unlink()
        until(every_worker(served, (new, "ok")))
    assert not any(status >= 500 for status in served.statuses)
    text = served.get("/metrics")[2].decode()
    # Counted once per instance: the master loads, the workers are re-forked with the result.
    assert metric(text, "feedsvc_dataset_reloads_total", result="reloaded") == 1
    assert metric(text, "feedsvc_dataset_reloads_total", result="rejected") >= 2


@pytest.mark.parametrize("served", [0], indirect=True)
def test_hup_reloads_valid_data_and_keeps_serving_on_invalid(served: Server,
                                                            dataset_dir: Path) -> None:
    start: list[tuple[str, str]] = []
    until(settles_apart_from(served, ("", ""), start))
    old, _ = start[-1]
    with Hammer(served):
        edit_title(dataset_dir)
        assert set(workers_serving(served).values()) == {(old, "ok")}  # no watcher: interval 0
        served.process.send_signal(signal.SIGHUP)
        seen: list[tuple[str, str]] = []
        until(settles_apart_from(served, (old, "ok"), seen))
        new, status = seen[-1]
        assert new != old and status == "ok"
        (dataset_dir / "site.yaml").unlink()
        served.process.send_signal(signal.SIGHUP)
        until(every_worker(served, (new, "degraded")))
    assert served.process.poll() is None
    assert "HUP: dataset rejected" in served.log.read_text()
    assert not any(status >= 500 for status in served.statuses)


def test_a_stopped_server_leaves_no_temporary_directory(
        dataset_dir: Path, tmp_path: Path, serve: Callable[..., str]) -> None:
    from .test_websub import Hub

    hub = Hub()
    server = start(dataset_dir, tmp_path / "gunicorn.log", 1,
                   extra={"FEEDSVC_WEBSUB_HUB": serve(hub) + "/hub"})
    try:
        edit_title(dataset_dir)
        until(lambda: not hub.received.empty())  # the new version is published: claimed
        made = sorted(entry.name.rsplit("-", 1)[0] for entry in server.temp.iterdir())
        assert made == ["feedsvc-metrics", "feedsvc-websub"]
    finally:
        stop(server)
    assert server.process.returncode == 0  # SIGTERM's graceful stop, not a kill
    assert list(server.temp.iterdir()) == []
