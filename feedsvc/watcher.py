"""Wait until the dataset on disk may have changed: kernel notification, else stat polling.

With notification (the watchdog library: inotify on Linux) an idle dataset costs nothing: a
check runs only after files changed and then stayed quiet for a moment. Where the kernel cannot
tell (an unsupported platform, or FEEDSVC_RELOAD_WATCH=poll, e.g. for NFS), the owner checks
every FEEDSVC_RELOAD_INTERVAL seconds instead, which costs a stat of every file each time.
"""
from __future__ import annotations

import logging
import os
import threading
import time

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

log = logging.getLogger(__name__)

# Changes only: the reloader's own reads (opened, closed without writing) must not wake it.
CHANGES: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileDeletedEvent, FileModifiedEvent, FileMovedEvent, FileClosedEvent,
    FileAttribEvent, DirCreatedEvent, DirDeletedEvent, DirMovedEvent]
# Wait for this long without a change before checking: a copy of many files is looked at once.
SETTLE = 0.5


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher, only: str | None) -> None:
        self.watcher, self.only = watcher, only

    def on_any_event(self, event: FileSystemEvent) -> None:
        paths = {os.fsdecode(event.src_path), os.fsdecode(event.dest_path or b"")} - {""}
        if self.only is not None and self.only not in paths:
            return  # the parent's other entries: not the dataset
        if self.watcher.path in paths:  # the dataset itself replaced (e.g. a symlink swapped)
            self.watcher.rewatch = True
        self.watcher.note(paths, whole=event.is_directory or self.watcher.path in paths)


class Watcher:
    """Tells its owner when the files at a path (a directory, or one file) may have changed."""

    def __init__(self, path: str, interval: float, backend: str = "auto",
                 settle: float = SETTLE) -> None:
        self.path = os.path.abspath(path)
        self.interval, self.settle = interval, min(settle, interval)
        self.changed = threading.Event()
        self.rewatch = False
        self._lock = threading.Lock()
        self._paths: set[str] | None = set()  # None: look at every file
        self._observer: BaseObserver | None = None
        self._watch: ObservedWatch | None = None
        self.backend = "poll" if backend == "poll" else self._notify(backend == "notify")

    def _notify(self, required: bool) -> str:
        observer = Observer()
        if isinstance(observer, PollingObserver):  # no kernel notification on this platform
            if required:
                raise OSError("no kernel file notification on this platform")
            return "poll"
        try:
            parent = os.path.dirname(self.path)
            observer.schedule(_Handler(self, self.path), parent, event_filter=CHANGES)
            self._observer = observer
            self._schedule()
            observer.start()
        except OSError as error:  # e.g. fs.inotify.max_user_watches reached
            if required:
                raise
            log.warning("dataset watch: no kernel notification (%s); polling every %s s",
                        error, self.interval)
            self._observer = None
            return "poll"
        return "notify"

    def _schedule(self) -> None:
        assert self._observer is not None
        if self._watch is not None:
            try:
                self._observer.unschedule(self._watch)
            except KeyError:  # its directory went away, and watchdog dropped the watch already
                pass
            self._watch = None
        if os.path.isdir(self.path):  # a file is seen through its parent's watch
            self._watch = self._observer.schedule(_Handler(self, None), self.path,
                                                  recursive=True, event_filter=CHANGES)

    def note(self, paths: set[str], whole: bool = False) -> None:
        """Record changed paths (whole: anything may have changed) and wake the owner."""
        with self._lock:
            if whole or self._paths is None:
                self._paths = None
            else:
                self._paths |= paths
        self.changed.set()

    def take(self) -> set[str] | None:
        """Return the paths noted since the last call; None if every file must be looked at."""
        with self._lock:
            paths, self._paths = self._paths, set()
        return paths

    def wait(self, timeout: float | None) -> bool:
        """Return True once files changed and stayed quiet for `settle` s; False at the timeout.

        Polling, every wait is `interval` seconds and returns True: the owner looks each time.
        """
        if self.backend == "poll":
            time.sleep(self.interval if timeout is None else min(timeout, self.interval))
            return True
        if not self.changed.wait(timeout):
            return False
        latest = time.monotonic() + self.interval  # a steady stream of changes still gets looked at
        while True:
            self.changed.clear()
            if not self.changed.wait(self.settle) or time.monotonic() >= latest:
                break
        if self.rewatch:
            self.rewatch = False
            self._schedule()
        return True

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
