"""The fast path under the shipped config: what a worker keeps to answer a cached hit without
reading the store ends with the commit, on every worker (gevent, several workers)."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import feedparser

from .test_gunicorn import start, stop, until
from .test_gunicorn_reload import every_worker, worker_pids

WORKERS = 2
RELEASE = "releases/pr-2005-002.yaml"


def test_a_publish_ends_every_workers_cached_hits_of_the_old_version(
        dataset_dir: Path, tmp_path: Path) -> None:
    server = start(dataset_dir, tmp_path / "gunicorn.log", 1, WORKERS)
    try:
        until(lambda: len(worker_pids(server)) == WORKERS)
        old = json.loads(server.get("/readyz")[2])["dataset"]["version"]

        def feeds() -> list[tuple[str, list[str]]]:
            with ThreadPoolExecutor(4) as pool:  # several connections: every worker
                answers = list(pool.map(lambda _: server.get("/feeds/all.rss"),
                                        range(8 * WORKERS)))
            assert {status for status, _, _ in answers} == {200}
            return [(headers["X-Dataset-Version"],
                     [e.title for e in feedparser.parse(body).entries])
                    for _, headers, body in answers]
        assert {version for version, _ in feeds()} == {old}  # held by each worker now
        path = dataset_dir / RELEASE
        text = path.read_text(encoding="utf-8")
        title = next(line for line in text.splitlines() if line.startswith("title:"))
        path.write_text(text.replace(title, "title: Published while cached"), encoding="utf-8")
        until(every_worker(server, WORKERS, lambda r: r["dataset"]["version"] != old))
        new = {version for version, _ in feeds()}
        assert len(new) == 1 and old not in new
        assert all("Published while cached" in titles for _, titles in feeds())
    finally:
        stop(server)
