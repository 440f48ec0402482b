"""serving/prefork.prepare: after it, a worker's first requests import and compile nothing."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A fresh interpreter (this one has imported what earlier tests asked for), as gunicorn's
# master is once it has loaded the app: then prepare, then a worker's first requests.
FIRST_REQUESTS = """
import json, sys
from feedsvc import create_app
from feedsvc.config import BUNDLED_DATA
app = create_app({"FEEDSVC_DATA": str(BUNDLED_DATA), "FEEDSVC_BASE_URL": "https://f.example/"})
if sys.argv[1] == "prepare":
    from feedsvc.serving.prefork import prepare
    prepare(app)
client = app.test_client()
modules, templates = set(sys.modules), len(app.jinja_env.cache)
statuses = [client.get(url, environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code
            for url in ("/readyz", "/feeds/all.rss", "/feeds/topics/labour-migration.atom",
                        "/feeds/countries/th.json", "/", "/feeds/", "/countries/th",
                        "/releases/pr-2004-005")]
print(json.dumps({"statuses": statuses, "imported": sorted(set(sys.modules) - modules),
                  "compiled": len(app.jinja_env.cache) - templates}))
"""


def first_requests(step: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", FIRST_REQUESTS, step], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    found: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return found


def test_after_prepare_first_requests_import_and_compile_nothing() -> None:
    prepared = first_requests("prepare")
    assert prepared["statuses"] == [200] * 8
    assert prepared == {"statuses": [200] * 8, "imported": [], "compiled": 0}
    # Without it they do, so the check above can fail.
    unprepared = first_requests("none")
    assert unprepared["imported"] and unprepared["compiled"]


# A master after a cold start, in small: a heap of freed blocks, a survivor every 100th block
# so that glibc cannot give it back from the top; then prepare, as the master before the fork.
FREED_HEAP = """
import sys
from feedsvc import create_app
from feedsvc.config import BUNDLED_DATA
from feedsvc.serving.prefork import prepare
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
app = create_app({"FEEDSVC_DATA": str(BUNDLED_DATA), "FEEDSVC_BASE_URL": "https://f.example/"})
kept, freed = [], []
for n in range(200_000):
    (kept if n % 100 == 0 else freed).append(bytes(1000) + n.to_bytes(4, "big"))
del freed
before = rss_mb()
if sys.argv[1] == "prepare":
    prepare(app)
print(before, rss_mb())
"""


def rss_around(step: str) -> tuple[float, float]:
    done = subprocess.run([sys.executable, "-c", FREED_HEAP, step], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    before, after = map(float, done.stdout.split()[-2:])
    return before, after


def test_prepare_gives_the_freed_heap_back_to_the_kernel() -> None:
    before, after = rss_around("prepare")
    assert before - after > 150  # of the ~195 MB freed
    kept_before, kept_after = rss_around("none")  # glibc alone keeps it
    assert kept_before - kept_after < 10 < kept_before - 150


# A master after its start, in small: 100,000 objects kept, made with the collector off (as a
# load makes them, dataset/loader.quiet_gc); then prepare, as the master before the fork; then
# a worker's requests, in small: rounds of short-lived containers, some alive at each young
# collection, as requests in flight are. Printed: the full collections those rounds caused.
FULL_COLLECTIONS = """
import gc, sys
from feedsvc import create_app
from feedsvc.config import BUNDLED_DATA
from feedsvc.dataset.loader import quiet_gc
from feedsvc.serving.prefork import prepare
app = create_app({"FEEDSVC_DATA": str(BUNDLED_DATA), "FEEDSVC_BASE_URL": "https://f.example/"})
with quiet_gc():
    kept = [[] for _ in range(100_000)]
if sys.argv[1] == "prepare":
    prepare(app)
full = []
gc.callbacks.append(lambda phase, info: phase == "start" and full.append(info["generation"] == 2))
for _ in range(200):
    in_flight = [[] for _ in range(1000)]
print(sum(full))
"""


def full_collections(step: str) -> int:
    done = subprocess.run([sys.executable, "-c", FULL_COLLECTIONS, step], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


def test_after_prepare_a_workers_young_collections_do_not_grow_into_a_full_one() -> None:
    # A full collection writes to every object the worker inherited: its copy of the heap.
    assert full_collections("prepare") == 0
    assert full_collections("none") >= 1  # the master's start leaves one due without it
