"""Issue 19, the store's ingest: cold start, one publish and an idle look.

At N releases one file each (bench/archives.py's split archive), each figure taken in a new
process (CPU of its child processes included), in the same run:
- cold start: the bare PyYAML C-loader parse of the same files (the floor); the store's
  (sync.Looker's look on an empty store: the files read in child processes, then its commit:
  a new store file built by sync.build, bulkload.fill in one transaction).
- one publish (one file's title edited): the app's reload check (an app started on the
  store, then Reloader.check) and the store's own (sync.Looker's look + commit), each after a
  walk of every file (a poll) and after a notification naming the file (inotify).
- an idle look (nothing changed): a walk (poll, SIGHUP-less) by each, and the store's look
  at an empty notification (inotify said nothing about a dataset file).
Run: python bench/store_ingest.py [--releases N] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from archives import publish, split_archive, table

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 64 << 20
PROBE = """
import json, os, resource, sys, time
from pathlib import Path
kind, root, scratch = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
from feedsvc.dataset import db, sync
from feedsvc.dataset.yamlsource import find_files
import yaml
LIMIT = 64 << 20

def edit():
    name = next((root / "releases").rglob("*.yaml"))
    text = name.read_text()
    name.write_text(text.replace("title: ", "title: Edited ", 1) if "Edited" not in text
                    else text.replace("title: Edited ", "title: ", 1))
    return name

def timed(action):
    wall, cpu = time.perf_counter(), time.process_time()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    action()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    children = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu + children}

def parse():
    for name in find_files(root):
        with open(name, "rb") as stream:
            yaml.load(stream.read().decode(), Loader=yaml.CSafeLoader)

def store_cold():
    looker = sync.Looker(db.connect(scratch / "store.db", write=True), root, LIMIT)
    looker.commit(looker.look())

if kind == "parse":
    result = timed(parse)
elif kind == "store-cold":
    result = timed(store_cold)
elif kind in ("store-publish", "store-publish-notified", "store-idle", "store-notified"):
    conn = db.connect(scratch / "store.db", write=True)
    paths = [] if kind == "store-notified" else None
    if kind.startswith("store-publish"):
        name = edit()
        paths = [str(name)] if kind.endswith("notified") else None
    looker = sync.Looker(conn, root, LIMIT)
    result = timed(lambda: looker.commit(looker.look(paths)))
elif kind in ("app-publish", "app-publish-notified", "app-idle"):
    os.environ.pop("FEEDSVC_SNAPSHOT_DIR", None)  # the older name: it may not differ
    os.environ.update(FEEDSVC_DATA=str(root), FEEDSVC_STATE_DIR=str(scratch / "state"),
                      FEEDSVC_START_CHECK="background", FEEDSVC_RELOAD_INTERVAL="5")
    from feedsvc import create_app
    from feedsvc.operations.reload import reloader
    app = create_app()
    reloader(app).check()  # the start check: the catalog read, nothing changed
    paths = None
    if kind.startswith("app-publish"):
        name = edit()
        paths = [str(name)] if kind.endswith("notified") else None
    result = timed(lambda: reloader(app).check(paths=paths))
print(json.dumps(result))
"""
ROWS = (("cold start: bare PyYAML C parse (floor)", "parse"),
        ("cold start: store (look + commit)", "store-cold"),
        ("publish one file: the app's Reloader.check", "app-publish"),
        ("publish one file: store (look + commit)", "store-publish"),
        ("publish one file, notified: the app's Reloader.check", "app-publish-notified"),
        ("publish one file, notified: store (look + commit)", "store-publish-notified"),
        ("idle walk: the app's Reloader.check", "app-idle"),
        ("idle walk: store look", "store-idle"),
        ("idle, notified of nothing: store look", "store-notified"))


def probe(kind: str, root: Path, scratch: Path) -> dict[str, float]:
    """Run one measurement in a new process; return its wall and CPU seconds."""
    done = subprocess.run([sys.executable, "-c", PROBE, kind, str(root), str(scratch)],
                          stdout=subprocess.PIPE, text=True, check=True, cwd=ROOT)
    found: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return found


def main(count: int, out: Path | None) -> None:
    archive = split_archive(count)
    scratch = Path(tempfile.mkdtemp(prefix="feedsvc-store-ingest-"))
    root = scratch / "data"
    try:
        shutil.copytree(archive, root)
        for path in root.rglob("*"):  # an hour old: no file racy but the one edited
            status = path.stat()
            os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns - 3600 * 10**9))
        results = {kind: probe(kind, root, scratch) for _, kind in ROWS}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    floor = results["parse"]["cpu"]
    cold = results["store-cold"]
    rows = [(what, f"{r['wall']:.3f}", f"{r['cpu']:.3f}", f"{r['cpu'] / floor:.2f}",
             f"{r['wall'] / cold['wall']:.2f}" if kind.endswith(("cold", "parse"))
             else "")
            for what, kind in ROWS for r in [results[kind]]]
    load = os.getloadavg()
    text = (f"store ingest at {count:,} releases, one file each (load average "
            f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores)\n\n"
            + table(("what", "wall s", "CPU s", "CPU / bare parse", "wall / store cold start"),
                    rows))
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
        print(text)
    else:
        publish("store_ingest", text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=None)
    given = parser.parse_args()
    main(given.releases, given.out)
