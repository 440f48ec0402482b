"""Publishing at archive scale, one file per release, real gunicorn (deploy/gunicorn.conf.py).

For N releases (default 100,000) written by `feedsvc synth N DIR --split`:
- a cold start (no state: the store built from the YAML) and a restart on the state it left,
  a fresh create_app() process each, started as deploy/gunicorn.conf.py starts the app
  (FEEDSVC_START_CHECK=background): timed to the app ready, the start check (the look at every
  file for changes made while down) timed apart, as bench/startup.py does;
- under gunicorn with W workers (default 2): CPU of the whole process tree while the dataset
  sits idle; then one release added, edited and deleted: seconds until every worker serves the
  new version, CPU of the tree for it, process-tree RSS at its peak (sampled every 20 ms) and
  PSS after, against steady state. Targets are issue 19's (served ≤ 2 s, ≤ 0.2 CPU-s; idle
  ≤ 0.02 CPU-s per 20 s); the idle window starts once the start check is done.
Run: python bench/publish.py [N] [WORKERS] [--before TREE] [--idle S] [--out FILE]
(--before: another feedsvc source tree, e.g. a `git worktree` of main, measured in the same run
after this one, with each figure's ratio this / before; --idle: the idle window, 20 s by
default; --out: write the table there instead of bench/results/)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from archives import publish, split_archive, table
from loopback import free_port
from startup import memory, start_app, tree_env

ROOT = Path(__file__).resolve().parent.parent
INTERVAL = 5
POLL_S, ASKS = 0.2, 5  # how often a change is asked about over HTTP; asks to price one
SPREAD_LIMIT_S = 600
TICKS = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def tree_cpu(master: int) -> float:
    """CPU seconds of the master, its reaped children and its live children."""
    fields = Path(f"/proc/{master}/stat").read_text().rsplit(")", 1)[1].split()
    total = sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    for child in children(master):
        try:
            total += sum(int(v) for v in
                         Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[11:13])
        except FileNotFoundError:
            pass
    return total / TICKS


def tree_memory(master: int) -> tuple[float, float]:
    """Summed RSS and PSS (MB) of the master and its children."""
    rss = pss = 0.0
    for pid in [master, *children(master)]:
        try:
            r, p = memory(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
        rss, pss = rss + r, pss + p
    return rss, pss


class Server:
    def __init__(self, data: Path, state: Path, workers: int, tree: Path = ROOT) -> None:
        self.port, self.workers = free_port(), workers
        env = tree_env(tree, FEEDSVC_DATA=str(data), FEEDSVC_SNAPSHOT_DIR=str(state),
                       FEEDSVC_WORKERS=str(workers), FEEDSVC_BIND=f"127.0.0.1:{self.port}",
                       FEEDSVC_RELOAD_INTERVAL=str(INTERVAL), FEEDSVC_LOG_LEVEL="WARNING")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"],
            cwd=tree, env=env, stderr=subprocess.DEVNULL)

    def readyz(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=30) as r:
            found: dict = json.loads(r.read())
            return found

    def every_worker(self, want: Callable[[dict], bool]) -> bool:
        with ThreadPoolExecutor(4) as pool:
            seen = list(pool.map(lambda _: self.readyz(), range(8 * self.workers)))
        pids = set(children(self.process.pid))
        return (len(pids) == self.workers and pids <= {r["service"]["pid"] for r in seen}
                and all(want(r) for r in seen))

    def wait(self, want: Callable[[dict], bool], limit: float = 600) -> float:
        began = time.monotonic()
        while time.monotonic() - began < limit:
            try:
                if self.every_worker(want):
                    return time.monotonic() - began
            except OSError:
                pass
            time.sleep(0.05)  # polling a server; the figure is when the condition first held
        raise RuntimeError("gunicorn did not get there")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def measure_change(server: Server, change: Callable[[], None], releases: int,
                   version: str) -> dict[str, float]:
    """Apply a change; time until every worker serves a new version; CPU and memory of it.

    Every worker is asked over HTTP every POLL_S (the SQLite store: workers read each commit
    at their next request), and the CPU of those asks (measured on the steady server just
    before) is taken off the tree's. A --before tree from before the store re-forked its
    workers for new data: it is also done once /proc, read every 20 ms, shows every worker
    replaced; then every worker is asked over HTTP, and must already serve the new version.
    """
    master, before = server.process.pid, set(children(server.process.pid))
    ask_cpu = tree_cpu(master)
    for _ in range(ASKS):
        server.every_worker(lambda r: True)
    per_ask = (tree_cpu(master) - ask_cpu) / ASKS
    steady_rss, steady_pss = tree_memory(master)
    peak, done = steady_rss, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_memory(master)[0])
            done.wait(0.02)
    sampler = threading.Thread(target=sample)
    cpu, began = tree_cpu(master), time.monotonic()
    sampler.start()
    change()
    asked = 0

    def served(r: dict) -> bool:
        return bool(r["dataset"]["version"] != version and r["dataset"]["releases"] == releases)
    while True:
        now = set(children(master))
        if len(now) == server.workers and not now & before:
            break
        if time.monotonic() - began > SPREAD_LIMIT_S:
            raise RuntimeError(f"the change was not served by every worker in {SPREAD_LIMIT_S} s")
        if time.monotonic() - began >= POLL_S * (asked + 1):
            asked += 1
            try:
                if server.every_worker(served):
                    break
            except OSError:
                pass  # a worker in the middle of changing: asked again next time
        time.sleep(0.02)  # polling /proc; the figure is when the condition first held
    replaced = time.monotonic() - began
    settled, last = tree_cpu(master), -1.0
    while settled != last:
        time.sleep(0.5)  # until the tree's CPU stops moving: the publish is over
        last, settled = settled, tree_cpu(master)
    done.set()
    sampler.join()
    # The asks' CPU is an estimate (measured before): taking it off may leave a few ms below
    # zero for a publish cheaper than the noise; CPU spent is never negative.
    spent = max(0.0, settled - cpu - asked * per_ask)
    after_rss, after_pss = tree_memory(master)
    checked = server.wait(lambda r: r["status"] == "ok" and r["dataset"]["version"] != version
                          and r["dataset"]["releases"] == releases, limit=60)
    return {"latency": replaced, "cpu": spent, "steady_rss": steady_rss, "peak_rss": peak,
            "steady_pss": steady_pss, "after_pss": after_pss, "checked": checked}


def release_text(number: int, title: str) -> str:
    return (f"id: bench-{number}\ntype: press-release\ntitle: {title}\n"
            f"published: '2025-01-0{number}'\ncountries: [TH]\ntopics: [social-security]\n"
            f"summary: A release published during the benchmark.\n")


def write(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


Row = tuple[str, str, float, str]  # what, target, the figure, its format ("{:.2f}")


def gunicorn_rows(data: Path, state: Path, count: int, workers: int, tree: Path = ROOT,
                  idle_s: float = 20.0) -> list[Row]:
    server = Server(data, state, workers, tree)
    try:
        # The start check (a restart's look at every file, 15 s at 1,000,000 before issue 19)
        # is start-up work, not watching: the idle window starts once every worker says done.
        server.wait(lambda r: r["status"] == "ok" and r["dataset"].get("start_check") == "done")
        time.sleep(5)  # let start-up work finish before the idle window
        cpu = tree_cpu(server.process.pid)
        time.sleep(idle_s)  # the idle window itself: what watching costs
        idle = (tree_cpu(server.process.pid) - cpu) / idle_s * 100
        new = data / "releases" / "bench-1.yaml"
        steps: list[tuple[str, Callable[[], None], int]] = [
            ("one release added", lambda: write(new, release_text(1, "Added")), count + 1),
            ("one release edited", lambda: write(new, release_text(1, "Edited")), count + 1),
            ("one release deleted", lambda: new.unlink(), count),
        ]
        rows: list[Row] = [("idle watching, % of one core", "≤ 1", idle, "{:.2f}"),
                           ("idle watching, CPU s per 20 s", "≤ 0.02", idle / 100 * 20,
                            "{:.3f}")]
        for name, change, releases in steps:
            m = measure_change(server, change, releases, server.readyz()["dataset"]["version"])
            rows += [
                (f"{name}: served by every worker, s", "≤ 2", m["latency"], "{:.2f}"),
                (f"{name}: CPU of the process tree, s", "≤ 0.2", m["cpu"], "{:.2f}"),
                (f"{name}: peak RSS / steady (tree)", "≤ 1.5", m["peak_rss"] / m["steady_rss"],
                 "{:.2f}"),
                (f"{name}: PSS after / before (tree)", "≤ 1.2", m["after_pss"] / m["steady_pss"],
                 "{:.2f}"),
                (f"{name}: PSS after (tree), MB", "", m["after_pss"], "{:.0f}"),
            ]
        return rows
    finally:
        new = data / "releases" / "bench-1.yaml"
        new.unlink(missing_ok=True)
        server.stop()


def measure(data: Path, scratch: Path, count: int, workers: int, trees: dict[str, Path],
            idle_s: float) -> dict[str, list[Row]]:
    """Return each tree's rows: its starts made beside the other's, then its gunicorn alone."""
    starts: dict[str, list[dict[str, float]]] = {label: [] for label in trees}
    # With --state, a state an earlier run left: the first start is a restart too.
    first = "first start (kept state)" if any((scratch / f"{label}-snapshots").is_dir()
                                              for label in trees) else "cold start"
    for _ in ("cold", "restart"):  # the second start restarts on the state the first left
        for label, tree in trees.items():
            starts[label].append(start_app(data, scratch / f"{label}-snapshots", tree))
    found = {}
    for label, tree in trees.items():
        cold, warm = starts[label]
        rows: list[Row] = [
            (f"{first}, s", "≤ 8", cold["total"], "{:.2f}"),
            (f"{first}, CPU s", "", cold["cpu"], "{:.2f}"),
            ("restart to app ready, s", "≤ 1", warm["total"], "{:.2f}"),
            ("restart to app ready, CPU s", "", warm["cpu"], "{:.2f}"),
            ("restart RSS, MB", "", warm["rss"], "{:.0f}"),
            ("restart's start check, s", "", warm["check"], "{:.2f}"),
            ("restart's start check, CPU s", "", warm["check_cpu"], "{:.2f}"),
        ]
        found[label] = rows + gunicorn_rows(data, scratch / f"{label}-snapshots", count,
                                            workers, tree, idle_s)
    return found


def main(count: int, workers: int, before: Path | None = None, idle_s: float = 20.0,
         out: Path | None = None, state: Path | None = None) -> None:
    data = split_archive(count)
    trees = {"this": ROOT, **({"before": before.resolve()} if before else {})}
    with tempfile.TemporaryDirectory(prefix="feedsvc-publish-") as tmp:
        found = measure(data, state or Path(tmp), count, workers, trees, idle_s)
    load = os.getloadavg()[0]
    rows = []
    for n, (what, target, figure, form) in enumerate(found["this"]):
        row: list[object] = [what, target, form.format(figure)]
        if before:
            earlier = found["before"][n][2]
            row += [form.format(earlier), f"{figure / earlier:.2f}×" if earlier else ""]
        rows.append(tuple(row))
    headers = ("what", "target", "this", *(("before", "this / before") if before else ()))
    text = "\n\n".join([
        f"## Publishing: {count:,} releases, one file each, {workers} gunicorn workers "
        f"(FEEDSVC_RELOAD_INTERVAL={INTERVAL}; load average {load:.1f} on {os.cpu_count()} CPUs;"
        f" this: {ROOT}" + (f"; before: {before}, served after this one" if before else "") + ")",
        table(headers, rows),
    ])
    if out is None:
        publish(f"publish-{count}", text)
    else:
        print(text)
        out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Publishing at scale (see the docstring).")
    parser.add_argument("count", nargs="?", type=int, default=100_000, help="releases")
    parser.add_argument("workers", nargs="?", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--before", type=Path, default=None,
                        help="another feedsvc source tree to measure in the same run")
    parser.add_argument("--idle", type=float, default=20.0, help="the idle window, s")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the table to this file (default: bench/results/)")
    parser.add_argument("--state", type=Path, default=None,
                        help="keep each code's state directory here (DIR/this-snapshots, "
                        "DIR/before-snapshots); one an earlier run left is started from")
    given = parser.parse_args()
    main(given.count, given.workers, given.before, given.idle, given.out, given.state)
