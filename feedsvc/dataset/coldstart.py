"""A cold start: every file read, parsed and validated, in child processes when it pays.

The result is the Plan the writer rebuilds the store from: every file's row, the vocabulary,
the version sum and the problems, as a load in one process has them (loader.load), and, with
no problem, the releases in staging files beside the store (bulkload.py). Above
CHILD_LOAD_BYTES of YAML the files are dealt into runs in turn (file n to run n % runs), one
per core, each read by a loading process (loading.py): each parses its run and sends its site
and topic mappings; this process reads the vocabulary from them all and sends it back; each
checks its releases against it and sends what orders them; this process numbers every release
and sends each its keys; each writes its run's staging files, and sends its files (marshal: no
release) once the first is written, read here while they write the others. For a new store
(`fresh`) each cuts its releases into chunks by key, every run's chunk n holding the same range
of keys (the runs are dealt, so each holds a share of every range): this process copies each
chunk into the new store while the children write the next, and only the last is copied after
they end. The first loading process is started before the files are listed.
"""
from __future__ import annotations

import logging
import marshal
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from itertools import zip_longest
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from . import Parts, Problem, Site, Topic, bulkload, duplicate_ids, loader, rows
from . import version as versions
from .bulkload import MAX_FILES, Staged, change_of, keys_of, stage_here
from .ingest import Plan
from .loader import FileRow
from .yamlsource import SUFFIXES, LocatedMap, SourceFile, find_files

# Above this many bytes of YAML, the parse is spread over child processes;
# below this many files a child costs more than it saves.
CHILD_LOAD_BYTES = 8 << 20
PER_PROCESS = 1000
log = logging.getLogger("feedsvc.coldstart")


class _Failed(Exception):
    """A child died or reported an error: the files are read again in this process."""


def read_all(root: Path, limit: int, store: Path, *, processes: int | None = None,
             over: int = CHILD_LOAD_BYTES, fresh: bool = False) -> Plan:
    """Read, parse and validate every file under `root`; return what the store is built from,
    its releases staged beside the `store` file (and, `fresh`: for a new store, what
    bulkload.build builds from, partly built meanwhile)."""
    if not root.exists():
        return loader.absent(root)
    wanted = min(MAX_FILES, len(os.sched_getaffinity(0)) if processes is None else processes)
    with loader.quiet_gc():
        lead = _lead_started(root, wanted) if _holds_more(root, over) else None
        try:  # the first child starts (imports) while this process lists the files
            links: list[str] = []
            names = find_files(root, links)
            if lead is not None:
                count = max(1, min(wanted, len(names) // PER_PROCESS))
                try:
                    found = _spread(lead, root, limit, [names[n::count] for n in range(count)],
                                    bool(links), store, fresh)
                    log.info("dataset %s: %d files loaded in child processes (%d)", root,
                             len(names), count)
                    return found
                except _Failed as error:  # what it staged goes with it (bulkload.Staged)
                    _failed(root, error)
            return _one(root, limit, names, bool(links), store)
        finally:
            if lead is not None:
                lead.close()


def _failed(root: Path, error: _Failed) -> None:
    log.warning("dataset %s: parallel load failed (%s); loading in one process", root, error)


def _holds_more(root: Path, limit: int) -> bool:
    """Tell whether the YAML files under `root` hold more than `limit` bytes: stat until they
    do. A guess made before they are listed (find_files), which only decides whether child
    processes read them: it follows no folder link, and counts hidden files."""
    if not root.is_dir():
        return root.stat().st_size > limit
    total, folders = 0, [str(root)]
    while folders:
        try:
            with os.scandir(folders.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(entry.path)
                    elif entry.name.endswith(SUFFIXES) and entry.is_file():
                        total += entry.stat().st_size
                        if total > limit:
                            return True
        except OSError:  # unreadable, or gone meanwhile: skipped, as find_files does
            continue
    return False


def _one(root: Path, limit: int, names: Sequence[str], linked: bool, store: Path) -> Plan:
    """Read every file in this process."""
    now = time.time_ns()
    read = loader.read_files(root, names, limit)
    site, topics, problems = loader.read_vocabulary(root, loader.vocabulary_parts(read))
    entries = list(loader.entries(root, read, site, topics, now).values())
    linked = linked or any(link for *_, link in read)
    found = _plan(root, site, topics, problems,  # the releases go to a staging file
                  [row._replace(releases=None) for row in entries], linked)
    if found.problems:
        return found
    return replace(found, staged=stage_here(store, [change_of(row) for row in entries]))


def _plan(root: Path, site: Site | None, topics: Mapping[str, Topic],
          vocabulary: Iterable[Problem], found: Sequence[FileRow], linked: bool,
          fold: int | None = None) -> Plan:
    """Return the plan of a full read: problems in loader.load's order."""
    problems = list(vocabulary)
    for row in found:
        problems += row.problems
    ids = [rid for row in found for rid, _ in row.ids]
    if len(set(ids)) < len(ids):  # files come in path order already
        problems += duplicate_ids((row.name, row.ids) for row in found)
    if not found and not problems:
        problems.append(Problem(str(root), None, None, None, "no .yaml or .yml files found"))
    problems.sort(key=Problem.place)
    if fold is None:
        fold = versions.fold((row.below, row.stamp) for row in found)
    files = tuple(found)
    return Plan(files, (), tuple(problems), tuple(row.name for row in files), fold, linked,
                0, 0, site, topics)


class _Lead:
    """The first loading process (a new interpreter: loading.main), on a pipe for each run it
    may be sent (it forks a process for each run past the first)."""

    def __init__(self, runs: int) -> None:
        pipes = [multiprocessing.Pipe() for _ in range(runs)]
        self.pipes, theirs = [a for a, _ in pipes], [b for _, b in pipes]
        self.process: subprocess.Popen[bytes] | None = None
        try:
            for pipe in (*self.pipes, *theirs):  # gevent's socketpair (a gunicorn master)
                os.set_blocking(pipe.fileno(), True)  # is non-blocking
            fds = [pipe.fileno() for pipe in theirs]
            self.process = subprocess.Popen(
                [sys.executable, "-c", "import sys; from feedsvc.dataset.loading import main; "
                 "main(sys.argv[1:])", *map(str, fds)],
                pass_fds=fds, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        # gevent's Popen watches its child from the default loop only: a gunicorn master's
        # looks, in a thread of their own, read in one process instead.
        except Exception as error:
            self.close()
            raise _Failed(repr(error)) from error
        finally:
            for pipe in theirs:
                pipe.close()

    def close(self) -> None:
        """Close the pipes; the process ends once its children have freed their memory (about
        0.5 s at 100,000 files): waited for in the background, not before the commit."""
        for pipe in self.pipes:
            pipe.close()
        if self.process is not None:
            threading.Thread(target=_end, args=(self.process,), name="feedsvc-coldstart-end",
                             daemon=True).start()
            self.process = None


def _lead_started(root: Path, runs: int) -> _Lead | None:
    try:
        return _Lead(runs)
    except _Failed as error:
        _failed(root, error)
        return None


def _spread(lead: _Lead, root: Path, limit: int, runs: Sequence[Sequence[str]], linked: bool,
            store: Path, fresh: bool) -> Plan:
    """Have each run read by a child process; gather their files in path order; when there
    is no problem, have each write its staging files."""
    mine = lead.pipes[:len(runs)]
    try:
        mine[0].send((str(root), [list(run) for run in runs], limit, time.time_ns()))
        sites: list[tuple[int, int, SourceFile, LocatedMap]] = []
        topics_found: list[tuple[int, int, SourceFile, LocatedMap]] = []
        for run, pipe in enumerate(mine):  # (file n of the run, run): path order
            held_sites, held_topics, links = _receive(pipe)
            sites += [(n, run, src, mapping) for n, src, mapping in held_sites]
            topics_found += [(n, run, src, mapping) for n, src, mapping in held_topics]
            linked = linked or links
        site, topics, problems = loader.read_vocabulary(root, Parts(
            _in_order(sites), _in_order(topics_found), []))
        told = None if site is None else (rows.site_json(site), rows.topics_json(topics))
        for pipe in mine:
            pipe.send(told)
        staged = _stage(mine, store, fresh, clean=not problems)
        raw = [_receive_bytes(pipe) for pipe in mine]  # the children go on staging
        sent = [_files(raw.pop(0)) for _ in mine]  # each message freed once read
        dealt = zip_longest(*(files for files, _ in sent))  # back in path order
        found = _plan(root, site, topics, problems,
                      [row for turn in dealt for row in turn if row is not None],
                      linked, versions.total(fold for _, fold in sent))  # summed by each
        if staged is not None:
            _build(mine, staged, fresh)
    except OSError as error:  # e.g. a pipe closed
        raise _Failed(repr(error)) from error
    if found.problems and staged is not None:  # never: `clean` is a plan without problems
        staged.close()
        staged = None
    return replace(found, staged=staged)


def _in_order(parts: list[tuple[int, int, SourceFile, LocatedMap]]) -> list[tuple[SourceFile, LocatedMap]]:
    """Return the mappings of (file n of its run, run, file, mapping) in path order."""
    return [(src, mapping) for *_, src, mapping in sorted(parts, key=lambda part: part[:2])]


def _stage(pipes: Sequence[Connection], store: Path, fresh: bool, *, clean: bool
           ) -> Staged | None:
    """Number every release; unless the plan will have problems (as _plan finds them: the
    vocabulary's, a run's, an id in two runs), have each child write its run's staging files
    and wait for their first chunks; return them."""
    orders = [_receive(pipe) for pipe in pipes]  # (whether its files have problems, order)
    ids = [rid for _, order in orders for _, rid in order]
    if not clean or any(bad for bad, _ in orders) or len(set(ids)) < len(ids):
        for pipe in pipes:
            pipe.send(None)
        return None
    runs = len(pipes)
    staged = Staged(store, MAX_FILES // runs if fresh else 1)
    keys = keys_of([order for _, order in orders])
    bounds = bulkload.bounds_of(keys, staged.chunks)
    for run, pipe in enumerate(pipes):  # file n of the run is file n * runs + run
        pipe.send(([str(staged.file(run, chunk)) for chunk in range(staged.chunks)],
                   run + 1, runs, keys[run], bounds))
    staged.count = runs
    for pipe in pipes:  # each child sends its files once its first chunk is staged
        _receive(pipe)
    return staged


def _build(pipes: Sequence[Connection], staged: Staged, fresh: bool) -> None:
    """Wait for every staging file (the first chunk's were); `fresh`: copy each chunk into a
    new store as it comes."""
    conn = bulkload.new_store(staged) if fresh else None
    try:
        for chunk in range(staged.chunks):
            for pipe in pipes if chunk else ():
                _receive(pipe)  # its run's chunk is written
            if conn is not None:
                bulkload.add(conn, staged, chunk)
    finally:
        if conn is not None:
            conn.close()


def _end(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _receive(pipe: Connection) -> Any:
    """Return what a child sent; _Failed if it failed or ended."""
    try:
        kind, value = pipe.recv()
    except (EOFError, OSError) as error:
        raise _Failed(f"a loading process ended early: {error!r}") from error
    if kind != "ok":
        raise _Failed(value)
    return value


def _receive_bytes(pipe: Connection) -> bytes:
    """Return the bytes a child sent after an "ok"; _Failed if it failed or ended."""
    _receive(pipe)
    try:
        return pipe.recv_bytes()
    except (EOFError, OSError) as error:
        raise _Failed(f"a loading process ended early: {error!r}") from error


def _files(data: bytes) -> tuple[list[FileRow], int]:
    """Return a child's files (loading._send_files) and their version sum."""
    try:
        fold, sent = marshal.loads(data)
    except ValueError as error:
        raise _Failed(f"a loading process sent what it could not: {error!r}") from error
    return [FileRow._make((*row[:-1], tuple(Problem(*p) for p in row[-1]) if row[-1] else ()))
            for row in sent], fold
