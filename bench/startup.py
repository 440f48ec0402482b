"""Target 5: start-up at 1,000 / 10,000 / 100,000 releases, and memory under gunicorn.

For each size: a cold start (no snapshot: parse and validate the YAML) and a restart with
unchanged data (from the snapshot), each a fresh `create_app()` process, timed from process
start to app ready. Then real gunicorn (deploy/gunicorn.conf.py, preload) at the largest size
with one and with two workers: Rss and Pss of each process from /proc/PID/smaps_rollup.
Run: python bench/startup.py [SIZE,...]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from archives import SIZES, archive, publish, table
from loopback import free_port

ROOT = Path(__file__).resolve().parent.parent
RESTART_TARGET_S, WORKER_TARGET_MB, TWO_WORKERS_TARGET = 3.0, 400, 1.3
PROBE = """
import json, time
started = time.perf_counter()
from feedsvc import create_app
imported = time.perf_counter()
create_app()
loaded = time.perf_counter()
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({"import": imported - started, "load": loaded - imported,
                  "cpu": time.process_time(),
                  "rss": int(status["VmRSS"].split()[0]) / 1024,
                  "peak": int(status["VmHWM"].split()[0]) / 1024}))
"""
URLS = ("/feeds/all.rss", "/feeds/countries/th.rss?topic=social-security",
        "/feeds/topics/labour-migration.atom", "/feeds/countries/kh.json?q=recruitment",
        "/releases/pr-2010-00001", "/")


def start_app(data: Path, snapshots: Path) -> dict[str, float]:
    """Start the app in a new process; return its timings (s) and memory (MB)."""
    env = dict(os.environ, FEEDSVC_DATA=str(data), FEEDSVC_SNAPSHOT_DIR=str(snapshots))
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout)
    result["total"] = time.perf_counter() - began
    return result


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


def gunicorn(data: Path, snapshots: Path, workers: int) -> dict[str, float]:
    """Serve `data` with real gunicorn; return ready time and per-process memory after traffic."""
    port = free_port()
    env = dict(os.environ, FEEDSVC_DATA=str(data), FEEDSVC_SNAPSHOT_DIR=str(snapshots),
               FEEDSVC_WORKERS=str(workers), FEEDSVC_BIND=f"127.0.0.1:{port}")
    master = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py",
                               "wsgi:app"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        ready = wait_ready(master, port, workers)
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


def startup_rows(sizes: list[int], scratch: Path) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for size in sizes:
        data, snapshots = archive(size), scratch / f"snapshots-{size}"
        cold, warm = start_app(data, snapshots), start_app(data, snapshots)
        rows.append((f"{size:,}", f"{cold['total']:.2f}", f"{cold['peak']:.0f}", f"{cold['rss']:.0f}",
                     f"{warm['total']:.2f}", f"{warm['cpu']:.2f}", f"{warm['load']:.2f}",
                     f"{warm['rss']:.0f}",
                     "met" if warm["total"] <= RESTART_TARGET_S else "MISSED"))
    return rows


def main(sizes: list[int]) -> None:
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="feedsvc-startup-") as tmp:
        scratch = Path(tmp)
        rows = startup_rows(sizes, scratch)
        largest = max(sizes)
        one, two = (gunicorn(archive(largest), scratch / f"snapshots-{largest}", w) for w in (1, 2))
    ratio = two["total_pss"] / one["total_pss"]
    worst = max(one["worker_rss"], two["worker_rss"])
    gunicorn_rows = [
        (w, f"{m['ready']:.2f}", f"{m['master_rss']:.0f}", f"{m['worker_rss']:.0f}",
         f"{m['total_pss']:.0f}") for w, m in ((1, one), (2, two))]
    text = "\n\n".join([
        (f"## Start-up (process start to app ready; target 5: restart ≤ {RESTART_TARGET_S:.0f} s; "
         f"load average {load:.1f} on {os.cpu_count()} CPUs)"),
        table(("releases", "cold s", "cold peak MB", "cold RSS MB", "restart s", "restart CPU s",
               "snapshot load s", "restart RSS MB", "restart target"), rows),
        ("Times are wall-clock on a shared machine; CPU s (user+sys of the restarting process, "
         "imports included) is what the restart costs when the machine is not contended."),
        f"## gunicorn, preloaded, {largest:,} releases, from the snapshot",
        table(("workers", "ready s", "master RSS MB", "max worker RSS MB", "total PSS MB"),
              gunicorn_rows),
        (f"- max worker RSS {worst:.0f} MB (target ≤ {WORKER_TARGET_MB} MB: "
         f"{'met' if worst <= WORKER_TARGET_MB else 'MISSED'})\n"
         f"- two workers / one worker, total PSS: {ratio:.2f}× "
         f"(target ≤ {TWO_WORKERS_TARGET}×: {'met' if ratio <= TWO_WORKERS_TARGET else 'MISSED'})"),
    ])
    publish("startup", text)


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1].split(",")] if len(sys.argv) > 1 else list(SIZES))
