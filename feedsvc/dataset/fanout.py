"""A full load in child processes, one per core: each reads, parses and validates a share.

The result is the catalog loader.load returns: the same entries, problems and vocabulary, in
the same order. The files are cut into contiguous runs in path order, one per process; each
process reads and parses its run and sends back only the site and topic mappings it found;
this process reads the vocabulary from all of them, in path order, as loader.load does, and
sends it back; each process then checks its releases against it and sends them as a run
(merge.py: records newest first, their sort keys and posting lists), with its entries.

This process reads and parses nothing itself: the garbage of a parse (3-4x the kept data)
never inflates a serving process, which merges the runs into one store and index without
making a release, and unpickles the entries only when they are first read. The processes
are started safely from any process, threads and all: the first is a new interpreter
("spawn"), which forks the others while it runs no other thread.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal, NamedTuple

from . import Parts, Problem, Site, Topic, loader, merge, version
from .loader import Catalog, FileEntry, Read
from .merge import Merged
from .yamlsource import LocatedMap, SourceFile, find_files

# Below this many files a process, starting another costs more than it saves.
PER_PROCESS = 1000
log = logging.getLogger("feedsvc.fanout")
Mappings = list[tuple[SourceFile, LocatedMap]]
# What one run holds of the vocabulary (site and topic mappings), and whether it has links.
Found = tuple[Mappings, Mappings, bool]
Vocabulary = tuple[Site | None, dict[str, Topic], list[Problem]]
# How the first process starts: "spawn" anywhere; "fork" only where no other thread runs.
Start = Literal["spawn", "fork"]


class _Failed(Exception):
    """A process of the load died or reported an error: the load is done again here."""


def cores() -> int:
    """Return how many cores this process may run on (all of them where that is not told)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load(root: Path, limit: int, processes: int | None = None, start: Start = "spawn", *,
         over: int = 0) -> Catalog:
    """Return what loader.load(root, limit) returns, read in up to `processes` child processes
    (at least one; loaded here only if they fail, or if the files hold `over` bytes or less)."""
    return read(root, limit, processes, start, over=over)[0]


def read(root: Path, limit: int, processes: int | None = None, start: Start = "spawn", *,
         over: int = 0) -> tuple[Catalog, Merged | None]:
    """Return load's catalog and, when child processes read it, their merged runs (merge.py):
    its releases are then records of the merged store, and assemble.build indexes them."""
    if not root.exists():
        return loader.load(root, limit), None
    wanted = cores() if processes is None else processes
    now = time.time_ns()
    with loader.quiet_gc():
        links: list[str] = []
        names = find_files(root, links)
        if not _holds_more(names, over):
            return loader.load(root, limit), None
        count = max(1, min(wanted, len(names) // PER_PROCESS))
        runs = [names[len(names) * n // count:len(names) * (n + 1) // count] for n in range(count)]
        try:
            files, vocabulary, linked, merged, told = _spread(root, limit, runs, now, start)
        except _Failed as error:
            log.warning("dataset %s: parallel load failed (%s); loading in one process",
                        root, error)
            return loader.load(root, limit), None
    log.info("dataset %s: loaded in child processes (%d)", root, count)
    site, topics, problems = vocabulary
    return Catalog(str(root), files, site, topics, tuple(problems), bool(links) or linked,
                   version.total(facts.fold for facts in told),
                   frozenset(name for facts in told for name in facts.racy)), merged


class _Told(NamedTuple):
    """What a loading process tells of its files, beside their entries."""

    fold: int  # their version sum (version.py)
    racy: list[str]  # those changed too recently to trust their stat (loader.RACY_NS)
    clean: bool  # none has a problem


def _holds_more(names: Sequence[str], limit: int) -> bool:
    """Tell whether the files hold more than `limit` bytes: stat until they do."""
    total = 0
    for name in names:
        total += max(loader.stat_key(name)[0], 0)
        if total > limit:
            return True
    return False


def _spread(root: Path, limit: int, runs: Sequence[Sequence[str]], now: int, start: Start
            ) -> tuple[merge.RunFiles, Vocabulary, bool, Merged, list[_Told]]:
    """Have each run loaded by a child process; merge their releases (merge.py) and their
    entries, in path order (unpickled when first read); return them and what they told."""
    pipes = [multiprocessing.Pipe() for _ in runs]
    mine, theirs = [pipe for pipe, _ in pipes], [pipe for _, pipe in pipes]
    for pipe in (*mine, *theirs):  # made by gevent's socketpair (a gunicorn master), they
        os.set_blocking(pipe.fileno(), True)  # would be non-blocking: a read would fail
    first: Child | None = None
    try:
        first = _start(theirs, start)
        for pipe in theirs:
            pipe.close()
        mine[0].send((root, runs, limit, now))
        found: list[Found] = [_receive(pipe) for pipe in mine]
        gathered = Parts([], [], [])
        for sites, topics, _ in found:
            gathered.sites += sites
            gathered.topics += topics
        vocabulary = loader.read_vocabulary(root, gathered)
        for pipe in mine:
            pipe.send(vocabulary[:2])
        sent = [_receive_run(pipe) for pipe in mine]
        told = [facts for _, facts, _ in sent]
        merged = merge.merge([run for run, _, _ in sent], clean=all(t.clean for t in told))
        files = merge.RunFiles([payload for _, _, payload in sent], merged)
        return files, vocabulary, any(linked for _, _, linked in found), merged, told
    except OSError as error:  # e.g. no process could be started
        raise _Failed(repr(error)) from error
    finally:
        for pipe in mine:
            pipe.close()  # a process still waiting for the vocabulary then ends
        for pipe in theirs:
            pipe.close()
        if first is not None:  # it ends once its processes have freed their memory (about
            # 0.5 s at 100,000 files): waited for in the background, not before serving
            _end_later(first)


Child = subprocess.Popen[bytes] | multiprocessing.process.BaseProcess


def _start(pipes: Sequence[Connection], start: Start) -> Child:
    """Start the first loading process, with the child's ends of the pipes (see _lead).

    "spawn" starts a new interpreter that imports only this module's package: what a
    multiprocessing spawn would also do, but it would run the main script again there.
    """
    if start == "fork":
        process = multiprocessing.get_context("fork").Process(target=_lead, args=(pipes,))
        process.start()
        return process
    fds = [pipe.fileno() for pipe in pipes]
    return subprocess.Popen([sys.executable, "-c", "import sys; from feedsvc.dataset.fanout import main; "
                             "main(sys.argv[1:])", *map(str, fds)],
                            pass_fds=fds, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


_ENDING: list[threading.Thread] = []


def _end_later(process: Child) -> None:
    """Wait for `process` to end in a thread of this process (as saving.py does for its
    writes, only in the process that started it: a gunicorn worker forked meanwhile under
    gevent holds a copy of the thread, not the process to wait for, or to kill)."""
    owner = os.getpid()

    def run() -> None:
        if os.getpid() == owner:
            _end(process)
    ending = threading.Thread(target=run, name="feedsvc-loader-end", daemon=True)
    _ENDING[:] = [*(t for t in _ENDING if t.is_alive()), ending]
    ending.start()


def settle() -> None:
    """Wait until the loading processes of every load so far have ended (their CPU is then
    counted in this process's children's: bench/startup.py)."""
    while _ENDING:
        _ENDING.pop().join()


def _end(process: Child) -> None:
    """Wait for a process that has been told to end; kill it if it does not."""
    if isinstance(process, subprocess.Popen):
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return
    process.join(timeout=5)
    if process.is_alive():
        process.kill()
        process.join()


def _vocabulary_of(read: list[Read]) -> Found:
    """Return a run's site and topic mappings (without their whole documents) and links."""
    parts = loader.vocabulary_parts(read)
    return ([(SourceFile(src.name, None), mapping) for src, mapping in parts.sites],
            [(SourceFile(src.name, None), mapping) for src, mapping in parts.topics],
            any(link for *_, link in read))


def _receive(pipe: Connection) -> Any:
    """Return what a loading process sent; _Failed if it failed or ended."""
    try:
        kind, value = pipe.recv()
    except (EOFError, OSError) as error:
        raise _Failed(f"a loading process ended early: {error!r}") from error
    if kind != "ok":
        raise _Failed(value)
    return value


def _receive_run(pipe: Connection) -> tuple[merge.Run, _Told, bytes]:
    """Return what a loading process sent of its run (see _send_run)."""
    _receive(pipe)
    try:
        run, told = pickle.loads(pipe.recv_bytes())
        blob, entries = pipe.recv_bytes(), pipe.recv_bytes()
    except (EOFError, OSError) as error:
        raise _Failed(f"a loading process ended early: {error!r}") from error
    return replace(run, blob=blob), told, entries


def _send_run(pipe: Connection, root: Path, entries: dict[str, FileEntry]) -> None:
    """Send a run's releases (merge.Run, its records apart: not pickled again), what it tells
    of its files, and their entries, whose releases are numbers of the run."""
    run, numbers = merge.run_of([r for entry in entries.values() for r in entry.releases])
    told = _Told(version.fold(root, ((name, entry.stamp) for name, entry in entries.items())),
                 [name for name, entry in entries.items() if entry.racy],
                 not any(entry.problems for entry in entries.values()))
    payload = merge.dumps_entries(entries, numbers)
    pipe.send(("ok", None))
    pipe.send_bytes(pickle.dumps((replace(run, blob=b""), told), protocol=5))
    pipe.send_bytes(run.blob)
    pipe.send_bytes(payload)


def main(fds: Sequence[str]) -> None:
    """In a new interpreter: be the first loading process, on the pipes of these descriptors."""
    _lead([Connection(int(fd)) for fd in fds])
    # Its work is sent: ending without freeing every object it made one by one saves
    # the serving process, which waits for it, about a second at 100,000 files.
    os._exit(0)


def _lead(pipes: Sequence[Connection]) -> None:
    """In the first child process: fork one process for each other run; load the first run."""
    try:
        root, runs, limit, now = pipes[0].recv()
    except EOFError:
        return  # the loading process gave up before it began
    context = multiprocessing.get_context("fork")  # this process runs no other thread
    others = [context.Process(target=_forked, args=(pipes, n, root, runs[n], limit, now),
                              daemon=True) for n in range(1, len(runs))]
    try:
        for process in others:
            process.start()
        for pipe in pipes[1:]:
            pipe.close()
        _work(pipes[0], root, runs[0], limit, now)
    finally:
        for process in others:
            _end(process)


def _forked(pipes: Sequence[Connection], n: int, root: Path, names: Sequence[str], limit: int,
            now: int) -> None:
    """In a forked process: load run `n`, holding no other run's pipe (its end is then seen)."""
    for other, pipe in enumerate(pipes):
        if other != n:
            pipe.close()
    _work(pipes[n], root, names, limit, now)


def _work(pipe: Connection, root: Path, names: Sequence[str], limit: int, now: int) -> None:
    """In a child process: read and parse `names`, then check them against the vocabulary."""
    try:
        with loader.quiet_gc():
            read = loader.read_files(root, names, limit)
            pipe.send(("ok", _vocabulary_of(read)))
            site, topics = pipe.recv()
            _send_run(pipe, root, loader.entries(root, read, site, topics, now))
    except EOFError:
        pass  # the loading process gave up on this one: nothing to say
    # Whatever fails here must reach the parent, which then loads in one process.
    except Exception as error:  # noqa: BLE001
        try:
            pipe.send(("error", f"{type(error).__name__}: {error}"))
        except OSError:
            pass  # the loading process has ended: nobody to tell
    finally:
        pipe.close()
