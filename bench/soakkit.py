"""What bench/soak.py and bench/faults.py share: the service under test, its workers, the mix.

Everything runs on loopback: gunicorn started exactly as deployed (`deploy/gunicorn.conf.py`,
`wsgi:app`), a throw-away Redis when asked, and wrk with bench/mix.lua. Every process started
here is stopped by its own pid; every load loop is bounded in time.
"""
from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopback import (  # the one definition, beside this file (bench/ is on sys.path)
    free_port,
    gunicorn_workers,
)
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
BASE_URL = "https://feeds.example.org/"
FORMATS = ("rss", "atom", "json")
# Seconds a check of every worker asks /readyz again to reach a worker it has not heard from
# yet (never to wait for an answer to change: the first wrong answer ends it).
REACH = 5.0
# Rounds of /readyz each successful check of every worker needed (1: the first round did).
REACHED: list[int] = []


def until(what: Callable[[], bool], deadline: float, step: float = 0.05) -> float | None:
    """Poll `what` until true; return the seconds it took, or None once `deadline` passed."""
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        if what():
            return time.monotonic() - start
        time.sleep(step)
    return None


def fetch(url: str, headers: dict[str, str] | None = None,
          timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """GET `url`; return status, headers and the (gunzipped) body; HTTP errors are answers too."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, head, body = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, head, body = error.code, dict(error.headers), error.read()
    if head.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return status, head, body


# --- the service -----------------------------------------------------------------------------

@dataclass
class Service:
    """gunicorn with the shipped config: its master process, address and log."""

    process: subprocess.Popen[bytes]
    base: str
    log: Path
    last_check: str = ""  # why the last all_workers() said False

    @property
    def pid(self) -> int:
        return self.process.pid

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        return fetch(self.base + path, headers)

    def workers(self) -> list[int]:
        """Return the pids of the master's live workers (its children but the deliverer)."""
        try:
            return sorted(gunicorn_workers(self.pid))
        except OSError:
            return []

    def readiness(self, times: int = 16, conns: int = 4) -> list[dict[str, Any]]:
        """Ask /readyz from several connections at once, so that every worker answers some."""
        from concurrent.futures import ThreadPoolExecutor

        def ask(_: int) -> dict[str, Any] | None:
            try:
                status, _, body = self.get("/readyz")
                return json.loads(body) if status == 200 else None
            except OSError:
                return None

        with ThreadPoolExecutor(conns) as pool:
            return [a for a in pool.map(ask, range(times)) if a is not None]

    def serving(self) -> dict[int, tuple[str, str]]:
        """Return each answering worker's (dataset version, readiness status)."""
        return {a["service"]["pid"]: (a["dataset"]["version"], a["status"]) for a in self.readiness()}

    def all_workers(self, version: str, status: str | None = None, count: int = 2) -> bool:
        """True when every live worker (at least `count`) answers, all serving `version` (and
        reporting `status`); False at the first answer that differs.

        Under load one worker can hold every kept-alive connection of the load and be busy,
        while the other, idle, accepts each new connection first: one round of /readyz
        requests then reaches only the idle one. So rounds are asked until every worker the
        master has answered at least once (for at most REACH seconds), and every answer of
        every round must match: retrying only reaches workers, never forgives an answer.
        """
        answers: dict[int, tuple[str, str]] = {}
        begin, rounds = time.monotonic(), 0
        while True:
            rounds += 1
            for a in self.readiness():
                seen = (a["dataset"]["version"], a["status"])
                if seen[0] != version or (status is not None and seen[1] != status):
                    self.last_check = f"worker {a['service']['pid']} answered {seen}"
                    return False
                answers[a["service"]["pid"]] = seen
            live = set(self.workers())
            if len(live) >= count and live <= answers.keys():
                REACHED.append(rounds)
                return True
            if time.monotonic() - begin >= REACH:
                self.last_check = (f"{len(live)} live workers {sorted(live)}; {rounds} rounds of "
                                   f"/readyz reached only {sorted(answers)}")
                return False

    def metric(self, name: str, text: str | None = None, **labels: str) -> float:
        """Sum a metric's samples with these labels, from `text` or a scrape now."""
        text = self.get("/metrics")[2].decode() if text is None else text
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def start_service(data: Path, log: Path, *, workers: int = 2, cache_url: str | None = None,
                  reload_interval: int = 5) -> Service:
    """Start gunicorn as deployed on a free loopback port; wait until it answers /healthz."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FEEDSVC_", "PROMETHEUS_MULTIPROC_DIR", "_FEEDSVC_"))}
    env.update(FEEDSVC_BIND=f"127.0.0.1:{port}", FEEDSVC_WORKERS=str(workers),
               FEEDSVC_DATA=str(data), FEEDSVC_BASE_URL=BASE_URL,
               FEEDSVC_RELOAD_INTERVAL=str(reload_interval),
               FEEDSVC_LOG_LEVEL=os.environ.get("SOAK_LOG_LEVEL", "WARNING"))
    if cache_url:
        env["FEEDSVC_CACHE_URL"] = cache_url
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    service = Service(process, f"http://127.0.0.1:{port}", log)

    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            return service.get("/healthz")[0] == 200 and len(service.serving()) == workers
        except OSError:
            return False

    if until(up, 60, 0.2) is None:
        stop(process)
        raise RuntimeError("gunicorn did not answer within 60 s")
    return service


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop a process this module started, by its pid; kill it if it lingers."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def service(data: Path, log: Path, **options: Any) -> Iterator[Service]:
    running = start_service(data, log, **options)
    try:
        yield running
    finally:
        stop(running.process)


# --- Redis -----------------------------------------------------------------------------------

def start_redis(port: int, log: Path) -> subprocess.Popen[bytes]:
    """Start a throw-away Redis on loopback: no persistence, so a restart comes back empty."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
             "--appendonly", "no", "--daemonize", "no"], stdout=out, stderr=subprocess.STDOUT)
    if until(lambda: redis_keys(port) is not None, 10) is None:
        stop(process)
        raise RuntimeError("redis-server did not answer within 10 s")
    return process


def redis_keys(port: int) -> int | None:
    """Return the number of keys in Redis db 0, or None when it does not answer."""
    import redis

    try:
        return int(redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5).dbsize())
    except (redis.RedisError, OSError):
        return None


def redis_hits(port: int) -> int:
    """Return Redis's own count of lookups that found their key (INFO keyspace_hits)."""
    import redis

    return int(redis.Redis(port=port, socket_timeout=0.5).info("stats")["keyspace_hits"])


# --- worker memory ---------------------------------------------------------------------------

def memory_kb(pid: int) -> tuple[int, int]:
    """Return (RSS, PSS) of a process in KiB, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    pss = int(re.search(r"^Pss:\s+(\d+)", rollup, re.M).group(1))  # type: ignore[union-attr]
    return rss, pss


# --- the request mix -------------------------------------------------------------------------

@dataclass(frozen=True)
class Hit:
    """One request of the mix: how often, the path, and its headers."""

    weight: int
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    kind: str = "feed"  # feed, revalidate, health, page, error


def feed_paths() -> list[tuple[int, str]]:
    """The feeds a realistic population polls: weights are relative request counts."""
    feeds: list[tuple[int, str]] = []
    for fmt in FORMATS:
        feeds += [(12, f"/feeds/all.{fmt}"),
                  (4, f"/feeds/countries/th.{fmt}"), (3, f"/feeds/countries/kh.{fmt}"),
                  (2, f"/feeds/countries/in.{fmt}"), (1, f"/feeds/countries/fr.{fmt}"),
                  (3, f"/feeds/topics/gender-equality.{fmt}"),
                  (2, f"/feeds/topics/social-security.{fmt}"),
                  (1, f"/feeds/topics/labour-migration.{fmt}"),
                  (2, f"/feeds/all.{fmt}?topic=gender-equality,social-dialogue"),
                  (1, f"/feeds/all.{fmt}?topic=social-dialogue&topic=gender-equality"),
                  (2, f"/feeds/all.{fmt}?q=safety"), (1, f"/feeds/all.{fmt}?q=child+labour"),
                  (2, f"/feeds/all.{fmt}?since=2005-01-01"),
                  (1, f"/feeds/countries/th.{fmt}?since=2004-12-01&limit=5"),
                  (2, f"/feeds/all.{fmt}?limit=5"),
                  (1, f"/feeds/topics/gender-equality.{fmt}?country=kh,th&utm_source=x")]
    return feeds


def build_mix(service: Service) -> list[Hit]:
    """Return the soak's mix; 304 revalidations carry the real ETags, fetched now."""
    gz = (("Accept-Encoding", "gzip"),)
    mix: list[Hit] = []
    for weight, path in feed_paths():
        mix += [Hit(weight, path), Hit(weight, path, gz)]
    for path in ("/feeds/all.rss", "/feeds/all.atom", "/feeds/all.json",
                 "/feeds/countries/th.rss", "/feeds/topics/gender-equality.atom"):
        for headers, weight in (((), 6), (gz, 10)):
            status, head, _ = service.get(path, dict(headers))
            assert status == 200 and head.get("ETag"), (path, status)
            mix.append(Hit(weight, path, headers + (("If-None-Match", head["ETag"]),), "revalidate"))
    mix += [Hit(4, "/healthz", kind="health"), Hit(2, "/readyz", kind="health"),
            Hit(1, "/", kind="page"), Hit(1, "/countries/th", kind="page"),
            Hit(1, "/releases/pr-2005-002", kind="page"),
            Hit(1, "/feeds/countries/zz.rss", kind="error"),      # not a country: 404
            Hit(1, "/feeds/all.rss?limit=500", kind="error")]     # out of range: 400
    return mix


def write_mix(mix: list[Hit], path: Path) -> Path:
    """Write the mix for bench/mix.lua: `weight TAB path TAB name: value|name: value`."""
    lines = [f"{h.weight}\t{h.path}\t{'|'.join(f'{k}: {v}' for k, v in h.headers)}" for h in mix]
    path.write_text("\n".join(lines) + "\n")
    return path


# --- wrk -------------------------------------------------------------------------------------

def wrk(service: Service, mix: list[Hit], seconds: int, *, threads: int = 2, connections: int = 256,
        workdir: Path) -> subprocess.Popen[bytes]:
    """Start wrk on the mix (bench/mix.lua); read its result with `wrk_result`."""
    mix_file = write_mix(mix, workdir / "mix.tsv")
    env = dict(os.environ, SOAK_MIX=str(mix_file))
    out = (workdir / "wrk.out").open("wb")
    return subprocess.Popen(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s",
         "-s", str(BENCH / "mix.lua"), service.base + "/"],
        env=env, stdout=out, stderr=subprocess.STDOUT)


def wrk_result(process: subprocess.Popen[bytes], workdir: Path, grace: float = 60) -> dict[str, Any]:
    """Wait for wrk (bounded); return the summary bench/mix.lua printed, and wrk's own text."""
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        stop(process, signal.SIGINT)
    text = (workdir / "wrk.out").read_text(errors="replace")
    found = [line for line in text.splitlines() if line.startswith("MIX_JSON ")]
    if not found:
        raise RuntimeError(f"wrk printed no summary:\n{text[-2000:]}")
    result: dict[str, Any] = json.loads(found[-1][len("MIX_JSON "):])
    result["text"] = text
    return result


def tmpdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
