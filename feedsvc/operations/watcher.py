"""Wait until the dataset on disk may have changed: kernel notification, else stat polling.

With notification (inotify, through the small inotify_simple wrapper) an idle dataset costs
nothing: a check runs only after files changed and then stayed quiet for a moment. The reader
waits with poll() (select() under gevent), so it also runs as a greenlet where gevent has
patched the standard library (deploy/gunicorn.conf.py's master); should it fail, the watcher
says so and polls. Where the kernel cannot tell (not Linux, or
FEEDSVC_RELOAD_WATCH=poll, e.g. for NFS), the owner checks every FEEDSVC_RELOAD_INTERVAL seconds
instead, which costs a stat of every file each time.
"""
from __future__ import annotations

import logging
import os
import select
import threading
import time

from inotify_simple import INotify, flags, parse_events

log = logging.getLogger("feedsvc.watcher")

# Changes only: the reloader's own reads (open, read, close without writing) must not wake it.
CHANGES = (flags.CREATE | flags.DELETE | flags.MODIFY | flags.MOVED_FROM | flags.MOVED_TO
           | flags.CLOSE_WRITE | flags.ATTRIB | flags.DELETE_SELF | flags.MOVE_SELF)
ENTRIES = flags.CREATE | flags.DELETE | flags.MOVED_FROM | flags.MOVED_TO | flags.ATTRIB
# The dataset's parent: its entries, and its own removal (the dataset goes with it).
PARENT = ENTRIES | flags.DELETE_SELF | flags.MOVE_SELF
# Wait for this long without a change before checking: a copy of many files is looked at once.
SETTLE = 0.5
# A folder changed (made, moved, removed) or events were lost: any file may have changed.
_WHOLE = flags.ISDIR | flags.Q_OVERFLOW | flags.DELETE_SELF | flags.MOVE_SELF


def park() -> None:
    """End a thread's copy in a forked process (a greenlet, under gevent) without a trace.

    Returning would end it, but threading then fails to forget a thread the fork already
    forgot, and gevent logs that as a traceback in every worker; waiting forever costs nothing.
    """
    threading.Event().wait()


def _readable(fd: int) -> None:
    """Wait until `fd` can be read (or is closed). poll(), not select(): select() refuses a
    descriptor numbered 1024 or more (a process holding many files, e.g. SQLite connections,
    gets such numbers), which ended the reader and left every change unseen. gevent removes
    poll() from `select` and makes select() itself cooperative, with no such limit."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.poll()
    else:
        select.select([fd], [], [])


class Watcher:
    """Tells its owner when the files at a path (a directory, or one file) may have changed."""

    def __init__(self, path: str, interval: float, backend: str = "auto",
                 settle: float = SETTLE, *, start: bool = True) -> None:
        """Watch `path`; start=False: only open the notification (start() watches the folders:
        a scandir of each, which the owner runs off its event loop, not before serving)."""
        self.path = os.path.abspath(path)
        self.interval, self.settle = interval, min(settle, interval)
        self.changed = threading.Event()
        self._lock = threading.Lock()
        self._paths: set[str] | None = set()  # None: look at every file
        self._folders: dict[int, str] = {}
        self._inotify: INotify | None = None
        self.blind = False  # the folders could not be watched again: looking every interval
        self._stopped = False
        self._owner = os.getpid()
        self.backend = "poll" if backend == "poll" else self._notify(backend == "notify")
        if start:
            self.watch_folders()
            self.listen()

    @property
    def owned(self) -> bool:
        """Whether this process started the watcher (not a worker forked from it)."""
        return os.getpid() == self._owner

    def _notify(self, required: bool) -> str:
        try:
            self._inotify = INotify()
        except OSError as error:  # not Linux, or fs.inotify.max_user_instances reached
            if required:
                raise
            return self._poll(f"no kernel notification ({error})")
        os.register_at_fork(after_in_child=self._forked)
        return "notify"

    def _poll(self, why: str) -> str:
        """Look every interval from now on, and say so (never silently: a watcher that stops
        noticing leaves every change unserved)."""
        log.warning("dataset watch: %s; polling every %s s", why, self.interval)
        self.backend = "poll"
        return "poll"

    def watch_folders(self) -> None:
        """Watch every folder of the dataset (or fall back to polling, saying why)."""
        if self._inotify is None:
            return
        try:
            self._watch_all()
        except OSError as error:  # fs.inotify.max_user_watches reached
            self._poll(f"cannot watch {self.path} ({error})")

    def listen(self) -> None:
        """Start reading the notifications (in the owner's thread: a greenlet under gevent)."""
        if self.backend == "notify":
            threading.Thread(target=self._read, name="feedsvc-inotify", daemon=True).start()

    def _forked(self) -> None:
        """In a forked worker: never read the master's notifications (it would take them).

        Threads do not survive a fork, but gevent's greenlets do: the reader's copy would wait
        on the same inotify file. Its descriptor now stands for a pipe that never has data.
        A copy forked just after select() woke it, before it read, finds that it is not the
        owner (see _read) and never reads that pipe: the read would block the worker's whole
        event loop, and gunicorn kill it 30 s later as a timed-out worker.
        """
        if self._inotify is not None:
            never, _keep_open = os.pipe()
            os.dup2(never, self._inotify.fileno())
            os.close(never)

    def _watch_all(self) -> None:
        """Watch the dataset's parent (for the dataset itself), and the dataset: every folder
        below it, or the one file."""
        assert self._inotify is not None
        for wd in list(self._folders):
            try:
                self._inotify.rm_watch(wd)
            except OSError:  # its folder is gone, and its watch with it
                pass
        # The parent tells of the dataset itself being made, removed or replaced; not of its
        # other entries being written: a log file beside a one-file dataset would wake the
        # reader on every write of the log.
        parent = os.path.dirname(self.path)
        self._folders = {self._inotify.add_watch(parent, PARENT): parent}
        # A folder is watched before it is listed, so a folder made in it meanwhile is seen
        # either way. One removed meanwhile (the dataset deleted while this runs) is no
        # error: the watch of its parent, made before, tells of the removal.
        folders = [self.path]
        while folders:
            folder = folders.pop()
            try:  # a one-file dataset written in place: its events stand for the file
                self._folders[self._inotify.add_watch(folder, CHANGES)] = folder
                if folder == self.path and not os.path.isdir(folder):
                    return
                with os.scandir(folder) as entries:
                    folders.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
            except (FileNotFoundError, NotADirectoryError):
                continue  # not there (yet, or any more): its parent's watch tells

    def _read(self) -> None:
        """Read the notifications until stop(); on any other error, poll from then on."""
        assert self._inotify is not None
        try:
            while True:
                _readable(self._inotify.fileno())
                if not self.owned:  # woken in the master, resumed in a forked worker
                    park()
                self._events(os.read(self._inotify.fileno(), 1 << 16))
        except Exception as error:  # noqa: BLE001 (any: the reader must not end unseen)
            if not self._stopped and self.owned:  # a worker's copy: never the reader
                self._poll(f"notification reader failed ({error!r})")
                self.note(set(), whole=True)  # what it missed: every file looked at

    def _events(self, data: bytes) -> None:
        paths: set[str] = set()
        whole, parent = False, os.path.dirname(self.path)
        for event in parse_events(data):
            folder = self._folders.get(event.wd)
            if folder is None:  # a watch dropped when the folders were watched again
                whole = whole or bool(event.mask & flags.Q_OVERFLOW)
                continue
            path = os.path.join(folder, event.name) if event.name else folder
            if folder == parent and event.name and path != self.path:
                continue  # the parent's other entries: not the dataset
            paths.add(path)
            # The dataset itself, or its parent (removed or moved), changed.
            whole = whole or bool(event.mask & _WHOLE) or path in (self.path, parent)
        if whole:
            self._rewatch()  # new folders, or the dataset itself replaced
        if paths or whole:
            self.note(paths, whole)

    def _rewatch(self) -> None:
        """Watch the folders again; if that fails, look every interval until it succeeds.

        The reader must outlive any failure here: were it to end, no change would ever be
        looked at again (e.g. the restored dataset, after its folder had been deleted).
        """
        try:
            self._watch_all()
        except OSError as error:  # the parent folder gone too, or out of watches
            if not self.blind:
                log.warning("dataset watch: cannot watch %s (%s); looking every %s s until it "
                            "can", self.path, error, self.interval)
            self.blind = True
        else:
            self.blind = False

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
        if self.backend == "poll" or self.blind:
            time.sleep(self.interval if timeout is None else min(timeout, self.interval))
            if self.blind:
                self._rewatch()
                self.note(set(), whole=True)  # unwatched meanwhile: any file may have changed
            return True
        if not self.changed.wait(timeout):
            return False
        latest = time.monotonic() + self.interval  # a steady stream of changes still gets looked at
        while True:
            self.changed.clear()
            if not self.changed.wait(self.settle) or time.monotonic() >= latest:
                return True

    def stop(self) -> None:
        self._stopped = True
        if self._inotify is not None:
            self._inotify.close()
