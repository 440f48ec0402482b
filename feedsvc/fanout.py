"""A full load spread over processes, one per core: each reads, parses and validates a share.

The result is the catalog loader.load returns: the same entries, problems and vocabulary, in
the same order. The files are cut into contiguous runs in path order; each process reads and
parses its run and sends back only the site and topic mappings it found; the parent reads the
vocabulary from all of them, in path order, as loader.load does, and sends it back; each
process then checks its releases against it and sends its entries. The parent takes the
first run itself. Forking is safe only in a process that runs no other threads: this runs
where a whole load has a process of its own (snapshot.child, the CLI), never in a server.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from . import loader
from .dataset import Parts, Problem, Site, Topic
from .loader import Catalog, FileEntry, Read
from .yamlsource import LocatedMap, SourceFile, find_files

# Below this many files a process, forking another costs more than it saves.
PER_PROCESS = 1000
log = logging.getLogger("feedsvc.fanout")
Mappings = list[tuple[SourceFile, LocatedMap]]
# What one run holds of the vocabulary (site and topic mappings), and whether it has links.
Found = tuple[Mappings, Mappings, bool]
Vocabulary = tuple[Site | None, dict[str, Topic], list[Problem]]


class _Failed(Exception):
    """A process of the load died or reported an error: the load is done again in one."""


def cores() -> int:
    """Return how many cores this process may run on (all of them where that is not told)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load(root: Path, limit: int, processes: int | None = None) -> Catalog:
    """Return what loader.load(root, limit) returns, using up to `processes` processes."""
    wanted = cores() if processes is None else processes
    if not root.is_dir() or wanted < 2:
        return loader.load(root, limit)
    now = time.time_ns()
    with loader.quiet_gc():
        links: list[str] = []
        names = find_files(root, links)
        count = min(wanted, len(names) // PER_PROCESS)
        if count < 2:
            return loader.load(root, limit)
        runs = [names[len(names) * n // count:len(names) * (n + 1) // count] for n in range(count)]
        try:
            files, vocabulary, linked = _spread(root, limit, runs, now)
        except _Failed as error:
            log.warning("dataset %s: parallel load failed (%s); loading in one process",
                        root, error)
            return loader.load(root, limit)
    site, topics, problems = vocabulary
    return loader.catalog(root, files, site, topics, problems, bool(links) or linked)


def _spread(root: Path, limit: int, runs: Sequence[Sequence[str]], now: int
            ) -> tuple[dict[str, FileEntry], Vocabulary, bool]:
    """Load the first run here and each other run in a forked process; merge in path order."""
    context = multiprocessing.get_context("fork")
    pipes, workers = [], []
    try:
        for run in runs[1:]:
            mine, theirs = context.Pipe()
            worker = context.Process(target=_work, args=(theirs, root, run, limit, now),
                                     daemon=True)
            worker.start()
            theirs.close()
            pipes.append(mine)
            workers.append(worker)
        read = loader.read_files(root, runs[0], limit)
        found: list[Found] = [_vocabulary_of(read), *(_receive(pipe) for pipe in pipes)]
        gathered = Parts([], [], [])
        for sites, topics, _ in found:
            gathered.sites += sites
            gathered.topics += topics
        vocabulary = loader.read_vocabulary(root, gathered)
        for pipe in pipes:
            pipe.send(vocabulary[:2])
        files = loader.entries(root, read, vocabulary[0], vocabulary[1], now)
        for pipe in pipes:
            files.update(_receive(pipe))  # in path order: each run follows the one before
        return files, vocabulary, any(linked for _, _, linked in found)
    finally:
        for pipe in pipes:
            pipe.close()  # a process still waiting for the vocabulary then ends
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.kill()
                worker.join()


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


def _work(pipe: Connection, root: Path, names: Sequence[str], limit: int, now: int) -> None:
    """In a forked process: read and parse `names`, then check them against the vocabulary."""
    try:
        read = loader.read_files(root, names, limit)
        pipe.send(("ok", _vocabulary_of(read)))
        site, topics = pipe.recv()
        pipe.send(("ok", loader.entries(root, read, site, topics, now)))
    # Whatever fails here must reach the parent, which then loads in one process.
    except Exception as error:  # noqa: BLE001
        pipe.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        pipe.close()
