"""Live dataset reload: read only the changed files, validate, guard the archive, swap or refuse.

One Reloader per instance: under gunicorn it runs in the master (deploy/gunicorn.conf.py), whose
watcher thread wakes on a change, loads it here once and then has the workers re-forked so they
share the new data copy-on-write. Invalid data is never swapped in: the last good index stays
live and the rejection is recorded on `Live`. A reload that would remove more than
FEEDSVC_MAX_REMOVAL of the served releases is held until an operator accepts it.

With FEEDSVC_START_CHECK=background (set by deploy/gunicorn.conf.py) a restart serves the
snapshot's index at once, and the watcher's first look, right after, is the check for files
changed while the service was down: an ordinary reload, under the same rules.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import replace
from pathlib import Path

from flask import Flask

from .. import state
from ..config import BUNDLED_DATA, MaxRemoval
from ..dataset import Dataset, DatasetError, Release, facts, guard, saving, snapshot
from ..dataset import journal as journal_file
from ..dataset.assemble import Loaded, assemble, assemble_changed
from ..dataset.guard import Held
from ..dataset.index import Index, build_index
from ..dataset.journal import Journal
from ..dataset.loader import Catalog, Change, stat_key, update
from ..dataset.reindex import update_index
from ..dataset.snapfile import Restored
from ..state import Live
from . import metrics
from .watcher import Watcher, park

log = logging.getLogger("feedsvc.reload")
# Releases changed since the last whole snapshot before another is written: a start applies
# the journal's files with one index update, which is cheap while they are few.
JOURNAL_LIMIT = 200
# Results after which what the workers serve, or report, differs: they must be re-forked.
NEWS = frozenset({"reloaded", "rejected", "held", "recovered", "failed"})


class Reloader:
    """Compares the dataset on disk with the one served, and swaps in new data when valid."""

    def __init__(self, live: Live, loaded: Loaded | Restored, *, limit: int,
                 max_removal: MaxRemoval, snapshot_dir: str | None,
                 journal: Journal | None = None) -> None:
        """Serve `loaded`: the snapshot, whose `journal` says which files changed since it.

        A Restored snapshot's catalog is read at the first check, which is then the check
        for changes made while the service was down (`live.start_pending` until it is done).
        """
        self.live, self.root = live, loaded.index.dataset.source
        self.limit, self.max_removal = limit, max_removal
        self.snapshot_dir = snapshot_dir
        self._journal, self._base = dict(journal or {}), loaded.index.version
        self._pending = bool(journal)  # the journal's files are read, not yet served
        # Files read since the served data was built: only they can differ from it.
        self._touched: set[str] = set(journal or ())
        self.held: Held | None = None
        # The last unexpected failure of a reload (type and message), reported once; while
        # set, the next look loads and indexes every file afresh, trusting no kept state.
        self.failure: str | None = None
        # A look asked for while one runs (SIGHUP, a notification): the running check runs
        # it next, so that a change made during a check is never dropped (see check).
        self._asked = threading.Lock()
        self._running = False
        self._again: tuple[bool, frozenset[str] | None] | None = None
        self._restored = loaded if isinstance(loaded, Restored) else None
        # Until the files are read: no vocabulary, so the first update loads every file.
        self.seen = Catalog(self.root, {}, None, {})
        if isinstance(loaded, Loaded):
            self._serve_catalog(loaded.index, loaded.catalog)

    def _serve_catalog(self, index: Index, catalog: Catalog) -> None:
        self.served = Loaded(index, catalog)
        self.seen = journal_file.with_journal(catalog, self._journal)

    def _settle(self) -> None:
        """Read the restored snapshot's catalog; if it cannot be, load every file instead."""
        restored, self._restored = self._restored, None
        if restored is None:
            return
        catalog = restored.catalog()
        if catalog is not None:
            self._serve_catalog(restored.index, catalog)
            return
        log.warning("dataset %s: loading every file to compare with the snapshot's data",
                    self.root)
        fresh = self._full(Path(self.root), self.limit)
        # Served: the snapshot's index, of no known files or vocabulary: what is on disk is
        # assembled and indexed afresh, and swapped in if valid (see _consider).
        self.served = Loaded(restored.index, replace(fresh, files={}, fold=None, site=None))
        self.seen, self._touched, self._pending = fresh, set(fresh.files), True

    @property
    def path(self) -> str:
        return self.root

    @property
    def linked(self) -> bool:
        """Whether some files or folders are links (changes to look for by polling)."""
        return self._restored is None and self.seen.linked

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

    def _once(self, force: bool, strict: bool, paths: Collection[str] | None) -> str:
        """Look once (see check)."""
        try:
            self._settle()
            result = self._look(force, strict, paths)
        # Whatever a reload hits (a bug, a full disk, memory), the last good data keeps
        # serving, says why it is stale, and the next change or SIGHUP tries again.
        except Exception as error:
            if strict:
                raise
            return self._failed(error)
        if self.live.start_pending and paths is None and result != "changing":
            # Unchanged: every worker reports it (a shared page); news: the workers
            # forked again, with the new data, do.
            self.live.start_checked(everywhere=result not in NEWS)
            log.info("dataset %s: checked for changes made while down: %s", self.root,
                     result)
            if result == "unchanged":
                return "checked"
        return result

    def serve_journal(self) -> str:
        """Serve the snapshot with its journal's files: what was served before the stop.

        Only the journal's entries are assembled, no file on disk is read: whatever changed
        while the service was down (even invalid data, or a path through a link, which would
        make a look read every file) is for the first look, an ordinary reload, to judge.
        """
        # At start, before any watcher or signal handler could ask for a look: none runs.
        self._settle()
        if self.served.catalog.site is None:  # the snapshot's catalog was not trusted
            return "unchanged"  # the first look compares every file, as after _settle
        self._pending = False
        # Served before the stop: a removal in it was allowed (or accepted) then.
        return self._consider(Change(self.seen, (), ()), strict=True, guarded=False)

    def _look(self, force: bool, strict: bool, paths: Collection[str] | None) -> str:
        change = update(self.seen, self.limit, trust_stat=not force, full=self._full,
                        only=paths)
        self.seen = change.catalog
        if self.failure is not None and (change.any or force):
            return self._rebuild(strict)
        accept = self.held is not None and self._accepted(self.held.version)
        if not (change.any or force or accept or self._pending):
            return "unchanged"
        self._pending = False
        self._touched.update(change.changed, change.removed)
        return self._consider(change, strict)

    def _consider(self, change: Change, strict: bool, guarded: bool = True) -> str:
        diff = self._diff(change.catalog)
        removed, added = self._releases(diff)
        served = self.served.index
        dataset = assemble_changed(served, change.catalog, removed,
                                   [entry for entry in diff.values() if entry is not None])
        if dataset is None:
            try:
                dataset = assemble(change.catalog)
            except DatasetError as error:
                if strict:
                    raise
                if any(stat_key(name) != change.catalog.files[name].key for name in change.changed):
                    return "changing"  # still being written: look again when it settles
                return self._reject(error)
            gone = guard.removed_ids(served, dataset)
        else:
            gone = {r.id for r in removed} - {r.id for r in added}  # the changed files' only
        if dataset.version == served.version and self.served.catalog.site is not None:
            return self._recovered()
        if guarded and len(gone) > self.max_removal.allowed(len(served.releases)) \
                and not self._accepted(dataset.version):
            return self._hold(Held(dataset.version, len(gone), len(served.releases)))
        built = self._index(dataset, change.catalog, removed, added)
        return self._swap(Loaded(built, change.catalog), diff, gone)

    def _failed(self, error: Exception) -> str:
        """Keep serving the last good data; say why once (degraded, counted, logged)."""
        failure = f"reload failed: {type(error).__name__}: {error}"
        if failure == self.failure:  # the same failure at the next look is not news
            return "unchanged"
        self.failure = failure
        self.live.reject(f"{failure}; still serving version {self.live.index.version}")
        metrics.RELOADS.labels(result="failed").inc()
        log.exception("dataset %s, still serving version %s", failure, self.live.index.version)
        return "failed"

    def _rebuild(self, strict: bool) -> str:
        """After a failure: load and index every file afresh, as a restart would."""
        fresh = self._full(Path(self.root), self.limit)
        # Served: the live index, of no known files or vocabulary: _consider assembles and
        # indexes what is on disk afresh (as _settle does when a snapshot's catalog is lost).
        self.served = Loaded(self.live.index, replace(fresh, files={}, fold=None, site=None))
        self.seen, self._touched, self._pending = fresh, set(fresh.files), False
        result = self._consider(Change(fresh, tuple(fresh.files), ()), strict)
        self.failure = None
        return result

    def _diff(self, catalog: Catalog) -> Journal:
        """Return the files whose releases differ from the served ones (None: deleted)."""
        served = self.served.catalog.files
        return {name: catalog.files.get(name) for name in self._touched
                if name not in served or name not in catalog.files
                or served[name].releases is not catalog.files[name].releases}

    def _releases(self, diff: Journal) -> tuple[list[Release], list[Release]]:
        """Return the served releases of the changed files, and the releases they hold now."""
        served = self.served.catalog.files
        removed = [r for name in diff if name in served for r in served[name].releases]
        added = [r for entry in diff.values() if entry is not None for r in entry.releases]
        return removed, added

    def _index(self, dataset: Dataset, catalog: Catalog, removed: list[Release],
               added: list[Release]) -> Index:
        """Index the new dataset: update the served index by the files changed since it."""
        served = self.served.catalog
        if served.site is not catalog.site or served.topics is not catalog.topics:
            return build_index(dataset)  # the vocabulary was read again: all of it is new
        return update_index(self.served.index, dataset, removed, added)

    def _full(self, root: Path, limit: int) -> Catalog:
        """Load every file (the vocabulary changed): in child processes when the data is large."""
        return snapshot.load_catalog(root, limit)

    def _swap(self, loaded: Loaded, diff: Journal, gone: Collection[str]) -> str:
        # Worked out from the served index's (by the releases changed), before anyone asks:
        # before it is saved, and before the workers fork (they share them).
        facts.facts(loaded.index, self.served.index)
        unsaved = None
        if self.snapshot_dir is not None:  # before anyone forks: its pages are then shared
            unsaved = self._saved(loaded, diff)
        self._forget_hold()
        old = self.live.swap(loaded.index)
        self.served, self._touched = loaded, set()
        metrics.RELOADS.labels(result="reloaded").inc()
        log.info("dataset reloaded: version %s -> %s, %d releases, from %s",
                 old.version, loaded.index.version, len(loaded.index.releases), self.path)
        if gone:  # which ones, for whoever wonders where a release went
            log.info("dataset reload removed %d releases: %s", len(gone), " ".join(sorted(gone)))
        if unsaved is not None:  # served all the same: a valid publish is never refused
            self.live.reject(f"state not saved: {unsaved}")
        return "reloaded"

    def _saved(self, loaded: Loaded, diff: Journal) -> str | None:
        """Save the new state (journal or snapshot); return why it was not, or None."""
        try:
            if self._save(loaded, diff):
                return None
            why = "the snapshot or journal could not be written (see the log)"
        # A full disk or a bug in saving must not refuse the data: a restart then reads
        # the older snapshot and its journal and looks for the files changed since.
        except Exception as error:
            log.exception("dataset state not saved")
            why = f"{type(error).__name__}: {error}"
        metrics.RELOADS.labels(result="unsaved").inc()
        return why

    def _save(self, loaded: Loaded, diff: Journal) -> bool:
        """Note the changed files in the journal; save a whole snapshot once it grows large."""
        saving.settle()  # the snapshot of a cold start: written before anything newer
        self._journal.update(diff)
        changed = sum(len(e.releases) if e is not None else 1 for e in self._journal.values())
        vocabulary = loaded.catalog.site is not self.served.catalog.site
        if vocabulary or changed > JOURNAL_LIMIT:
            if not snapshot.write_snapshot(self._file("snapshot"), loaded):
                return False
            self._journal, self._base = {}, loaded.index.version
            return True
        return journal_file.write_journal(self._file("snapshot"), self._base, self._journal)

    def _reject(self, error: DatasetError) -> str:
        self.live.reject(error.report())  # reported once: the next look is at the next change
        metrics.RELOADS.labels(result="rejected").inc()
        log.error("dataset reload rejected, still serving version %s: %s",
                  self.live.index.version, error.report())
        return "rejected"

    def _hold(self, held: Held) -> str:
        if self.held == held:
            return "unchanged"
        report = held.report(self.max_removal.spec, self.live.index.version)
        self.held = held
        self.live.reject(report)
        metrics.RELOADS.labels(result="held").inc()
        log.error("dataset reload %s", report)
        if self.snapshot_dir is not None:
            guard.write_held(self.snapshot_dir, self.path, held)
        return "held"

    def _recovered(self) -> str:
        """What is on disk is again what is served (an edit reverted): forget any rejection."""
        was_degraded = self.live.last_error is not None
        self._forget_hold()
        self.live.clear_rejection()
        return "recovered" if was_degraded else "unchanged"

    def _forget_hold(self) -> None:
        self.held = None
        if self.snapshot_dir is not None:
            guard.forget(self.snapshot_dir, self.path)

    def _accepted(self, version: str) -> bool:
        return self.snapshot_dir is not None and guard.accepted(self.snapshot_dir, self.path,
                                                                version)

    def _file(self, kind: str) -> Path:
        assert self.snapshot_dir is not None
        return snapshot.side_file(self.snapshot_dir, self.path, kind)


_RELOADER, _WATCHING = "feedsvc.reloader", "feedsvc.watcher"


def init_app(app: Flask) -> Live:
    """Load the dataset (from its snapshot, then the changed files) and keep its Reloader.

    Invalid data on disk stops the start (DatasetError), as `feedsvc check-data` would fail;
    a mass removal since the snapshot is held, and the snapshot's data served. With
    FEEDSVC_START_CHECK=background and a watcher, a restart serves the snapshot (and its
    journal) at once, and a cold start what it read; the look at every file for changes
    made meanwhile is left to the watcher (start_watching).
    """
    config = app.config
    path, snapshot_dir = config["FEEDSVC_DATA"], config["FEEDSVC_SNAPSHOT_DIR"]
    if path == str(BUNDLED_DATA):
        log.info("serving the sample dataset shipped with feedsvc (FEEDSVC_DATA names yours): %s", path)
    later = config["FEEDSVC_START_CHECK"] == "background" and config["FEEDSVC_RELOAD_INTERVAL"] > 0
    restored = snapshot.restore(path, snapshot_dir) if later and snapshot_dir is not None \
        else None
    loaded = restored or snapshot.load(path, snapshot_dir, config["FEEDSVC_MAX_FILE_BYTES"],
                                       background=True)
    live = state.init_app(app, loaded.index)
    journal = None if snapshot_dir is None else journal_file.read_journal(
        snapshot.side_file(snapshot_dir, path, "snapshot"), loaded.index.version)
    watch = Reloader(live, loaded,
                     limit=config["FEEDSVC_MAX_FILE_BYTES"],
                     max_removal=config["FEEDSVC_MAX_REMOVAL"], snapshot_dir=snapshot_dir,
                     journal=journal)
    if journal:  # what was served before the stop: the journal's files, and no others
        watch.serve_journal()  # the files on disk are then compared with it, as when running
    if not later:
        watch.check(strict=True)
    else:  # the watcher's first look finds what changed while down, or during a cold start
        live.start_unchecked()
    saving.begin()  # the snapshot of a cold start, written while the app begins to serve
    app.extensions[_RELOADER] = watch
    app.extensions[_WATCHING] = None
    return live


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
    watch, live = reloader(app), state.live(app)
    watcher = Watcher(watch.path, interval, app.config["FEEDSVC_RELOAD_WATCH"])
    log.info("dataset watch: %s, %s", watcher.backend, watch.path)

    def loop() -> None:
        starting = live.start_pending  # the look for changes made while down: at once
        deadline = time.monotonic() + interval
        while starting and serving is not None and not serving() \
                and time.monotonic() < deadline:
            time.sleep(0.05)  # the arbiter forks its workers meanwhile
        while True:
            # Besides notifications: look every interval while a removal is held (for its
            # acceptance), or when links may hide changes from the notifications.
            looking = watch.held is not None or watch.linked or watcher.backend == "poll"
            notified = starting or watcher.wait(interval if looking else None)
            if not watcher.owned:  # a copy of this loop in a forked worker (gevent): only the
                park()  # master looks; the copy parks for good (see watcher.park)
            paths = watcher.take() if notified and watcher.backend == "notify" else None
            try:
                result = watch.check(paths=None if starting else paths)
                # busy: the running check (a SIGHUP's) makes this look next, as asked.
                starting = starting and result == "changing"
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
