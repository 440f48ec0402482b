"""A process that opens the state directory as a start does, for tests/test_statedir.py.

`python -m tests.statedir_child open DIR DATA [--build] [--hold] [--as-nobody]` prints what
statedir.open_state found as one JSON line (exit 4 and the message on stderr if refused);
--build writes the store from DATA as the writer would; --hold keeps the lock until stdin
closes; --as-nobody drops root first (root writes through any mode, a service does not).
`mates DIR DATA N`: N forked children of this process open it together, as the workers of a
plain `gunicorn -w N` do, each printing its line, all kept alive until every one has.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

from feedsvc.config import ConfigError
from feedsvc.dataset import Dataset, load_dataset
from feedsvc.dataset.bulkload import rebuild
from feedsvc.dataset.db import connect
from feedsvc.dataset.statedir import META, open_state

from .storecheck import files_of


def opened(state_dir: str, data: str, dataset: Dataset | None) -> dict[str, object]:
    found = open_state(state_dir, data)
    to_build = not built(found.path)  # as a start decides: a store without a version is built
    if dataset is not None and to_build:
        conn = connect(found.path, write=True)
        rebuild(conn, dataset, files_of(dataset), meta=META)
        conn.close()
    releases = None
    if dataset is not None:
        conn = sqlite3.connect(found.path)
        releases = conn.execute("SELECT count(*) FROM releases").fetchone()[0]
        conn.close()
    return {"path": str(found.path), "state": found.state, "rebuild": to_build,
            "persistent": found.persistent, "pid": os.getpid(), "releases": releases}


def built(path: Path) -> bool:
    """Whether the store holds a version (read only: a new file has no schema yet)."""
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        try:
            return conn.execute("SELECT 1 FROM meta WHERE name = 'version'").fetchone() is not None
        except sqlite3.OperationalError:  # no such table
            return False


def mates(state_dir: str, data: str, count: int) -> None:
    done, release = os.pipe(), os.pipe()
    for _ in range(count):
        if os.fork() == 0:
            os.close(release[1])
            try:
                line = json.dumps(opened(state_dir, data, None))
            except ConfigError as error:
                line = json.dumps({"refused": str(error)})
            os.write(done[1], line.encode() + b"\n")
            os.read(release[0], 1)  # until the parent closes it: the holder stays alive
            os._exit(0)
    os.close(done[1])
    with os.fdopen(done[0]) as lines:
        for _ in range(count):
            print(lines.readline(), end="", flush=True)
    os.close(release[1])
    for _ in range(count):
        os.wait()


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    # Read as root: what the parse imports later (stdlib under root's home) stays reachable.
    dataset = load_dataset(argv[2]) if "--build" in argv else None
    if "--as-nobody" in argv and os.getuid() == 0:
        os.setgid(65534)
        os.setuid(65534)
    if argv[0] == "mates":
        mates(argv[1], argv[2], int(argv[3]))
        return 0
    try:
        print(json.dumps(opened(argv[1], argv[2], dataset)), flush=True)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 4
    if "--hold" in argv:
        sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
