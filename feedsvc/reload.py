"""Live dataset reload: watch the files, validate new data off the request path, swap or refuse.

Each serving process (each gunicorn worker, started by the post_fork hook) runs one watcher
thread. A check costs a stat of every YAML file; only when paths, sizes or mtimes change are
the files read and hashed, and only a new content hash is parsed and validated. Invalid data
is never swapped in: the last good index stays live and the rejection is recorded on `Live`.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask

from . import metrics, state
from .dataset import DatasetError, read_files
from .index import Index
from .state import Live
from .yamlsource import content_hash, find_files

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(path: str | Path) -> Fingerprint:
    """Return the cheap identity of the dataset on disk: each file's path, mtime and size."""
    root = Path(path)
    found: list[tuple[str, int, int]] = []
    try:
        for file in find_files(root) if root.exists() else []:
            stat = os.stat(file)
            found.append((file, stat.st_mtime_ns, stat.st_size))
    except FileNotFoundError:  # a file went away while listing: the next check sees the rest
        found.append(("(changing)", 0, 0))
    return tuple(found)


@dataclass
class Reloader:
    """Compares the dataset on disk with the one served, and swaps in new data when valid."""

    live: Live
    path: str
    load: Callable[[], Index]
    # None until a check has compared the files with the served version.
    seen: Fingerprint | None = None
    _busy: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def check(self, force: bool = False) -> str:
        """Look once; return unchanged, changing, reloaded or rejected (busy if already looking)."""
        if not self._busy.acquire(blocking=False):
            return "busy"
        try:
            return self._check(force)
        finally:
            self._busy.release()

    def _check(self, force: bool) -> str:
        before = fingerprint(self.path)
        if before == self.seen and not force:
            return "unchanged"
        try:
            version = content_hash(read_files(Path(self.path)), self.path)
            index = None if version == self.live.index.version else self.load()
        except OSError as error:  # a file removed or replaced while being read: look again later
            log.info("dataset changing while read (%s); checking again", error)
            return "changing"
        except DatasetError as error:
            if fingerprint(self.path) != before:
                return "changing"
            return self._reject(before, error)
        if fingerprint(self.path) != before:
            return "changing"
        self.seen = before
        if index is None:
            self.live.clear_rejection()
            return "unchanged"
        old = self.live.swap(index)
        metrics.RELOADS.labels(result="reloaded").inc()
        log.info("dataset reloaded: version %s -> %s, %d releases, from %s",
                 old.version, index.version, len(index.releases), self.path)
        return "reloaded"

    def _reject(self, before: Fingerprint, error: DatasetError) -> str:
        self.seen = before  # report a bad edit once; the next edit is looked at afresh
        self.live.reject(error.report())
        metrics.RELOADS.labels(result="rejected").inc()
        log.error("dataset reload rejected, still serving version %s: %s",
                  self.live.index.version, error.report())
        return "rejected"


def init_app(app: Flask, live: Live) -> None:
    """Keep a Reloader for the live dataset (loaded by state.init_app)."""
    path = app.config["FEEDSVC_DATA"]
    app.extensions["feedsvc.reloader"] = Reloader(live, path, lambda: state.load_index(app.config))
    app.extensions["feedsvc.watcher"] = None


def reloader(app: Flask) -> Reloader:
    found: Reloader = app.extensions["feedsvc.reloader"]
    return found


def reload_now(app: Flask) -> str:
    """Check the dataset now, even if the files look unchanged (SIGHUP to gunicorn)."""
    return reloader(app).check(force=True)


def start_watching(app: Flask) -> threading.Thread | None:
    """Start this process's watcher thread (after fork: threads do not survive it)."""
    interval = app.config["FEEDSVC_RELOAD_INTERVAL"]
    running: tuple[int, threading.Thread] | None = app.extensions["feedsvc.watcher"]
    if interval <= 0 or (running is not None and running[0] == os.getpid()):
        return None
    watch = reloader(app)

    def loop() -> None:
        while True:
            try:
                watch.check()
            # The watcher must outlive any one failed check, or reloads would silently stop.
            except Exception:
                log.exception("dataset check failed")
            time.sleep(interval)

    thread = threading.Thread(target=loop, name="feedsvc-reload", daemon=True)
    app.extensions["feedsvc.watcher"] = (os.getpid(), thread)
    thread.start()
    return thread
