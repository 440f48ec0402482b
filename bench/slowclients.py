"""Slow clients: feed and /healthz latency while N connections send one header byte a second.

    PYTHONPATH=. python bench/slowclients.py [--slow 0,20,200] [--seconds 10]
        [--classes sync,gthread,gevent] [--out FILE]

Each row starts gunicorn with deploy/gunicorn.conf.py (2 workers; the row's worker class given
on the command line, which wins over the file), opens N "slowloris" connections that each send
one byte of an endless request header a second (and reopen when the server closes them), then
for --seconds asks /feeds/all.rss and /healthz from 2 clients, one fresh connection a request,
5 s timeout. The "nginx" rows put the shipped deploy/nginx/ config in front of the shipped
gunicorn, the way compose does. A last table has cached-hit throughput per worker class
(wrk -t2 -c32 -d5s /feeds/all.rss, as `make bench`'s hit row), to compare within this run.
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import loopback
from tests.slowloris import PATHS, Answer, SlowClients, fetch

RESULTS = loopback.ROOT / "bench" / "results" / "slowclients.md"


def probe(port: int, seconds: float, clients: int = 2) -> list[Answer]:
    """Ask PATHS in turn from `clients` threads for `seconds`; return every answer."""
    answers: list[Answer] = []
    deadline = time.monotonic() + seconds

    def client() -> None:
        for path in itertools.cycle(PATHS):
            if time.monotonic() >= deadline:
                return
            answers.append(fetch(port, path))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


@dataclass(frozen=True)
class Row:
    server: str
    slow: int
    path: str
    asked: int
    failed: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def summarise(server: str, slow: int, answers: list[Answer]) -> list[Row]:
    rows = []
    for path in PATHS:
        mine = [a for a in answers if a.path == path]
        ms = sorted(a.seconds * 1000 for a in mine) or [0.0]
        p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
        rows.append(Row(server, slow, path, len(mine), sum(a.status != 200 for a in mine),
                        statistics.median(ms), p99, ms[-1]))
    return rows


@contextmanager
def feedsvc(workdir: Path, worker_class: str | None, nginx: bool = False) -> Iterator[int]:
    """Start the shipped gunicorn (with another worker class if given), nginx in front if
    asked; yield the port clients use."""
    extra = ["--worker-class", worker_class] if worker_class else []
    if worker_class == "gthread":
        extra += ["--threads", "4"]
    env = {"FEEDSVC_BASE_URL": "https://feeds.example.org/", "FEEDSVC_LOG_LEVEL": "WARNING"}
    with ExitStack() as stack:
        app = loopback.start_gunicorn(workdir, env=env, extra=extra)
        stack.callback(app.stop)
        port = app.port
        if nginx:
            port = loopback.free_port()
            cache = workdir / f"nginx-cache-{port}"
            conf_dir = workdir / f"nginx-{port}"
            conf_dir.mkdir()
            conf = loopback.render_nginx(conf_dir, port, [app.port], cache)
            stack.callback(loopback.start_nginx(conf_dir, conf, port, PATHS[0]).stop)
        yield port


def measure_slow(classes: list[str], counts: list[int], seconds: float) -> list[Row]:
    rows: list[Row] = []
    servers = [(name, name, False) for name in classes] + [("nginx + shipped", None, True)]
    with tempfile.TemporaryDirectory(prefix="feedsvc-slow-") as tmp:
        for name, worker_class, nginx in servers:
            for count in counts:
                print(f"  {name}: {count} slow connections", flush=True)
                with feedsvc(Path(tmp), worker_class, nginx) as port, SlowClients(port, count):
                    time.sleep(2.0)  # let the slow connections reach the workers
                    rows += summarise(name, count, probe(port, seconds))
    return rows


def throughput(classes: list[str]) -> dict[str, tuple[float, float]]:
    """Cached /feeds/all.rss (req/s, p99 ms) per worker class (make bench's hit row), medians
    of 3 rounds."""
    from bench.httpbench import wrk

    found: dict[str, list[tuple[float, float]]] = {name: [] for name in classes}
    with tempfile.TemporaryDirectory(prefix="feedsvc-slow-") as tmp, ExitStack() as stack:
        ports = {name: stack.enter_context(feedsvc(Path(tmp), name)) for name in classes}
        for _ in range(3):
            for name, port in ports.items():
                result = wrk(f"http://127.0.0.1:{port}{PATHS[0]}", 5, 32)
                found[name].append((result.rps, result.p99_ms))
    return {name: (statistics.median(r for r, _ in values), statistics.median(p for _, p in values))
            for name, values in found.items()}


def markdown(rows: list[Row], rps: dict[str, tuple[float, float]], seconds: float) -> str:
    lines = [f"Slow connections send one header byte a second; 2 clients ask each path in turn "
             f"for {seconds:g} s, a fresh connection a request, 5 s timeout; gunicorn "
             "deploy/gunicorn.conf.py, 2 workers, the bundled dataset.", "",
             "| server | slow connections | path | asked | failed | p50 ms | p99 ms | max ms |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.server} | {r.slow} | {r.path} | {r.asked} | {r.failed} | {r.p50_ms:.1f} | "
              f"{r.p99_ms:.1f} | {r.max_ms:.1f} |" for r in rows]
    if rps:
        base = (rps.get("sync") or next(iter(rps.values())))[0]
        lines += ["", "Cached /feeds/all.rss, wrk -t2 -c32 -d5s, median of 3 rounds:", "",
                  "| worker class | req/s | / sync | p99 ms |", "|---|---:|---:|---:|"]
        lines += [f"| {name} | {value:,.0f} | {value / base:.2f} | {p99:.1f} |"
                  for name, (value, p99) in rps.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", default="0,20,200", help="slow connection counts ('': none)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--classes", default="sync,gthread,gevent", help="worker classes")
    parser.add_argument("--no-throughput", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    classes = [c for c in args.classes.split(",") if c]
    rows = measure_slow(classes, [int(n) for n in args.slow.split(",") if n], args.seconds)
    rps = {} if args.no_throughput else throughput(classes)
    table = markdown(rows, rps, args.seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
