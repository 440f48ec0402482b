"""A cold start: every file read, parsed and validated, in child processes when it pays.

The result is the Plan the writer rebuilds the store from: every file's row, the vocabulary,
the version sum and the problems, as a load in one process has them (loader.load), and, with
no problem, the releases in staging files beside the store (bulkload.py). Above
CHILD_LOAD_BYTES of YAML the files are cut into runs in path order, one per core: each child
parses its run and sends its site and topic mappings; this process reads the vocabulary from
them all and sends it back; each child checks its releases against it, sends its files
(marshal: no release) and writes its run's staging file, its releases numbered within the
run; no child waits for another (bulkload.settle numbers ties across runs again). The first
child is a new interpreter (safe from any process, threads and all), which forks the others.
"""
from __future__ import annotations

import gc
import logging
import marshal
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from . import Parts, Problem, Site, Topic, duplicate_ids, loader, rows
from . import version as versions
from .bulkload import MAX_RUNS, Staged, change_of, seconds_of, settle, stage, stage_here
from .ingest import Plan
from .loader import FileRow, Read
from .write import FileChange
from .yamlsource import SourceFile, find_files

# Above this many bytes of YAML, the parse is spread over child processes;
# below this many files a child costs more than it saves.
CHILD_LOAD_BYTES = 8 << 20
PER_PROCESS = 1000
log = logging.getLogger("feedsvc.coldstart")


class _Failed(Exception):
    """A child died or reported an error: the files are read again in this process."""


def read_all(root: Path, limit: int, store: Path, *, processes: int | None = None,
             over: int = CHILD_LOAD_BYTES) -> Plan:
    """Read, parse and validate every file under `root`; return what the store is built from,
    its releases staged beside the `store` file."""
    if not root.exists():
        missing = Problem(str(root), None, None, None, "no such file or directory")
        return Plan((), (), (missing,), (), 0, False, 0, 0)
    links: list[str] = []
    names = find_files(root, links)
    wanted = len(os.sched_getaffinity(0)) if processes is None else processes
    count = max(1, min(wanted, MAX_RUNS, len(names) // PER_PROCESS))
    with loader.quiet_gc():
        if _holds_more(names, over):
            runs = [names[len(names) * n // count:len(names) * (n + 1) // count]
                    for n in range(count)]
            try:
                found = _spread(root, limit, runs, bool(links), store)
                log.info("dataset %s: %d files loaded in child processes (%d)", root,
                         len(names), len(runs))
                return found
            except _Failed as error:  # what it staged goes with it (bulkload.Staged)
                log.warning("dataset %s: parallel load failed (%s); loading in one process",
                            root, error)
        return _one(root, limit, names, bool(links), store)


def _holds_more(names: Sequence[str], limit: int) -> bool:
    """Tell whether the files hold more than `limit` bytes: stat until they do."""
    total = 0
    for name in names:
        total += max(loader.stat_key(name)[0], 0)
        if total > limit:
            return True
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
    problems.sort(key=lambda p: (p.file, p.line or 0))
    if fold is None:
        fold = versions.fold((row.below, row.stamp) for row in found)
    files = tuple(found)
    return Plan(files, (), tuple(problems), tuple(row.name for row in files), fold, linked,
                0, 0, site, topics)


def _spread(root: Path, limit: int, runs: Sequence[Sequence[str]], linked: bool,
            store: Path) -> Plan:
    """Have each run read by a child process; gather their files in path order; when there
    is no problem, have each write its staging file."""
    pipes = [multiprocessing.Pipe() for _ in runs]
    mine, theirs = [a for a, _ in pipes], [b for _, b in pipes]
    for pipe in (*mine, *theirs):  # gevent's socketpair (a gunicorn master) is non-blocking
        os.set_blocking(pipe.fileno(), True)
    first: subprocess.Popen[bytes] | None = None
    try:
        fds = [pipe.fileno() for pipe in theirs]
        try:
            first = subprocess.Popen(
                [sys.executable, "-c", "import sys; from feedsvc.dataset.coldstart import main; "
                 "main(sys.argv[1:])", *map(str, fds)],
                pass_fds=fds, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        # gevent's Popen watches its child from the default loop only: a gunicorn master's
        # looks, in a thread of their own, read in one process instead.
        except Exception as error:
            raise _Failed(repr(error)) from error
        for pipe in theirs:
            pipe.close()
        mine[0].send((str(root), [list(run) for run in runs], limit, time.time_ns()))
        gathered = Parts([], [], [])
        for pipe in mine:
            sites, topics, links = _receive(pipe)
            gathered.sites += sites
            gathered.topics += topics
            linked = linked or links
        site, topics, problems = loader.read_vocabulary(root, gathered)
        told = None if site is None else (rows.site_json(site), rows.topics_json(topics))
        staged = None if problems else Staged(store)  # none: nothing can be committed
        file_id = 1  # each run's first
        for run, (pipe, names) in enumerate(zip(mine, runs, strict=True)):
            pipe.send((told, None if staged is None else (str(staged.file(run)), file_id)))
            file_id += len(names)
        sent = [_files(pipe) for pipe in mine]
        found = _plan(root, site, topics, problems, [row for files, _, _ in sent for row in files],
                      linked, versions.total(fold for _, fold, _ in sent))  # summed by each
        found = replace(found, staged=_staged(mine, staged, [s for *_, s in sent],
                                              found.problems))
    except OSError as error:  # e.g. no process could be started
        raise _Failed(repr(error)) from error
    finally:
        for pipe in (*mine, *theirs):
            pipe.close()
        if first is not None:  # it ends once its children have freed their memory (about
            # 0.5 s at 100,000 files): waited for in the background, not before the commit
            threading.Thread(target=_end, args=(first,), name="feedsvc-coldstart-end",
                             daemon=True).start()
    return found


def _staged(pipes: Sequence[Connection], staged: Staged | None, seconds: Sequence[list[int]],
            problems: Sequence[Problem]) -> Staged | None:
    """Wait for each child to stage its run; return the staging files, their ties across runs
    numbered again (None with problems: nothing is staged)."""
    for pipe in pipes:
        _receive(pipe)
    if staged is None or problems:
        if staged is not None:
            staged.close()
        return None
    staged.count = len(pipes)
    settle(staged, seconds)
    return staged


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


def _files(pipe: Connection) -> tuple[list[FileRow], int, list[int]]:
    """Return a child's files (_send_files), their version sum and their releases' seconds."""
    _receive(pipe)
    try:
        fold, sent, seconds = marshal.loads(pipe.recv_bytes())
    except (EOFError, OSError, ValueError) as error:
        raise _Failed(f"a loading process ended early: {error!r}") from error
    rows = [FileRow._make((*row[:-1], tuple(Problem(*p) for p in row[-1]))) for row in sent]
    return rows, fold, seconds


def _send_files(pipe: Connection, entries: Mapping[str, FileRow]) -> list[FileChange]:
    """Send a run's files, version sum and releases' seconds; return the files to stage."""
    files = [change_of(row) for row in entries.values()]
    sent = [(*row._replace(releases=None)[:-1], tuple(  # no release: to the staging file
        (p.file, p.line, p.release, p.field, p.message) for p in row.problems))
        for row in entries.values()]
    fold = versions.fold((r.below, r.stamp) for r in entries.values())
    pipe.send(("ok", None))
    # Version 2: no references, which cost a lookup per object shared (names, paths).
    pipe.send_bytes(marshal.dumps((fold, sent, list(seconds_of(files))), 2))
    return files


def _valid(found: Collection[FileRow]) -> bool:
    """Tell whether a run has no problem of its own (the plan may find more across runs)."""
    ids = [rid for row in found for rid, _ in row.ids]
    return not any(row.problems for row in found) and len(set(ids)) == len(ids)


# What a loading process made, held until it ends (os._exit) once its work is sent: freeing
# every object one by one (or collecting them all) would only cost time.
_ENDING: list[object] = []


def main(fds: Sequence[str]) -> None:
    """In a new interpreter: be the first loading process, on the pipes of these descriptors."""
    gc.disable()  # for good, here and in the processes it forks: they make millions of objects
    _ENDING.append(_lead([Connection(int(fd)) for fd in fds]))  # and no cycles, then end
    os._exit(0)


def _lead(pipes: Sequence[Connection]) -> list[object] | None:
    """In the first child: fork one process for each other run; read the first run; return
    what it made (see _work)."""
    try:
        root, runs, limit, now = pipes[0].recv()
    except EOFError:
        return None
    children = []
    for n in range(1, len(runs)):
        pid = os.fork()  # this process runs no other thread
        if pid == 0:
            for other, pipe in enumerate(pipes):
                if other != n:
                    pipe.close()
            _ENDING.append(_work(pipes[n], Path(root), runs[n], limit, now))
            os._exit(0)
        children.append(pid)
    for pipe in pipes[1:]:
        pipe.close()
    made = _work(pipes[0], Path(root), runs[0], limit, now)
    for pid in children:
        os.waitpid(pid, 0)
    return made


def _work(pipe: Connection, root: Path, names: Sequence[str], limit: int, now: int
          ) -> list[object]:
    """In a child: read, parse and check `names`, send them, write the staging file asked
    for; return what it made, which the process ends holding (main)."""
    made: list[object] = []
    try:
        read: list[Read] = loader.read_files(root, names, limit)
        made.append(read)
        parts = loader.vocabulary_parts(read)  # without their whole documents:
        sites = [(SourceFile(src.name, None), mapping) for src, mapping in parts.sites]
        topics_found = [(SourceFile(src.name, None), m) for src, m in parts.topics]
        pipe.send(("ok", (sites, topics_found, any(link for *_, link in read))))
        told, asked = pipe.recv()  # asked: where to stage, the first file id (or None)
        site, topics = (None, {}) if told is None else \
            (rows.site_from(told[0]), rows.topics_from(told[1]))
        entries = loader.entries(root, read, site, topics, now)
        files = _send_files(pipe, entries)  # first: the parent reads them while this stages
        made += [entries, files]
        if asked is not None and _valid(entries.values()):
            stage(Path(asked[0]), files, asked[1])
        pipe.send(("ok", None))
    except EOFError:
        pass  # the parent gave up on this one
    # Whatever fails here must reach the parent, which then reads in one process.
    except Exception as error:  # noqa: BLE001
        try:
            pipe.send(("error", f"{type(error).__name__}: {error}"))
        except OSError:
            pass
    finally:
        pipe.close()
    return made
