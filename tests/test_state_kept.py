"""The state directory emptied while a real gunicorn (gevent workers, the shipped config) serves
from it (an operator's `rm`, a cache cleaner): the files were a cache, so what is served must
not turn into errors. The master writes the state file again from the data it serves, every
worker reads the new file, a publish reaches them all, and a restart starts from that file."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import feedparser

from feedsvc.dataset.statedir import state_file

from .test_gunicorn import NEW_TITLE, Server, edit_title, start, state_dir, stop, until

QUERIED = [f"/feeds/all.rss?q=work&limit={1 + n % 50}" for n in range(200)]


def burst(server: Server) -> list[tuple[int, dict[str, str], bytes]]:
    """Fetch many queried feeds at once: each worker needs more read connections than it
    keeps open, so new ones are opened by the store's path."""
    with ThreadPoolExecutor(max_workers=50) as pool:
        return list(pool.map(server.get, QUERIED))


def titles(server: Server) -> set[str]:
    status, _, body = server.get("/feeds/all.rss")
    assert status == 200
    return {entry.title for entry in feedparser.parse(body).entries}


def test_state_files_deleted_while_serving_are_written_again(dataset_dir: Path,
                                                              tmp_path: Path) -> None:
    log = tmp_path / "gunicorn.log"
    server = start(dataset_dir, log, 1)
    store = state_file(state_dir(log), dataset_dir, "sqlite")
    try:
        until(lambda: server.get("/readyz")[0] == 200)
        assert store.exists()
        for path in state_dir(log).iterdir():
            if path.is_file():
                path.unlink()
        # Until it is written again, a request is answered, or refused for a moment (503 with
        # Retry-After, as a feed reader expects of a busy server): never an error of ours.
        for status, headers, body in burst(server):
            assert status == 200 or (status == 503 and "Retry-After" in headers), body[:300]
        until(store.exists)
        assert "was deleted while serving: written again" in log.read_text()
        answers = burst(server)
        assert [status for status, _, _ in answers] == [200] * len(QUERIED)
        assert all(feedparser.parse(body).entries for _, _, body in answers)
        # A publish after it reaches every worker: the writer writes the new file, which the
        # workers now read.
        edit_title(dataset_dir)
        until(lambda: all(NEW_TITLE in titles(server) for _ in range(8)))
        assert [status for status, _, _ in burst(server)] == [200] * len(QUERIED)
    finally:
        stop(server)
    # A restart reads that file: it is not a cold start, and it serves the edit at once.
    again = tmp_path / "again.log"
    state_dir(again).symlink_to(state_dir(log))
    server = start(dataset_dir, again, 1)
    try:
        until(lambda: server.get("/readyz")[0] == 200)
        assert NEW_TITLE in titles(server)
        text = again.read_text()
        assert "served from its state file" in text
        assert "built from the YAML" not in text and "dataset built" not in text
    finally:
        stop(server)
