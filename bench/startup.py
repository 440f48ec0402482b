"""Target 5: start-up at 1,000 / 10,000 / 100,000 releases, and memory under gunicorn.

For each size: a cold start (no state: the YAML parsed, validated and written to the store)
and a restart with unchanged data (on the state the cold start left), each a fresh
`create_app()` process, timed from process start to app ready, with its CPU (the child
processes a cold start reads the files in included). A restart starts as
deploy/gunicorn.conf.py has it (FEEDSVC_START_CHECK=background): it serves the committed store,
then the check for files changed while down runs (timed apart: "start check"). The baseline,
in the same run: PyYAML's C loader alone reading every file in one process (CPU s), the
floor a cold start was once said to be bound by. Then real gunicorn (deploy/gunicorn.conf.py,
preload) at the largest size with one and with two workers (and --workers): Rss and Pss of
each process from /proc/PID/smaps_rollup, and beside them the memory floor, a minimal Flask
app under the same settings (bench/floor_hello.py, bench/floor_gunicorn.conf.py).
Run: python bench/startup.py [SIZE,...] [--split] [--workers 1,2,4,16] [--before TREE]
  [--runs N] [--out FILE]   (--split: one file per release, as `feedsvc synth N DIR --split`
writes them; otherwise one bundle file; --workers: the gunicorn worker counts measured, 1 and 2
always; --before: another feedsvc source tree, e.g. a `git worktree` of main, measured in the
same run, each start of it beside the same start of this code, and each figure's ratio
this / before in the table; --runs: starts of each kind, 3 by default; --out: write the table
there instead of bench/results/)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from archives import SIZES, archive, publish, split_archive, table
from loopback import free_port

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data"  # the ten-release sample: size 0, "sample" on the command line
RESTART_TARGET_S, COLD_TARGET_S, WORKER_TARGET_MB = 1.0, 8.0, 400
# The store's memory goals, after the start check: the process tree with 2 workers (at
# 1,000,000 releases), and the most workers measured (16 at 100,000) beside one.
TREE_PSS_TARGET_MB, WORKERS_RATIO_TARGET = 500, 1.3
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
try:  # only a --before tree from before the SQLite store (f5aa513^) has these modules:
    from feedsvc.dataset import fanout, saving
except ImportError:  # this code: its cold start has written the store before it serves
    pass
else:
    saving.settle()  # the CPU and memory of such a cold start include writing its snapshot
    fanout.settle()  # and its loading processes, which end once it serves
import os
def started_children():
    return [c for t in os.listdir("/proc/self/task")
            for c in open(f"/proc/self/task/{t}/children").read().split()]
waiting = time.monotonic()  # whatever the code: the processes it started for the load have
while started_children() and time.monotonic() - waiting < 120:  # ended, their CPU counted
    time.sleep(0.01)
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
spent = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = time.process_time()
result = {"import": imported - started, "load": loaded - imported, "ready": ready,
          "cpu": cpu, "children_cpu": spent.ru_utime + spent.ru_stime,
          "rss": int(status["VmRSS"].split()[0]) / 1024,
          "peak": int(status["VmHWM"].split()[0]) / 1024, "package": feedsvc.__file__}
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


def tree_env(tree: Path, **settings: str) -> dict[str, str]:
    """Return the environment that runs the feedsvc package of `tree` (its own first)."""
    env = dict(os.environ, **settings)
    if tree != ROOT:
        env["PYTHONPATH"] = str(tree)
    return env


def ran_from(result: dict[str, Any], tree: Path) -> dict[str, Any]:
    """Return the probe's figures, once sure it ran the feedsvc package of `tree` (a ratio of
    this code with itself would say nothing)."""
    package = Path(result.pop("package")).resolve()
    if not package.is_relative_to(tree.resolve()):
        raise RuntimeError(f"{tree}: the probe ran the feedsvc of {package.parent}")
    return result


def start_app(data: Path, state: Path, tree: Path = ROOT) -> dict[str, float]:
    """Start the app of `tree` in a new process; return its timings (s) and memory (MB).

    "total" is from the process's start to the app ready to serve; CPU and memory are taken
    once the processes it started for its load have ended, before the start check."""
    env = tree_env(tree, FEEDSVC_DATA=str(data), FEEDSVC_SNAPSHOT_DIR=str(state),
                   FEEDSVC_START_CHECK="background", FEEDSVC_RELOAD_INTERVAL="5")
    began = time.time()
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, check=True, cwd=tree)
    result = ran_from(json.loads(done.stdout), tree)
    result["total"] = result["ready"] - began
    result["cpu"] += result["children_cpu"]
    return dict(result)


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


def wait_answered(port: int, workers: set[int]) -> None:
    """Ask /readyz until each worker has answered it: the polls before reach some workers and
    not others, and a worker's first request is most of what it makes its own."""
    answered: set[int] = set()
    began = time.perf_counter()
    while not workers <= answered:
        if time.perf_counter() - began > 120:
            raise RuntimeError(f"{len(workers - answered)} workers never answered /readyz")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=30) as r:
            answered.add(json.load(r)["service"]["pid"])


# Requests a worker after the traffic above, so that each worker's collector reaches its oldest
# generation as a worker's does in service (a full collection writes to every object it
# inherited, serving/prefork.py); the URLs in turn, each on a connection of its own, so that
# every worker accepts its share.
SUSTAINED = 5000
ROTATE = """
local paths, i = {%s}, 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i], {["Connection"] = "close"})
end
"""


def sustain(port: int, requests: int) -> int:
    """Send at least `requests` requests with wrk; return how many were answered."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(ROTATE % ", ".join(json.dumps(url) for url in URLS))
        script.flush()
        sent = 0
        while sent < requests:
            done = subprocess.run(["wrk", "-t2", "-c16", "-d5s", "-s", script.name,
                                   f"http://127.0.0.1:{port}/"], capture_output=True,
                                  text=True, check=True)
            found = re.search(r"(\d+) requests in", done.stdout)
            if found is None:
                raise RuntimeError(f"wrk said: {done.stdout}{done.stderr}")
            sent += int(found[1])
    return sent


# The memory floor: a minimal Flask app under the shipped settings (without feedsvc's hooks).
FLOOR = ("bench/floor_gunicorn.conf.py", "bench.floor_hello:app")


def gunicorn(data: Path, state: Path, workers: int, tree: Path = ROOT,
             served: tuple[str, str] = ("deploy/gunicorn.conf.py", "wsgi:app")
             ) -> dict[str, float]:
    """Serve `data` with real gunicorn (the config and code of `tree`; `served`: the config
    file and app, FLOOR for the floor); return ready time and per-process memory after the
    start check, after traffic and after sustained traffic (SUSTAINED)."""
    port = free_port()
    env = tree_env(tree, FEEDSVC_DATA=str(data), FEEDSVC_SNAPSHOT_DIR=str(state),
                   FEEDSVC_WORKERS=str(workers), FEEDSVC_BIND=f"127.0.0.1:{port}")
    master = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", *served], cwd=tree,
                              env=env, stderr=subprocess.DEVNULL)
    try:
        ready = wait_ready(master, port, workers)
        wait_checked(port)  # memory in the steady state: after the start check,
        wait_answered(port, set(children(master.pid)))  # every worker having answered
        checked = sum(memory(p)[1] for p in [master.pid, *children(master.pid)])
        for _ in range(20 * workers):  # traffic, so workers touch what serving touches
            for url in URLS:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}{url}", timeout=30).read()
                except urllib.error.HTTPError as missing:  # the sample has no synthetic ids
                    missing.read()
        pids = children(master.pid)
        worker_mem = [memory(p) for p in pids]
        master_rss, master_pss = memory(master.pid)
        sustain(port, SUSTAINED * workers)
        if children(master.pid) != pids:
            raise RuntimeError("a worker was replaced during the sustained traffic")
        sustained = sum(memory(p)[1] for p in [master.pid, *pids])
    finally:
        master.terminate()
        master.wait(timeout=60)
    return {"ready": ready, "master_rss": master_rss, "master_pss": master_pss,
            "worker_rss": max(r for r, _ in worker_mem), "checked_pss": checked,
            "total_pss": master_pss + sum(p for _, p in worker_mem), "sustained_pss": sustained}


def first_feed(data: Path, state: Path, tree: Path = ROOT, workers: int = 2) -> float:
    """Start gunicorn as shipped (deploy/gunicorn.conf.py) on an existing state directory;
    return the seconds from starting it to the first feed served."""
    port = free_port()
    env = tree_env(tree, FEEDSVC_DATA=str(data), FEEDSVC_SNAPSHOT_DIR=str(state),
                   FEEDSVC_WORKERS=str(workers), FEEDSVC_BIND=f"127.0.0.1:{port}",
                   FEEDSVC_LOG_LEVEL="WARNING")
    began = time.perf_counter()
    master = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py",
                               "wsgi:app"], cwd=tree, env=env, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - began < 600:
            if master.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {master.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/feeds/all.rss",
                                            timeout=30) as r:
                    if r.status == 200:
                        return time.perf_counter() - began
            except OSError:
                time.sleep(0.01)  # polling a server that is starting: 10 ms is the grain
        raise RuntimeError("gunicorn did not serve a feed")
    finally:
        master.terminate()
        master.wait(timeout=60)


Source = Callable[[int], Path]
Trees = dict[str, Path]  # "this" (this checkout) and, with --before, "before"
COLUMNS = ("cold s", "cold CPU s", "baseline CPU s", "cold CPU / baseline", "cold peak MB",
           "restart s", "restart CPU s", "restart after imports s", "restart RSS MB",
           "start check s", "start check CPU s")


def starts(data: Path, scratch: Path, size: int, trees: Trees, runs: int
           ) -> dict[str, tuple[dict[str, float], dict[str, float]]]:
    """Return each tree's median cold start and best restart; each start of a tree is made
    beside the same start of the other, so that both meet the same load."""
    colds: dict[str, list[dict[str, float]]] = {label: [] for label in trees}
    warms: dict[str, list[dict[str, float]]] = {label: [] for label in trees}
    if all(kept(scratch / f"{label}-snapshots-{size}") for label in trees):
        colds = {label: [NOT_MEASURED] * runs for label in trees}  # --state: made earlier
    for n in range(runs if not colds["this"] else 0):  # each cold start with no state;
        for label, tree in trees.items():
            where = scratch / (f"{label}-snapshots-{size}" if n == runs - 1
                               else f"{label}-cold-{size}-{n}")
            colds[label].append(start_app(data, where, tree))
    for _ in range(runs):
        for label, tree in trees.items():
            warms[label].append(start_app(data, scratch / f"{label}-snapshots-{size}", tree))
    return {label: (sorted(colds[label], key=lambda r: r["total"])[runs // 2],
                    min(warms[label], key=lambda r: r["total"])) for label in trees}


NOT_MEASURED = {"total": math.nan, "cpu": math.nan, "peak": math.nan}


def kept(state: Path) -> bool:
    """Whether a state directory already holds a code's state (given by --state)."""
    return state.is_dir() and any(state.iterdir())


def figures(cold: dict[str, float], warm: dict[str, float], floor: float) -> list[float]:
    return [cold["total"], cold["cpu"], floor, cold["cpu"] / floor, cold["peak"], warm["total"],
            warm["cpu"], warm["load"], warm["rss"], warm["check"], warm["check_cpu"]]


def ratio_row(first: object, this: list[float], before: list[float]) -> tuple[object, ...]:
    """The row of this / before for each figure ("" where before is zero)."""
    return (first, "this / before",
            *[f"{a / b:.2f}×" if b else "" for a, b in zip(this, before, strict=True)])


def size_label(size: int) -> str:
    return "sample" if size == 0 else f"{size:,}"


Restarts = dict[int, dict[str, list[float]]]  # size -> code -> seconds to the first feed


def startup_rows(sizes: list[int], scratch: Path, source: Source, trees: Trees,
                 runs: int) -> tuple[list[tuple[object, ...]], Restarts]:
    rows: list[tuple[object, ...]] = []
    restarts: Restarts = {}
    for size in sizes:
        data = source(size)
        measured = starts(data, scratch, size, trees, runs)
        cold_measured = not math.isnan(measured["this"][0]["total"])
        floor = parse_only(data) if cold_measured else math.nan  # only beside cold starts
        found = {label: figures(cold, warm, floor) for label, (cold, warm) in measured.items()}
        for label, values in found.items():
            cold_s, restart_s = values[0], values[5]
            rows.append((size_label(size), label,
                         *[f"{v:.2f}" if v < 100 else f"{v:.0f}" for v in values],
                         "" if math.isnan(cold_s) else
                         "met" if cold_s <= COLD_TARGET_S else "MISSED",
                         "met" if restart_s <= RESTART_TARGET_S else "MISSED"))
        if "before" in found:
            rows.append(ratio_row(size_label(size), found["this"], found["before"]) + ("", ""))
        restarts[size] = {label: [] for label in trees}
        for _ in range(runs):  # on the state the starts above left, side by side
            for label, tree in trees.items():
                restarts[size][label].append(
                    first_feed(data, scratch / f"{label}-snapshots-{size}", tree))
    return rows, restarts


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def restart_table(restarts: Restarts, trees: Trees) -> str:
    """Restart under the shipped config, start to first feed: best and median of each code,
    this / before, and the goal (≤ the same start with the sample + 0.1 s)."""
    rows: list[tuple[object, ...]] = []
    sample = {label: min(times) for label, times in restarts.get(0, {}).items()}
    for size, found in restarts.items():
        for label, times in found.items():
            best, median = min(times), _median(times)
            goal = ("" if size == 0 or label not in sample else
                    "met" if best <= sample[label] + 0.1 else
                    f"MISSED by {best - sample[label] - 0.1:.2f} s")
            rows.append((size_label(size), label, f"{best:.2f}", f"{median:.2f}", goal))
        if "before" in found:
            this, before = found["this"], found["before"]
            rows.append((size_label(size), "this / before", f"{min(this) / min(before):.2f}×",
                         f"{_median(this) / _median(before):.2f}×", ""))
    return table(("releases", "code", "first feed s (best)", "first feed s (median)",
                  "≤ sample + 0.1 s"), rows)


Served = dict[tuple[str, int, str], dict[str, float]]  # (code, workers, start) -> figures


def served(source: Source, largest: int, scratch: Path, trees: Trees, workers: list[int],
           cold: bool = False) -> Served:
    """Serve the largest archive with gunicorn for each worker count, each tree in turn, from
    the state the starts left, and the floor (FLOOR) beside; with `cold`, also with 2 workers
    from no state."""
    found: Served = {}
    for count in sorted({1, 2, *workers}):
        for label, tree in trees.items():
            found[label, count, "restart"] = gunicorn(
                source(largest), scratch / f"{label}-snapshots-{largest}", count, tree)
        found["floor", count, "restart"] = gunicorn(SAMPLE, scratch / "floor-state", count,
                                                    served=FLOOR)
    for label, tree in trees.items() if cold else ():
        found[label, 2, "cold"] = gunicorn(source(largest), scratch / f"{label}-gunicorn-cold",
                                           2, tree)
    return found


def gunicorn_table(found: Served, trees: Trees) -> tuple[str, list[str]]:
    rows: list[tuple[object, ...]] = []
    verdicts = [memory_verdict(found, label) for label in trees]

    def values(label: str, count: int, start: str) -> list[float]:
        m, one = found[label, count, start], found[label, 1, "restart"]
        return [m["ready"], m["master_rss"], m["worker_rss"], m["checked_pss"],
                m["checked_pss"] / one["checked_pss"], m["total_pss"],
                m["total_pss"] / one["total_pss"], m["sustained_pss"],
                m["sustained_pss"] / one["sustained_pss"]]
    for (label, count, start) in sorted(found, key=lambda k: (k[2] == "cold", k[1], k[0] != "this")):
        mine = values(label, count, start)
        rows.append((count, start, label, *[f"{v:.2f}" if v < 100 else f"{v:.0f}" for v in mine]))
        if label == "before":
            rows.append(ratio_row(count, values("this", count, start), mine)[:1] + (start,)
                        + ratio_row(count, values("this", count, start), mine)[1:])
    return table(("workers", "start", "code", "ready s", "master RSS MB", "max worker RSS MB",
                  "total PSS after start check MB", "the same / one worker's",
                  "total PSS after traffic MB", "the same / one worker's",
                  f"total PSS after {SUSTAINED:,} requests a worker MB", "the same / one worker's"),
                 rows), verdicts


def increment(found: Served, label: str, when: str = "checked_pss") -> tuple[int, float, float]:
    """Return the most workers measured, their tree's PSS `when` (after the start check, by
    default) / one worker's, and what each worker past the first adds (MB)."""
    most = max(count for (code, count, start) in found if code == label and start == "restart")
    many, one = found[label, most, "restart"], found[label, 1, "restart"]
    extra = (many[when] - one[when]) / (most - 1) if most > 1 else math.nan
    return most, many[when] / one[when], extra


def met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def memory_verdict(found: Served, label: str) -> str:
    """The store's memory goals for one code, the floor's figures beside."""
    worst = max(m["worker_rss"] for (code, _, _), m in found.items() if code == label)
    two = {start: found[label, 2, start]["checked_pss"] for start in ("restart", "cold")
           if (label, 2, start) in found}
    most, ratio, extra = increment(found, label)
    _, floor_ratio, floor_extra = increment(found, "floor")
    _, long_ratio, long_extra = increment(found, label, "sustained_pss")
    _, floor_long_ratio, floor_long_extra = increment(found, "floor", "sustained_pss")
    return (f"- {label}: max worker RSS {worst:.0f} MB (target ≤ {WORKER_TARGET_MB} MB: "
            f"{met(worst <= WORKER_TARGET_MB)}); 2 workers, tree PSS after the start check: "
            + ", ".join(f"{start} {pss:.0f} MB" for start, pss in two.items())
            + f" (target at 1,000,000 ≤ {TREE_PSS_TARGET_MB} MB: "
            f"{met(max(two.values()) <= TREE_PSS_TARGET_MB)}); {most} workers / one: "
            f"{ratio:.2f}× (target ≤ {WORKERS_RATIO_TARGET}×: {met(ratio <= WORKERS_RATIO_TARGET)}"
            f"), each worker past the first {extra:.1f} MB; the floor (a minimal Flask app, "
            f"bench/floor_hello.py): {floor_ratio:.2f}×, {floor_extra:.1f} MB a worker; after "
            f"{SUSTAINED:,} requests a worker: {long_ratio:.2f}×, {long_extra:.1f} MB a worker "
            f"(the floor {floor_long_ratio:.2f}×, {floor_long_extra:.1f} MB)")


def main(sizes: list[int], split: bool, workers: list[int], before: Path | None = None,
         runs: int = 3, out: Path | None = None, cold: bool = False,
         state: Path | None = None) -> None:
    load = os.getloadavg()[0]
    bulk: Source = split_archive if split else archive

    def source(size: int) -> Path:
        return SAMPLE if size == 0 else bulk(size)
    trees: Trees = {"this": ROOT, **({"before": before.resolve()} if before else {})}
    with tempfile.TemporaryDirectory(prefix="feedsvc-startup-") as tmp:
        scratch = state or Path(tmp)
        rows, restarts = startup_rows(sizes, scratch, source, trees, runs)
        largest = max(sizes)
        found = served(source, largest, scratch, trees, workers, cold)
        end_load = os.getloadavg()[0]
    gunicorn_rows, verdicts = gunicorn_table(found, trees)
    shape = "one file per release" if split else "one bundle file"
    codes = f"; before: {before}" if before else ""
    text = "\n\n".join([
        (f"## Start-up, {shape} (process start to app ready; targets: cold ≤ "
         f"{COLD_TARGET_S:.0f} s, restart ≤ {RESTART_TARGET_S:.0f} s; load average "
         f"{load:.1f} at the start, {end_load:.1f} at the end, on {os.cpu_count()} CPUs; "
         f"this: {ROOT}{codes})"),
        table(("releases", "code", *COLUMNS, "cold target", "restart target"), rows),
        (f"Times are wall-clock on a shared machine (cold: the median of {runs}; restart: the "
         f"best of {runs}; ready once it serves "
         "the committed store, and the start check, the look for changes made while down, after it); "
         "CPU s is user+sys "
         "of the starting process and its children (the loading child and the processes it "
         "spreads the files over), imports included: what a start costs when the machine is not "
         "contended. Baseline: PyYAML's C loader alone parsing every file in one process. "
         "With --before, each start of one code is made beside the same start of the other."),
        (f"## Restart under the shipped config (gunicorn, deploy/gunicorn.conf.py, 2 workers, "
         f"on the state the starts above left): from starting gunicorn to the first "
         f"/feeds/all.rss served, {runs} each"),
        restart_table(restarts, trees),
        f"## gunicorn, preloaded, {size_label(largest)} releases",
        ("PSS is of the process tree (master and workers): after the start check, once each "
         f"worker has answered /readyz, after {len(URLS)} URLs asked 20 times a worker, and "
         f"after {SUSTAINED:,} requests a worker more (wrk, the URLs in turn, a connection "
         "each). "
         "The floor: a minimal Flask app (bench/floor_hello.py) under the same settings "
         "(bench/floor_gunicorn.conf.py), asked the same: what a worker costs that no change "
         "of feedsvc can go below."),
        gunicorn_rows,
        "\n".join(verdicts),
    ])
    if out is None:
        publish("startup-split" if split else "startup", text)
    else:
        print(text)
        out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Start-up time and memory (see the docstring).")
    parser.add_argument("sizes", nargs="?", help="releases, comma-separated (default: all)")
    parser.add_argument("--split", action="store_true", help="one file per release")
    parser.add_argument("--workers", default="1,2",
                        help="gunicorn worker counts to measure, comma-separated (1 and 2 always)")
    parser.add_argument("--before", type=Path, default=None,
                        help="another feedsvc source tree to measure beside this one")
    parser.add_argument("--runs", type=int, default=3, help="starts of each kind (default 3)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the table to this file (default: bench/results/)")
    parser.add_argument("--cold", action="store_true",
                        help="also serve the largest archive with 2 workers from no state")
    parser.add_argument("--state", type=Path, default=None,
                        help="keep the state directories here; a size whose states an earlier "
                        "run left here gets no cold start (its cold figures: nan)")
    given = parser.parse_args()
    main([0 if s == "sample" else int(s) for s in given.sizes.split(",")] if given.sizes
         else list(SIZES), given.split, [int(w) for w in given.workers.split(",")],
         given.before, given.runs, given.out, given.cold, given.state)
