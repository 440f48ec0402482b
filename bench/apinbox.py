"""Issue 22: what a flood of badly signed inbox posts costs a worker, against as many 404s.

    python bench/apinbox.py [--runs 2000]

Through the app (Flask's test client, the bundled dataset, federation on), each request timed
with the thread's CPU clock, as bench/request_cpu.py does. Rows: a GET of a page that does not
exist (the yardstick), and POSTs to the shared inbox of a Follow that is unsigned, signed with
a key that is not the sender's (the sender's real key cached, as after its first post), and
signed by a key id on an address never fetched from (refused before any connection). The rate
limit is lifted for the flood rows (their one client address would otherwise get 429s, cheaper
still), and measured as it ships in a last row. The budget: a bad post costs at most 1.5× a 404.
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.append(str(_ROOT))

from bench.archives import publish, table  # noqa: E402

BASE = "https://feeds.example.org/"
SENDER = "https://social.example/users/ann"
BUDGET = 1.5


Prepare = Callable[[int], Callable[[], int]]


def _cpu_ms(runs: int, rows: dict[str, tuple[Prepare, int]]) -> dict[str, list[float]]:
    """Time `runs` requests of each row, the rows taken in turn (so that each samples the
    machine's load across the whole run); a row's `prepare(n)` builds its nth request (signing
    it: the sender's cost, not timed) and returns what sends it."""
    took: dict[str, list[float]] = {name: [] for name in rows}
    for n in range(-20, runs):  # the first few: what is built once per process
        for name, (prepare, expect) in rows.items():
            send = prepare(n)
            gc.collect()
            started = time.thread_time()
            status = send()
            elapsed = (time.thread_time() - started) * 1000
            assert status == expect, (name, status, expect)
            if n >= 0:
                took[name].append(elapsed)
    return took


def measure(runs: int) -> dict[str, list[float]]:
    from feedsvc import create_app
    from feedsvc.activitypub.keys import new_site_key
    from feedsvc.activitypub.signatures import sign
    from feedsvc.config import BUNDLED_DATA
    from feedsvc.views import inboxes
    from feedsvc.views.activitypub import durable

    state = Path(tempfile.mkdtemp(prefix="apinbox-"))
    app = create_app({"FEEDSVC_DATA": str(BUNDLED_DATA), "FEEDSVC_BASE_URL": BASE,
                      "FEEDSVC_SNAPSHOT_DIR": str(state), "FEEDSVC_LOG_LEVEL": "WARNING"})
    client = app.test_client()
    real, wrong = new_site_key(), new_site_key()
    with app.app_context():  # the sender posted before: its real key is cached
        durable().store_actor_key(f"{SENDER}#main-key", SENDER, real.public_pem)

    def post(key_id: str, signed: bool = True) -> Callable[[int], Callable[[], int]]:
        def prepare(n: int) -> Callable[[], int]:
            body = json.dumps({"id": f"{SENDER}/follows/{n}", "type": "Follow", "actor": SENDER,
                               "object": f"{BASE}ap/actors/th"}).encode()
            headers = sign("POST", f"{BASE}ap/inbox", body, key_id, wrong.private_pem) \
                if signed else {"Content-Type": "application/activity+json"}
            return lambda: client.post("/ap/inbox", data=body, headers=headers,
                                       base_url=BASE).status_code
        return prepare

    def missing(n: int) -> Callable[[], int]:
        return lambda: client.get(f"/no-such-page-{n}", base_url=BASE).status_code

    shipped = inboxes.PER_SENDER, inboxes.PER_CLIENT
    inboxes.PER_SENDER = inboxes.PER_CLIENT = 10**9
    found = _cpu_ms(runs, {
        "404: GET of a page that does not exist": (missing, 404),
        "unsigned POST (401)": (post("", signed=False), 401),
        "POST signed with a wrong key, the sender's cached (401)": (post(f"{SENDER}#main-key"), 401),
        "POST signed by a key id on a refused address (401)":
            (post("http://10.0.0.1/users/x#main-key"), 401)})
    inboxes.PER_SENDER, inboxes.PER_CLIENT = shipped
    flood = post(f"{SENDER}#main-key")
    while flood(0)() != 429:  # the address's minute is used up: what follows is refused at once
        pass
    # (fewer: the window moves on a minute after the first of its 600 posts)
    found.update(_cpu_ms(min(runs, 200), {
        "as shipped: the same flood past 600 a minute from one client address (429)": (flood, 429)}))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args(argv)
    found = measure(args.runs)
    yardstick = statistics.median(next(iter(found.values())))
    rows = []
    for name, took in found.items():
        ratio = statistics.median(took) / yardstick
        rows.append([name, f"{statistics.median(took):.3f}", f"{statistics.quantiles(took, n=100)[98]:.3f}",
                     f"{ratio:.2f}×", "met" if ratio <= BUDGET else "MISSED"])
    publish("apinbox", f"## Inbox flood: CPU ms per request ({args.runs} of each; thread CPU "
            "clock; test client, bundled dataset)\n\n" + table(
                ["request", "median", "p99", "÷ 404 median", f"≤ {BUDGET}×"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
