"""Target 5: start-up at 1,000 / 10,000 / 100,000 releases, and memory under gunicorn.

For each size: a cold start (no snapshot: parse and validate the YAML) and a restart with
unchanged data (from the snapshot), each a fresh `create_app()` process, timed from process
start to app ready, with its CPU (the loading child and its helpers included). A restart
starts as deploy/gunicorn.conf.py has it (FEEDSVC_START_CHECK=background): it serves the
snapshot, then the check for files changed while down runs (timed apart: "start check"). The baseline,
in the same run: PyYAML's C loader alone reading every file in one process (CPU s), the
floor a cold start was once said to be bound by. Then real gunicorn (deploy/gunicorn.conf.py,
preload) at the largest size with one and with two workers: Rss and Pss of each process from
/proc/PID/smaps_rollup.
Run: python bench/startup.py [SIZE,...] [--split] [--workers 1,2,4,16]   (--split: one file per
release, as `feedsvc synth N DIR --split` writes them; otherwise one bundle file; --workers:
the gunicorn worker counts measured, 1 and 2 always)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from archives import SIZES, archive, publish, split_archive, table
from loopback import free_port

ROOT = Path(__file__).resolve().parent.parent
RESTART_TARGET_S, COLD_TARGET_S, WORKER_TARGET_MB, TWO_WORKERS_TARGET = 1.0, 8.0, 400, 1.3
PROBE = """
import json, resource, time
started = time.perf_counter()
import importlib, pkgutil, feedsvc
from feedsvc import create_app
for module in pkgutil.walk_packages(feedsvc.__path__, "feedsvc."):  # what create_app imports
    if not module.name.endswith("__main__"):                    # (and a few commands more)
        importlib.import_module(module.name)
imported = time.perf_counter()
app = create_app()
loaded, ready = time.perf_counter(), time.time()
from feedsvc.dataset import fanout, saving
saving.settle()  # the CPU and memory of a cold start include writing its snapshot
fanout.settle()  # and its loading processes, which end once it serves
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
spent = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = time.process_time()
result = {"import": imported - started, "load": loaded - imported, "ready": ready,
          "cpu": cpu, "children_cpu": spent.ru_utime + spent.ru_stime,
          "rss": int(status["VmRSS"].split()[0]) / 1024,
          "peak": int(status["VmHWM"].split()[0]) / 1024}
from feedsvc.operations.reload import reloader
checking = time.perf_counter()
reloader(app).check()  # what the watcher does first (a no-op when the start waited for it)
result["check"], result["check_cpu"] = time.perf_counter() - checking, time.process_time() - cpu
print(json.dumps(result))
"""
# The baseline: every file parsed by PyYAML's C loader with its own constructor, nothing else.
PARSE_ONLY = """
import sys, time, yaml
from feedsvc.dataset.yamlsource import find_files
from pathlib import Path
for name in find_files(Path(sys.argv[1])):
    with open(name, "rb") as stream:
        yaml.load(stream.read().decode(), Loader=yaml.CSafeLoader)
print(time.process_time())
"""
URLS = ("/feeds/all.rss", "/feeds/countries/th.rss?topic=social-security",
        "/feeds/topics/labour-migration.atom", "/feeds/countries/kh.json?q=recruitment",
        "/releases/pr-2010-00001", "/")


def start_app(data: Path, snapshots: Path) -> dict[str, float]:
    """Start the app in a new process; return its timings (s) and memory (MB).

    "total" is from the process's start to the app ready to serve; CPU and memory are taken
    once a cold start's snapshot is written (after it is ready), before the start check."""
    env = dict(os.environ, FEEDSVC_DATA=str(data), FEEDSVC_SNAPSHOT_DIR=str(snapshots),
               FEEDSVC_START_CHECK="background", FEEDSVC_RELOAD_INTERVAL="5")
    began = time.time()
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout)
    result["total"] = result["ready"] - began
    result["cpu"] += result["children_cpu"]
    return result


def parse_only(data: Path) -> float:
    """Return the CPU seconds PyYAML alone takes to parse every file of `data`."""
    done = subprocess.run([sys.executable, "-c", PARSE_ONLY, str(data)], capture_output=True,
                          text=True, check=True)
    return float(done.stdout)


def memory(pid: int) -> tuple[float, float]:
    """Return a process's Rss and Pss in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0]) / 1024
    return fields["Rss"], fields["Pss"]


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def wait_ready(master: subprocess.Popen[bytes], port: int, workers: int) -> float:
    """Poll until every worker is forked and a feed is served; return the seconds it took."""
    began = time.perf_counter()
    while time.perf_counter() - began < 600:
        if master.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {master.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/feeds/all.rss", timeout=5) as r:
                if r.status == 200 and len(children(master.pid)) == workers:
                    return time.perf_counter() - began
        except OSError:
            pass
        time.sleep(0.05)  # polling a server that is starting; no result depends on it
    raise RuntimeError("gunicorn did not become ready")


def wait_checked(port: int) -> None:
    """Poll /readyz until the start check (the look for changes made while down) is done."""
    began = time.perf_counter()
    while time.perf_counter() - began < 600:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=30) as r:
            if json.load(r)["dataset"].get("start_check") != "pending":
                return
        time.sleep(0.05)  # polling a server that is checking; no result depends on it
    raise RuntimeError("the start check did not end")


def gunicorn(data: Path, snapshots: Path, workers: int) -> dict[str, float]:
    """Serve `data` with real gunicorn; return ready time and per-process memory after traffic."""
    port = free_port()
    env = dict(os.environ, FEEDSVC_DATA=str(data), FEEDSVC_SNAPSHOT_DIR=str(snapshots),
               FEEDSVC_WORKERS=str(workers), FEEDSVC_BIND=f"127.0.0.1:{port}")
    master = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py",
                               "wsgi:app"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        ready = wait_ready(master, port, workers)
        wait_checked(port)  # memory in the steady state: after the start check
        for _ in range(20 * workers):  # traffic, so workers touch what serving touches
            for url in URLS:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{url}", timeout=30).read()
        pids = children(master.pid)
        worker_mem = [memory(p) for p in pids]
        master_rss, master_pss = memory(master.pid)
    finally:
        master.terminate()
        master.wait(timeout=60)
    return {"ready": ready, "master_rss": master_rss, "master_pss": master_pss,
            "worker_rss": max(r for r, _ in worker_mem),
            "total_pss": master_pss + sum(p for _, p in worker_mem)}


def startup_rows(sizes: list[int], scratch: Path, source: Source) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for size in sizes:
        data, snapshots = source(size), scratch / f"snapshots-{size}"
        # The median of 3 cold starts (each with no snapshot: a new directory, the last one
        # kept for the restarts); the best of 3 restarts.
        colds = sorted((start_app(data, snapshots if n == 2 else scratch / f"cold-{size}-{n}")
                        for n in range(3)), key=lambda r: r["total"])
        cold = colds[1]
        warm = min((start_app(data, snapshots) for _ in range(3)), key=lambda r: r["total"])
        floor = parse_only(data)
        rows.append((f"{size:,}", f"{cold['total']:.2f}", f"{cold['cpu']:.1f}",
                     f"{floor:.1f}", f"{cold['cpu'] / floor:.2f}", f"{cold['peak']:.0f}",
                     f"{warm['total']:.2f}", f"{warm['cpu']:.2f}", f"{warm['load']:.2f}",
                     f"{warm['rss']:.0f}", f"{warm['check']:.2f}", f"{warm['check_cpu']:.2f}",
                     "met" if cold["total"] <= COLD_TARGET_S else "MISSED",
                     "met" if warm["total"] <= RESTART_TARGET_S else "MISSED"))
    return rows


Source = Callable[[int], Path]


def main(sizes: list[int], split: bool, workers: list[int]) -> None:
    load = os.getloadavg()[0]
    source: Source = split_archive if split else archive
    with tempfile.TemporaryDirectory(prefix="feedsvc-startup-") as tmp:
        scratch = Path(tmp)
        rows = startup_rows(sizes, scratch, source)
        largest = max(sizes)
        served = {w: gunicorn(source(largest), scratch / f"snapshots-{largest}", w)
                  for w in sorted({1, 2, *workers})}
        end_load = os.getloadavg()[0]
    one, two = served[1], served[2]
    ratio = two["total_pss"] / one["total_pss"]
    worst = max(m["worker_rss"] for m in served.values())
    gunicorn_rows = [
        (w, f"{m['ready']:.2f}", f"{m['master_rss']:.0f}", f"{m['worker_rss']:.0f}",
         f"{m['total_pss']:.0f}", f"{m['total_pss'] / one['total_pss']:.2f}")
        for w, m in served.items()]
    shape = "one file per release" if split else "one bundle file"
    text = "\n\n".join([
        (f"## Start-up, {shape} (process start to app ready; targets: cold ≤ "
         f"{COLD_TARGET_S:.0f} s, restart ≤ {RESTART_TARGET_S:.0f} s; load average "
         f"{load:.1f} at the start, {end_load:.1f} at the end, on {os.cpu_count()} CPUs)"),
        table(("releases", "cold s", "cold CPU s", "baseline CPU s", "cold CPU / baseline",
               "cold peak MB", "restart s", "restart CPU s", "restart after imports s",
               "restart RSS MB", "start check s", "start check CPU s", "cold target",
               "restart target"), rows),
        ("Times are wall-clock on a shared machine (cold: the median of 3; restart: the best of "
         "3; ready once it serves "
         "the snapshot, and the start check, the look for changes made while down, after it); "
         "CPU s is user+sys "
         "of the starting process and its children (the loading child and the processes it "
         "spreads the files over), imports included: what a start costs when the machine is not "
         "contended. Baseline: PyYAML's C loader alone parsing every file in one process."),
        f"## gunicorn, preloaded, {largest:,} releases, from the snapshot",
        table(("workers", "ready s", "master RSS MB", "max worker RSS MB", "total PSS MB",
               "total PSS / one worker's"), gunicorn_rows),
        (f"- max worker RSS {worst:.0f} MB (target ≤ {WORKER_TARGET_MB} MB: "
         f"{'met' if worst <= WORKER_TARGET_MB else 'MISSED'})\n"
         f"- two workers / one worker, total PSS: {ratio:.2f}× "
         f"(target ≤ {TWO_WORKERS_TARGET}×: {'met' if ratio <= TWO_WORKERS_TARGET else 'MISSED'})"),
    ])
    publish("startup-split" if split else "startup", text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Start-up time and memory (see the docstring).")
    parser.add_argument("sizes", nargs="?", help="releases, comma-separated (default: all)")
    parser.add_argument("--split", action="store_true", help="one file per release")
    parser.add_argument("--workers", default="1,2",
                        help="gunicorn worker counts to measure, comma-separated (1 and 2 always)")
    given = parser.parse_args()
    main([int(s) for s in given.sizes.split(",")] if given.sizes else list(SIZES), given.split,
         [int(w) for w in given.workers.split(",")])
