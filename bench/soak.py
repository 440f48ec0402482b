"""Soak: the shipped gunicorn config under 256 connections of a realistic mix, for minutes.

    make soak                          # 300 s, in-process cache
    SOAK_SECONDS=60 SOAK_REDIS=1 python bench/soak.py

gunicorn runs as deployed (deploy/gunicorn.conf.py, 2 workers, loopback, FEEDSVC_BASE_URL set;
with SOAK_REDIS=1 a throw-away Redis is the cache) and wrk drives bench/mix.lua:
`wrk -t2 -c256 -d${SOAK_SECONDS}s --latency --timeout 5s`. Asserted: zero 5xx; zero connect,
read and write errors (wrk's own timeouts are reported, not failed); every response that
names a dataset version names the one served; each worker's RSS and PSS at the end within
10% of after the first minute, and no worker replaced. Prints a table and writes
bench/results/soak.md.
"""
from __future__ import annotations

import os
import platform
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import soakkit  # noqa: E402
from soakkit import ROOT, memory_kb  # noqa: E402

CONNECTIONS = 256
GROWTH_LIMIT = 0.10


def sample(service: soakkit.Service) -> dict[int, tuple[int, int]]:
    return {pid: memory_kb(pid) for pid in service.workers()}


def run(seconds: int, use_redis: bool) -> tuple[list[tuple[str, str]], list[str]]:
    work = soakkit.tmpdir("feedsvc-soak-")
    redis_proc, cache_url = None, None
    if use_redis:
        port = soakkit.free_port()
        redis_proc = soakkit.start_redis(port, work / "redis.log")
        cache_url = f"redis://127.0.0.1:{port}/0"
    try:
        with soakkit.service(ROOT / "data", work / "gunicorn.log", cache_url=cache_url) as svc:
            return measure(svc, seconds, work, cache_url)
    finally:
        if redis_proc is not None:
            soakkit.stop(redis_proc)


def measure(svc: soakkit.Service, seconds: int, work: Path,
            cache_url: str | None) -> tuple[list[tuple[str, str]], list[str]]:
    version = svc.readiness(4)[0]["dataset"]["version"]
    mix = soakkit.build_mix(svc)
    workers = svc.workers()
    started, load_before, stalls = time.monotonic(), loadavg(), Stalls().start()
    load = soakkit.wrk(svc, mix, seconds, threads=2, connections=CONNECTIONS, workdir=work)
    first_at = min(60.0, seconds / 4)
    end_at = seconds - 3.0
    first: dict[int, tuple[int, int]] = {}
    last: dict[int, tuple[int, int]] = {}
    timeline: list[tuple[float, dict[int, tuple[int, int]]]] = []
    while load.poll() is None and time.monotonic() - started < seconds + 30:
        now = time.monotonic() - started
        if not first and now >= first_at:
            first = sample(svc)
            timeline.append((now, first))
        elif first and not last and now >= end_at:
            last = sample(svc)
            timeline.append((now, last))
        elif first and not last and now - timeline[-1][0] >= 30:
            timeline.append((now, sample(svc)))
        time.sleep(0.25)
    load_after = loadavg()
    stalls.stop()
    result = soakkit.wrk_result(load, work)
    result["stall"] = stalls.longest
    result["loadavg"] = f"{load_before} at the start, {load_after} at the end"
    result["server_time"] = server_time(svc)
    server_5xx = sum(svc.metric("feedsvc_http_requests_total", status=str(code))
                     for code in (500, 502, 503, 504))
    return report(result, version, workers, svc.workers(), first, last, timeline, server_5xx,
                  seconds, cache_url)


class Stalls:
    """How long this process once went without being scheduled: a starved machine, not the app."""

    def __init__(self) -> None:
        self.longest, self._done = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Stalls:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._done.wait(0.05):
            now = time.monotonic()
            self.longest, last = max(self.longest, now - last - 0.05), now


def loadavg() -> str:
    """The machine's 1-minute load average (other runs share these 2 cores)."""
    return Path("/proc/loadavg").read_text().split()[0]


def server_time(svc: soakkit.Service) -> str:
    """Time inside the app (its request histogram), to tell it from time queued for a worker."""
    name, text = "feedsvc_http_request_duration_seconds_bucket", svc.get("/metrics")[2].decode()
    total = svc.metric(name, text, le="+Inf")
    within = {le: svc.metric(name, text, le=le) for le in ("0.005", "0.025", "0.1", "1.0")}
    return ", ".join(f"≤ {float(le) * 1000:g} ms: {100 * n / total:.2f}%" for le, n in within.items()) \
        + f" of {total:,.0f}"


def pct(a: int, b: int) -> float:
    return 100.0 * (b - a) / a if a else 0.0


def report(result: dict, version: str, before: list[int], after: list[int],
           first: dict[int, tuple[int, int]], last: dict[int, tuple[int, int]],
           timeline: list, server_5xx: float, seconds: int,
           cache_url: str | None) -> tuple[list[tuple[str, str]], list[str]]:
    errors, lat, classes = result["errors"], result["latency_us"], result["classes"]
    duration = result["duration_us"] / 1e6
    failures: list[str] = []
    if classes.get("s5", 0) or server_5xx:
        failures.append(f"5xx: wrk saw {classes.get('s5', 0)}, the service counted {server_5xx:g}")
    for kind in ("connect", "read", "write"):
        if errors[kind]:
            failures.append(f"{errors[kind]} {kind} errors")
    foreign = {v: n for v, n in result["versions"].items() if v != version}
    if foreign:
        failures.append(f"responses from another dataset version: {foreign}")
    if before != after:
        failures.append(f"workers replaced during the soak: {before} -> {after}")
    rows = [("duration", f"{duration:.0f} s (wrk -t2 -c{CONNECTIONS} --timeout 5s)"),
            ("cache", "Redis (shared)" if cache_url else "in-process (SimpleCache)"),
            ("requests", f"{result['requests']:,}"),
            ("req/s", f"{result['requests'] / duration:,.0f}"),
            ("latency p50 / p90 / p99 / max",
             " / ".join(f"{lat[k] / 1000:.1f} ms" for k in ("p50", "p90", "p99", "max"))),
            ("responses 2xx / 3xx / 4xx / 5xx",
             " / ".join(f"{classes.get(c, 0):,}" for c in ("s2", "s3", "s4", "s5"))),
            ("statuses", ", ".join(f"{k}: {v:,}" for k, v in sorted(result["statuses"].items()))),
            ("5xx counted by the service (/metrics)", f"{server_5xx:g}"),
            ("errors connect / read / write", f"{errors['connect']} / {errors['read']} / {errors['write']}"),
            ("wrk timeouts (> 5 s, reported only)", f"{errors['timeout']}"),
            ("longest time without any response / harness stalled",
             f"{result['silent_seconds']} s (whole seconds) / {result['stall']:.1f} s"),
            ("time inside the app (/metrics histogram)", result["server_time"]),
            ("machine load average (2 cores, shared)", result["loadavg"]),
            ("dataset versions in responses", ", ".join(f"{v}: {n:,}" for v, n in
                                                        result["versions"].items())),
            ]
    for pid in before:
        if pid not in first or pid not in last:
            failures.append(f"worker {pid}: memory not sampled (gone?)")
            continue
        (rss0, pss0), (rss1, pss1) = first[pid], last[pid]
        rows.append((f"worker {pid} RSS / PSS after first sample -> end",
                     f"{rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB ({pct(rss0, rss1):+.1f}%) / "
                     f"{pss0 / 1024:.1f} -> {pss1 / 1024:.1f} MiB ({pct(pss0, pss1):+.1f}%)"))
        for name, a, b in (("RSS", rss0, rss1), ("PSS", pss0, pss1)):
            if abs(pct(a, b)) > GROWTH_LIMIT * 100:
                failures.append(f"worker {pid} {name} changed {pct(a, b):+.1f}% (limit 10%)")
    if timeline:
        rows.append(("memory samples (s: RSS/PSS MiB per worker)", "; ".join(
            f"{t:.0f}: " + ", ".join(f"{m[0] / 1024:.1f}/{m[1] / 1024:.1f}" for m in snap.values())
            for t, snap in timeline)))
    rows.append(("result", "PASS" if not failures else "FAIL: " + "; ".join(failures)))
    return rows, failures


def markdown(rows: list[tuple[str, str]], command: str) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = (f"Soak, {when}, {platform.node()}: {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, shared with other runs.\n\n`{command}`\n\n")
    body = "| measure | value |\n| --- | --- |\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
    return head + body


def main() -> int:
    seconds = int(os.environ.get("SOAK_SECONDS", "300"))
    use_redis = os.environ.get("SOAK_REDIS", "") not in ("", "0")
    command = f"SOAK_SECONDS={seconds}{' SOAK_REDIS=1' if use_redis else ''} make soak"
    rows, failures = run(seconds, use_redis)
    text = markdown(rows, command)
    print(text)
    soakkit.RESULTS.mkdir(parents=True, exist_ok=True)
    name = "soak-redis.md" if use_redis else "soak.md"
    (soakkit.RESULTS / name).write_text(text)
    print(f"written to bench/results/{name}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
