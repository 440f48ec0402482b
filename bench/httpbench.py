"""HTTP benchmark: feedsvc and its baselines on loopback, in one run, measured with wrk.

    PYTHONPATH=. python bench/httpbench.py [--duration 5] [--rounds 3] [--connections 32]
        [--data DIR] [--out FILE] [--before TREE]

The dataset is --data, else FEEDSVC_DATA, else a synthetic archive of 1,000 releases
(`feedsvc synth`) so that every feed holds a full page of 20 entries, else the bundled one.
Rows: limit (nginx, static file), peer (naive Flask + feedgen), floor (Flask, bytes from
a dict), feedsvc cached hits, a 304, the Redis-backed hit, and feedsvc behind the shipped
nginx config. Every gunicorn runs the shipped config with the same worker count.
--before TREE adds the cached hits of the feedsvc code in TREE (e.g. a `git worktree` of main),
and TREE's deploy/nginx config in front of this tree's instances, served in the same run: before
and after under the same load.
Besides req/s, each row has the CPU time the answering server's processes spent per request:
on a machine other jobs load, that cost moves far less than the rate does.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import statistics
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from bench import loopback
from bench.paths import FEEDS

WORKERS = 2
BASE_URL = "https://feeds.example.org/"
RESULTS = loopback.ROOT / "bench" / "results" / "http.md"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass(frozen=True)
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    bad: int  # responses that were not 2xx/3xx, or socket errors
    requests: int = 0
    cpu_us: float = 0.0  # CPU time of the answering server's processes per request


@dataclass(frozen=True)
class Row:
    name: str
    what: str
    result: Result


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS[unit]


def parse_wrk(out: str) -> Result:
    """Read req/s, p50, p99 and the error counts from `wrk --latency` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)[1])  # type: ignore[index]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)[1])  # type: ignore[index]
    bad = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    bad += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    requests = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    return Result(rps, p50, p99, bad, requests)


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """Return the user and system CPU time of a process and its children (gunicorn's or
    nginx's workers) so far, from /proc."""
    total = 0.0
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for each in (pid, *map(int, children)):
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def wrk(url: str, seconds: int, connections: int, headers: tuple[str, ...] = ()) -> Result:
    """Run wrk against one URL (after one request to warm every cache on its way)."""
    request = urllib.request.Request(url, headers=dict(h.split(": ", 1) for h in headers))
    try:
        urllib.request.urlopen(request, timeout=10).close()
    except urllib.error.HTTPError as answer:
        if answer.code != 304:
            raise
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    for header in headers:
        argv += ["-H", header]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60)
    # Wait for the server to drain what wrk left queued, so it does not slow the next row.
    urllib.request.urlopen(url, timeout=60).close()
    return parse_wrk(done.stdout)


def etag(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.headers["ETag"])


def dataset(workdir: Path, given: str | None) -> tuple[str, str]:
    """Return the dataset every app of the run serves, and how to name it in the table."""
    if given:
        return given, given
    if importlib.util.find_spec("feedsvc.operations.synth") is None:
        return str(loopback.ROOT / "data"), "the bundled dataset (feedsvc synth not available)"
    from feedsvc.operations.synth import write_archive  # type: ignore[import-not-found,unused-ignore]
    # In a folder of its own, as deployed: the dataset watcher is told of every write in the
    # folder of a one-file dataset, so server logs beside it would wake it on every log write.
    archive = write_archive(1000, workdir / "dataset" / "releases.yaml")
    return str(archive), "synthetic archive, 1,000 releases"


@contextmanager
def cluster(workdir: Path, data: str, before: Path | None = None
            ) -> Iterator[tuple[dict[str, int], dict[int, int]]]:
    """Start every server of the run (and feedsvc from the tree `before`); yield their ports
    by role and their pids by port; stop them all."""
    pids: dict[int, int] = {}
    with ExitStack() as stack:
        def keep(server: loopback.Server) -> int:
            stack.callback(server.stop)
            pids[server.port] = server.process.pid
            return server.port
        redis = keep(loopback.start_redis(workdir))
        local = {"FEEDSVC_BASE_URL": BASE_URL, "FEEDSVC_DATA": data}
        shared = {**local, "FEEDSVC_CACHE_URL": f"redis://127.0.0.1:{redis}/0"}
        ports = {
            "feedsvc": keep(loopback.start_gunicorn(workdir, workers=WORKERS, env=local)),
            "quiet": keep(loopback.start_gunicorn(
                workdir, workers=WORKERS, env={**local, "FEEDSVC_LOG_LEVEL": "WARNING"})),
            "redis": keep(loopback.start_gunicorn(workdir, workers=WORKERS, env=shared)),
            "redis-nomemo": keep(loopback.start_gunicorn(
                workdir, workers=WORKERS, env={**shared, "FEEDSVC_MEMO_ENTRIES": "0"})),
            "floor": keep(loopback.start_gunicorn(workdir, "bench.floor_app:app", WORKERS, local)),
            "peer": keep(loopback.start_gunicorn(workdir, "bench.peer_app:app", WORKERS, local)),
        }
        if before is not None:
            ports["before"] = keep(loopback.start_gunicorn(workdir, workers=WORKERS, env=local,
                                                           root=before))
        ports["limit"] = keep(_static_nginx(workdir, ports["feedsvc"]))
        ports["nginx"] = port = loopback.free_port()
        conf = loopback.render_nginx(workdir, port, [ports["feedsvc"], ports["redis"]],
                                     workdir / "nginx-cache")
        keep(loopback.start_nginx(workdir, conf, port, FEEDS[0]))
        if before is not None:  # the other tree's nginx config, in front of the same instances
            ports["nginx-before"] = port = loopback.free_port()
            (front := workdir / "nginx-before").mkdir()
            conf = loopback.render_nginx(front, port, [ports["feedsvc"], ports["redis"]],
                                         front / "cache", before / "deploy" / "nginx")
            keep(loopback.start_nginx(front, conf, port, FEEDS[0]))
        yield ports, pids


def _static_nginx(workdir: Path, feedsvc: int) -> loopback.Server:
    """nginx serving feedsvc's own bytes for /feeds/all.rss as a static file."""
    root = workdir / "static"
    (root / "feeds").mkdir(parents=True)
    with urllib.request.urlopen(f"http://127.0.0.1:{feedsvc}{FEEDS[0]}") as response:
        (root / FEEDS[0].lstrip("/")).write_bytes(response.read())
    port = loopback.free_port()
    conf = workdir / "static-nginx.conf"
    conf.write_text(loopback.STATIC_NGINX.format(port=port, root=root))
    return loopback.start_nginx(workdir, conf, port, FEEDS[0])


@dataclass(frozen=True)
class Spec:
    name: str
    what: str
    url: str
    headers: tuple[str, ...] = ()
    pid: int = 0  # the server that answers


def measure(seconds: int, rounds: int, connections: int, data: str | None,
            progress: Callable[[str], None], before_tree: Path | None = None,
            only: frozenset[str] = frozenset()) -> tuple[list[Row], str]:
    """Start the servers; run every row `rounds` times, round-robin, so that each row samples
    the machine's load across the whole run; keep each row's median; stop the servers."""
    with tempfile.TemporaryDirectory(prefix="feedsvc-bench-") as tmp:
        workdir = Path(tmp)
        served, label = dataset(workdir, data)
        progress(f"dataset: {label}")
        with cluster(workdir, served, before_tree) as (ports, pids):
            specs = [replace(spec, pid=pids[urlsplit(spec.url).port or 0])
                     for spec in _specs(ports) if not only or spec.name in only]
            runs: dict[Spec, list[Result]] = {spec: [] for spec in specs}
            for number in range(1, rounds + 1):
                progress(f"round {number} of {rounds}: {len(specs)} rows of {seconds} s")
                for spec in specs:
                    before = cpu_seconds(spec.pid)
                    result = wrk(spec.url, seconds, connections, spec.headers)
                    spent = cpu_seconds(spec.pid) - before
                    runs[spec].append(replace(result, cpu_us=spent / max(result.requests, 1) * 1e6))
    return [Row(spec.name, spec.what, _median(results)) for spec, results in runs.items()], label


def _median(results: list[Result]) -> Result:
    mid = statistics.median
    return Result(mid(r.rps for r in results), mid(r.p50_ms for r in results),
                  mid(r.p99_ms for r in results), sum(r.bad for r in results),
                  sum(r.requests for r in results), mid(r.cpu_us for r in results))


def _specs(ports: dict[str, int]) -> list[Spec]:
    def at(role: str, path: str) -> str:
        return f"http://127.0.0.1:{ports[role]}{path}"
    specs = [Spec("limit", "nginx, static file", at("limit", FEEDS[0])),
             Spec("nginx", "shipped nginx config, micro-cache hit", at("nginx", FEEDS[0]))]
    if "nginx-before" in ports:
        specs.append(Spec("nginx-before", "the --before tree's nginx config, micro-cache hit",
                          at("nginx-before", FEEDS[0])))
    for path in FEEDS:
        specs += [Spec(role, path, at(port, path))
                  for role, port in (("peer", "peer"), ("floor", "floor"), ("hit", "feedsvc"),
                                     ("hit-before", "before")) if port in ports]
    tag = etag(at("feedsvc", FEEDS[0]))
    return specs + [
        Spec("hit-quiet", f"{FEEDS[0]} without the access log line", at("quiet", FEEDS[0])),
        Spec("304", f"{FEEDS[0]} If-None-Match", at("feedsvc", FEEDS[0]), (f"If-None-Match: {tag}",)),
        Spec("redis", f"{FEEDS[0]} Redis-backed", at("redis", FEEDS[0])),
        Spec("redis-nomemo", f"{FEEDS[0]} Redis, no memo", at("redis-nomemo", FEEDS[0])),
    ]


def _find(rows: list[Row], name: str, what: str | None = None) -> Result | None:
    return next((r.result for r in rows if r.name == name and (what is None or r.what == what)),
                None)


def _ratio(row: Result, base: Result) -> tuple[float, float]:
    """Return how many times the rate of `base` the row reaches, by req/s and by CPU time
    per request (base's CPU per request over the row's)."""
    return row.rps / base.rps, base.cpu_us / row.cpu_us if row.cpu_us else 0.0


def targets(rows: list[Row]) -> list[tuple[str, float, float, float]]:
    """Return (target, ratio by req/s, ratio by CPU per request, goal) for every ratio the
    issues set (hit / floor and 304 / hit as issue 13 states them: ≥ 0.9 and ≥ 1.0; nginx /
    limit as issue 20 does: ≥ 0.9) whose two rows were run; names in brackets are no target."""
    wanted: list[tuple[str, tuple[str, str | None], tuple[str, str | None], float]] = []
    for path in FEEDS:
        wanted += [(f"1. hit / peer  {path}", ("hit", path), ("peer", path), 7.0),
                   (f"1. hit / floor {path}", ("hit", path), ("floor", path), 0.9),
                   (f"(hit before / floor {path})", ("hit-before", path), ("floor", path), 0.9)]
    wanted += [("(hit without access log) / floor", ("hit-quiet", None), ("floor", FEEDS[0]), 0.9),
               ("2. 304 / hit", ("304", None), ("hit", FEEDS[0]), 1.0),
               ("3. nginx / limit", ("nginx", None), ("limit", None), 0.9),
               ("(nginx before / limit)", ("nginx-before", None), ("limit", None), 0.9),
               ("6. redis / hit", ("redis", None), ("hit", FEEDS[0]), 0.8),
               ("6. redis (no memo) / hit", ("redis-nomemo", None), ("hit", FEEDS[0]), 0.8)]
    out: list[tuple[str, float, float, float]] = []
    for name, row, base, goal in wanted:
        measured, baseline = _find(rows, *row), _find(rows, *base)
        if measured is not None and baseline is not None:
            out.append((name, *_ratio(measured, baseline), goal))
    return out


def markdown(rows: list[Row], seconds: int, rounds: int, connections: int, label: str) -> str:
    """Render the rows and the target ratios as two Markdown tables."""
    setup = (f"wrk -t2 -c{connections} -d{seconds}s --latency on loopback, each row the median "
             f"of {rounds} rounds; gunicorn "
             f"deploy/gunicorn.conf.py with {WORKERS} workers per app; {label}. CPU: user + "
             "system time of the answering server's processes per request.")
    lines = [setup, "", "| row | what | req/s | CPU µs/req | p50 ms | p99 ms | errors |",
             "|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.name} | {r.what} | {r.result.rps:,.0f} | {r.result.cpu_us:,.0f} | "
              f"{r.result.p50_ms:.2f} | {r.result.p99_ms:.2f} | {r.result.bad} |" for r in rows]
    lines += ["", "| target | by req/s | by CPU | goal | met (req/s) | met (CPU) |",
              "|---|---:|---:|---:|---|---|"]
    lines += [f"| {name} | {rate:.2f} | {cpu:.2f} | ≥ {goal} | {'yes' if rate >= goal else 'NO'} | "
              f"{'yes' if cpu >= goal else 'NO'} |" for name, rate, cpu, goal in targets(rows)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per row and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--data", default=os.environ.get("FEEDSVC_DATA"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--before", type=Path, default=None,
                        help="another feedsvc source tree whose cached hits to measure too")
    parser.add_argument("--rows", default="",
                        help="comma-separated row names to run (default: all), e.g. limit,nginx")
    args = parser.parse_args(argv)
    only = frozenset(filter(None, args.rows.split(",")))
    rows, label = measure(args.duration, args.rounds, args.connections, args.data,
                          lambda line: print(f"  {line}", flush=True), args.before, only)
    table = markdown(rows, args.duration, args.rounds, args.connections, label)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(table)
    return 1 if any(r.result.bad for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
