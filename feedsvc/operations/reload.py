"""Live dataset reload: read only the changed files, validate, guard the archive, commit or refuse.

One Reloader per instance is the store's one writer: under the shipped gunicorn config it runs
in the master (deploy/gunicorn.conf.py), whose watcher wakes on a change and commits it to the
store in one transaction (dataset/sync.py); every worker reads the committed version at its
next request (no re-fork). Invalid data is never written: the store keeps the last good
version and the rejection is written to its status table, which every worker's /readyz reads.
A reload that would remove more than FEEDSVC_MAX_REMOVAL of the served releases is held until
an operator accepts it.

With FEEDSVC_START_CHECK=background (set by deploy/gunicorn.conf.py) a restart serves the
committed store at once, and the watcher's first look, right after, is the check for files
changed while the service was down: an ordinary reload, under the same rules.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar, cast

from flask import Flask

from .. import state
from ..config import BUNDLED_DATA, MaxRemoval
from ..dataset import DatasetError, catalog, guard, media, statedir
from ..dataset.db import connect, transaction
from ..dataset.guard import Held
from ..dataset.ingest import Plan
from ..dataset.loader import stat_key
from ..dataset.reader import Reader
from ..dataset.sync import Looker, full
from ..http.offload import gevent_patched
from ..state import Served
from . import metrics
from .watcher import Watcher, park

log = logging.getLogger("feedsvc.reload")
# Results after which what the workers serve, or report, differs.
NEWS = frozenset({"reloaded", "rejected", "held", "recovered", "failed"})
T = TypeVar("T")
# A check that looks at no file, only at the state file (Reloader._keep): the watcher's, every
# FEEDSVC_RELOAD_INTERVAL without a change. Never a path a notification names (absolute).
STATE_ONLY = frozenset({""})


class Reloader:
    """Compares the dataset on disk with the store, and commits the change when valid."""

    def __init__(self, live: Served, looker: Looker, *, limit: int, max_removal: MaxRemoval,
                 snapshot_dir: str | None) -> None:
        self.live, self.looker = live, looker
        self.root = str(looker.root)
        self.limit, self.max_removal = limit, max_removal
        self.snapshot_dir = snapshot_dir  # the state directory: guard.py's files
        self.held: Held | None = None
        # The last unexpected failure of a reload (type and message), reported once; while
        # set, the next look reads every file afresh, trusting no kept state.
        self.failure: str | None = None
        self.error: str | None = None  # what the status table says is wrong (this writer's)
        self.start_pending = False
        # The files as a rejected look found them (name, stat): until they change, a look
        # without notification (a poll) finds the same problems without parsing them again.
        self._rejected: frozenset[tuple[str, object]] | None = None
        self._linked = self._meta("linked") == "1"
        # A look asked for while one runs (SIGHUP, a notification): the running check runs
        # it next, so that a change made during a check is never dropped (see check).
        self._asked = threading.Lock()
        self._running = False
        self._again: tuple[bool, frozenset[str] | None] | None = None
        self._pool: object | None = None  # a real thread for the looks under gevent
        self._unkept: str | None = None  # why the state file could not be written again

    @property
    def path(self) -> str:
        return self.root

    @property
    def linked(self) -> bool:
        """Whether some files or folders are links (changes to look for by polling)."""
        return self._linked

    def _meta(self, name: str) -> str | None:
        found = self.looker.db.execute("SELECT value FROM meta WHERE name = ?",
                                       (name,)).fetchone()
        return None if found is None else str(found[0])

    def check(self, force: bool = False, *, strict: bool = False,
              paths: Collection[str] | None = None) -> str:
        """Look once; return unchanged, changing, reloaded, rejected, held, recovered or failed.

        force reads every file again whatever its stat says (SIGHUP); strict raises
        DatasetError instead of keeping the old data (at start-up: never serve less than
        check-data accepts); paths, if given, are the only ones a notification said changed.
        busy if another check is running: that one then looks again, as asked (force, paths),
        and returns either look's news, so a change made during a check is never dropped;
        checked after the first check of a restart that found nothing changed (not news:
        what the workers serve is the same).
        """
        if not self._ask(force, paths):
            return "busy"  # the running check looks again, as asked, once it is done
        result: str | None = None
        try:
            while (asked := self._next()) is not None:
                found = self._once(asked[0], strict and result is None, asked[1])
                result = found if result is None or found in NEWS or result not in NEWS \
                    else result  # news (re-fork the workers) is not undone by a later look
        except BaseException:
            with self._asked:
                self._running, self._again = False, None
            raise
        assert result is not None
        return result

    def _ask(self, force: bool, paths: Collection[str] | None) -> bool:
        """Note a look asked for; return whether the caller runs it (no check is running).

        Requests made during a check are merged into one look after it: force if any was
        forced, every file if any asked for every file, else the union of the paths.
        """
        with self._asked:
            named = None if paths is None else frozenset(paths)
            if self._again is not None:
                was_forced, was_named = self._again
                force = force or was_forced
                named = None if named is None or was_named is None else named | was_named
            self._again = (force, named)
            if self._running:
                return False
            self._running = True
            return True

    def _next(self) -> tuple[bool, frozenset[str] | None] | None:
        """Take the look asked for, or say the checks are done (None) if none was."""
        with self._asked:
            asked, self._again = self._again, None
            self._running = asked is not None
            return asked

    def _run(self, look: Callable[[], T]) -> T:
        """Run a look in a real thread when the process is gevent's (a gunicorn master): a
        greenlet would hold the arbiter's loop for the whole parse and transaction."""
        if not gevent_patched():
            return look()
        from gevent.threadpool import ThreadPool

        if self._pool is None:
            self._pool = ThreadPool(1)
        assert isinstance(self._pool, ThreadPool)

        def caught() -> tuple[T | None, Exception | None]:
            try:  # raised again here: gevent would print it from the pool's thread too
                return look(), None
            except Exception as error:
                return None, error
        found: tuple[T | None, Exception | None] = self._pool.spawn(caught).get()
        if found[1] is not None:
            raise found[1]
        return cast(T, found[0])

    def _once(self, force: bool, strict: bool, paths: Collection[str] | None) -> str:
        """Look once (see check)."""
        try:
            result = self._run(lambda: self._look(force, strict, paths))
        # Whatever a reload hits (a bug, a full disk, memory), the last committed data keeps
        # serving, says why it is stale, and the next change or SIGHUP tries again.
        except Exception as error:
            if strict:
                raise
            return self._failed(error)
        if self.start_pending and paths is None and result != "changing":
            self.start_pending = False
            self.status(start_check=None)
            log.info("dataset %s: checked for changes made while down: %s", self.root,
                     result)
            if result == "unchanged":
                return "checked"
        return result

    def _seen(self) -> frozenset[tuple[str, object]]:
        """Return the files whose stat differs from the store's catalog (a stat walk), and
        the media folders' mtimes (a picture a rejected file names may appear meanwhile)."""
        found = catalog.look(self.looker.db, self.looker.root)
        folders = [(str(path), path.stat().st_mtime_ns)
                   for path in _folders(media.media_root(self.looker.root))]
        return frozenset([*((name, key) for name, key, _ in found.read),
                          *((name, None) for name in found.removed), *folders])

    def _look(self, force: bool, strict: bool, paths: Collection[str] | None) -> str:
        self._keep()
        if paths is not None and "" in paths:  # STATE_ONLY, alone or with the files named
            paths = set(paths) - STATE_ONLY
            if not paths:
                return "unchanged"
        if self._rejected is not None and paths is None and not force \
                and self._seen() == self._rejected:
            return "unchanged"
        found = self.looker.look(paths, trust_stat=not force)
        self._rejected = None
        if self.failure is not None and (found.any or force):
            found = self._full()
        accept = self.held is not None and self._accepted(self.held.version)
        if not (found.any or force or accept or self.error is not None
                or self.start_pending):
            return "unchanged"
        return self._consider(found, strict)

    def _keep(self) -> None:
        """Write the state file again if it was deleted or replaced while serving (Looker.keep);
        a file that cannot be written is said once, and the looks go on meanwhile (the writer
        and the workers' open connections still share the old file)."""
        store = self.looker.store
        try:
            why = self.looker.keep()
        except (OSError, sqlite3.Error) as error:
            if self._unkept is None:
                log.warning("state file %s was deleted or replaced while serving and cannot be "
                            "written again (%s): workers may fail to read until it can",
                            store, error)
            self._unkept = str(error)
            return
        self._unkept = None
        if why is not None:
            log.warning("state file %s was %s while serving: written again from the data "
                        "served", store, why)

    def _full(self) -> Plan:
        """After a failure: every file read afresh, as a cold start would."""
        root = Path(self.root)
        return full(self.looker.db, root, self.limit)

    def _consider(self, found: Plan, strict: bool) -> str:
        if found.problems:
            error = DatasetError(list(found.problems))
            if strict:
                raise error
            if any(stat_key(row.name) != row.key for row in found.files
                   if row.name in found.changed):
                return "changing"  # still being written: look again when it settles
            return self._reject(error)
        before = self._meta("version")
        if found.site is None and found.version == before:
            self.looker.commit(found)  # the catalog's stat facts only (if any)
            return self._recovered()
        if found.gone > self.max_removal.allowed(found.served) \
                and not self._accepted(found.version):
            return self._hold(Held(found.version, found.gone, found.served))
        gone = self._gone_ids(found) if found.gone else []
        self._commit(found)
        self.failure = None
        self._forget_hold()
        if before is None:  # the store's first build: a start, not a reload
            log.info("dataset built: version %s, from %s", found.version, self.path)
            return "reloaded"
        metrics.RELOADS.labels(result="reloaded").inc()
        log.info("dataset reloaded: version %s -> %s, from %s", before, found.version,
                 self.path)
        if found.gone:  # which ones, for whoever wonders where a release went
            log.info("dataset reload removed %d releases%s", found.gone,
                     f": {' '.join(gone)}" if gone else "")
        return "reloaded"

    def _gone_ids(self, found: Plan) -> list[str]:
        """Return the ids a plan of changed files takes out of the store (a full read's: [])."""
        if found.site is not None:
            return []
        paths = [*found.removed, *(row.below for row in found.files if row.releases is not None)]
        coming = {r.id for row in found.files for r in row.releases or ()}
        held = self.looker.db.execute(
            "SELECT id FROM releases WHERE file IN (SELECT id FROM files WHERE path IN "
            "(SELECT value FROM json_each(?)))", (json.dumps(paths),))
        return sorted(rid for rid, in held if rid not in coming)

    def _commit(self, found: Plan) -> None:
        """Commit the plan (a new version dated now in the store: no body's Last-Modified is
        older); listeners (WebSub) get what readers saw before and after it."""
        reader, listening = self.live.reader, bool(self.live.listeners)
        changed = found.version != self._meta("version")
        with ExitStack() as reads:
            old = reads.enter_context(reader.read()) if listening else None
            self.looker.commit(found, self._changed_at() if changed else None)
            self._linked = found.linked
            self.error = self.live.unwritten = None
            self.status(error=None, rejected_at=None, loaded_at=_now())
            if old is not None:
                new = reads.enter_context(reader.read())
                now = datetime.now(UTC)
                self.live.swapped(old.view_at(now), new.view_at(now))

    def _changed_at(self) -> dict[str, str]:
        """Return when a new version is committed, for meta (Snapshot.changed_at): in whole
        seconds, as Last-Modified and If-Modified-Since count, and always later than the
        version before, so that two commits within a second are two dates (conditional.py
        never dates a body later than the time it is sent)."""
        before = int(self._meta("changed_at") or 0)
        return {"changed_at": str(max(int(time.time()), before + 1))}

    def status(self, **values: str | None) -> None:
        """Write what this look says for every worker (None: forget it), in a transaction of
        its own: never with the data. A store that cannot take it: this process says it."""
        db = self.looker.db
        try:
            with transaction(db):
                for name, value in values.items():
                    if value is None:
                        db.execute("DELETE FROM status WHERE name = ?", (name,))
                    else:
                        db.execute("INSERT OR REPLACE INTO status VALUES (?, ?)", (name, value))
        except sqlite3.Error as error:
            log.warning("dataset %s: status not written: %s", self.root, error)

    def _say(self, report: str) -> None:
        self.error = report
        self.status(error=report, rejected_at=_now())

    def _failed(self, error: Exception) -> str:
        """Keep serving the last committed data; say why once (degraded, counted, logged)."""
        serving = self._meta("version")
        if isinstance(error, sqlite3.Error):
            failure = f"state not written: {type(error).__name__}: {error}"
        else:
            failure = f"reload failed: {type(error).__name__}: {error}"
        if failure == self.failure:  # the same failure at the next look is not news
            return "unchanged"
        self.failure = failure
        report = f"{failure}; still serving version {serving}"
        if isinstance(error, sqlite3.Error):
            self.live.unwritten = report  # the store may not take the status either
        self._say(report)
        metrics.RELOADS.labels(result="failed").inc()
        log.error("dataset %s, still serving version %s", failure, serving,
                  exc_info=error)
        return "failed"

    def _reject(self, error: DatasetError) -> str:
        self._rejected = self._seen()
        self._say(error.report())  # reported once: the next look is at the next change
        metrics.RELOADS.labels(result="rejected").inc()
        log.error("dataset reload rejected, still serving version %s: %s",
                  self._meta("version"), error.report())
        return "rejected"

    def _hold(self, held: Held) -> str:
        if self.held == held:
            return "unchanged"
        report = held.report(self.max_removal.spec, self._meta("version") or "")
        self.held = held
        self._say(report)
        metrics.RELOADS.labels(result="held").inc()
        log.error("dataset reload %s", report)
        if self.snapshot_dir is not None:
            guard.write_held(self.snapshot_dir, self.path, held)
        return "held"

    def _recovered(self) -> str:
        """What is on disk is again what is served (an edit reverted): forget any rejection."""
        was_degraded = self.error is not None
        self._forget_hold()
        self.failure = None
        if was_degraded:
            self.error = None
            self.status(error=None, rejected_at=None)
        return "recovered" if was_degraded else "unchanged"

    def _forget_hold(self) -> None:
        self.held = None
        if self.snapshot_dir is not None:
            guard.forget(self.snapshot_dir, self.path)

    def _accepted(self, version: str) -> bool:
        return self.snapshot_dir is not None and guard.accepted(self.snapshot_dir, self.path,
                                                                version)


def _folders(root: Path) -> list[Path]:
    """Return a folder and every folder below it (none if it is missing)."""
    if not root.is_dir():
        return []
    return [root, *(path for path in root.rglob("*") if path.is_dir())]


def _now() -> str:
    return datetime.now(UTC).isoformat()


_RELOADER, _WATCHING = "feedsvc.reloader", "feedsvc.watcher"


def init_app(app: Flask) -> Served:
    """Open the store (built from the YAML if missing or unusable) and keep its Reloader.

    Invalid data on disk stops the start (DatasetError), as `feedsvc check-data` would fail;
    a mass removal since the last commit is held, and the store's data served. With
    FEEDSVC_START_CHECK=background and a watcher, a restart serves the committed store at once
    (whatever the archive's size) and the look at every file for changes made meanwhile is
    left to the watcher (start_watching); a cold start builds the store before serving.
    """
    config = app.config
    path, state_dir = config["FEEDSVC_DATA"], config["FEEDSVC_SNAPSHOT_DIR"]
    if path == str(BUNDLED_DATA):
        log.info("serving the sample dataset shipped with feedsvc (FEEDSVC_DATA names yours): %s", path)
    later = config["FEEDSVC_START_CHECK"] == "background" and config["FEEDSVC_RELOAD_INTERVAL"] > 0
    opened = statedir.open_state(state_dir, path)
    with statedir.alone(opened):  # a plain `gunicorn -w N`'s workers: one builds, in turn
        served = state.init_app(app, Served(Reader(opened.path), opened.state))
        looker = Looker(connect(opened.path, write=True), Path(path),
                        config["FEEDSVC_MAX_FILE_BYTES"], meta=statedir.META)
        watch = Reloader(served, looker, limit=config["FEEDSVC_MAX_FILE_BYTES"],
                         max_removal=config["FEEDSVC_MAX_REMOVAL"],
                         snapshot_dir=state_dir if opened.persistent else None)
        watch.status(start_check=None)
        if watch._meta("version") is None:  # a cold start: every file read, built first
            watch._consider(watch._full(), strict=True)  # here: child processes may read
            if opened.first is not None:  # a deleted file is said too, once it is built again
                log.info("state file %s was %s: built from the YAML", opened.path, opened.first)
        elif not later:  # FEEDSVC_START_CHECK=wait: the files decide before serving
            watch.check(strict=True)
    if later:  # the watcher's first look finds what changed while down, or while building
        log.info("dataset %s: served from its state file; the files are compared with it "
                 "next", path)
        watch.start_pending = True
        watch.status(start_check="pending")
    app.extensions[_RELOADER] = watch
    app.extensions[_WATCHING] = None
    return served


def reloader(app: Flask) -> Reloader:
    """Return the app's Reloader (made by init_app)."""
    found: Reloader = app.extensions[_RELOADER]
    return found


def watching(app: Flask) -> tuple[int, threading.Thread, Watcher] | None:
    """Return the pid, thread and watcher of the app's dataset watcher, or None before one
    was started (start_watching)."""
    found: tuple[int, threading.Thread, Watcher] | None = app.extensions[_WATCHING]
    return found


def reload_now(app: Flask) -> str:
    """Check the dataset now, even if the files look unchanged (SIGHUP to gunicorn)."""
    return reloader(app).check(force=True)


def start_watching(app: Flask, on_news: Callable[[str], None] | None = None,
                   serving: Callable[[], bool] | None = None) -> threading.Thread | None:
    """Start the one watcher thread of this instance; call `on_news(result)` after each change.

    Under gunicorn the master runs it and on_news re-forks the workers; a single-process
    server runs it in its one process and needs no on_news: the swap is seen at once.
    `serving` tells whether the processes that serve are up (gunicorn: every worker forked):
    a restart's first look waits for it (at most an interval), so that they serve the
    snapshot meanwhile instead of waiting for the look (gevent runs it in the master's loop).
    """
    interval = app.config["FEEDSVC_RELOAD_INTERVAL"]
    if interval <= 0 or watching(app) is not None:
        return None
    watch = reloader(app)
    # Only the notification is opened here: watching every folder (a scandir of each, seconds
    # at a million files) runs in the watcher's thread, while the workers already serve.
    watcher = Watcher(watch.path, interval, app.config["FEEDSVC_RELOAD_WATCH"], start=False)

    def loop() -> None:
        deadline = time.monotonic() + interval
        while serving is not None and not serving() and time.monotonic() < deadline:
            time.sleep(0.05)  # the arbiter forks its workers meanwhile: they serve at once
        # Only the master watches: a copy of this loop in a worker forked before or during the
        # set-up (gevent) parks for good (see watcher.park).
        if watcher.owned:
            watch._run(watcher.watch_folders)  # the writer's real thread: the loop runs on
        if not watcher.owned:
            park()
        watcher.listen()
        log.info("dataset watch: %s, %s", watcher.backend, watch.path)
        # The first look, at every file, comes after the folders are watched: a file written
        # before is seen by the look, one written after by the watch. It is the look for
        # changes made while down (FEEDSVC_START_CHECK=background), or after the build.
        starting, pending = True, watch.start_pending
        while True:
            # Besides notifications: look every interval while a removal is held (for its
            # acceptance), or when links may hide changes from the notifications.
            looking = watch.held is not None or watch.linked or watcher.backend == "poll"
            notified = starting or watcher.wait(interval)
            if not watcher.owned:  # a copy of this loop in a forked worker (gevent): only the
                park()  # master looks; the copy parks for good (see watcher.park)
            paths: Collection[str] | None
            if notified:
                paths = watcher.take() if watcher.backend == "notify" else None
            elif looking:  # an interval without a change: every file, as due
                paths = None
            elif watch.looker.moved():  # else a stat of the state file: written again if gone
                paths = STATE_ONLY
            else:
                continue
            try:
                result = watch.check(paths=None if starting else paths)
                # busy: the running check (a SIGHUP's) makes this look next, as asked.
                starting = pending and starting and result == "changing"
                if result in NEWS and on_news is not None:
                    on_news(result)
                elif result == "changing":
                    watcher.note(set(), whole=True)  # look again once the writer is done
            # The watcher must outlive any one failed check, or reloads would silently stop.
            except Exception:
                log.exception("dataset check failed")

    thread = threading.Thread(target=loop, name="feedsvc-reload", daemon=True)
    app.extensions[_WATCHING] = (os.getpid(), thread, watcher)
    thread.start()
    return thread
