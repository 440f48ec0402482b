"""A cold start's loading processes (coldstart.py tells what they are sent and send back).

The first is a new interpreter (safe to start from any process, threads and all), which forks
one process for each other run while it runs no other thread; each reads, parses and checks
its run, and writes its staging files (bulkload.stage).
"""
from __future__ import annotations

import gc
import marshal
import os
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from pathlib import Path

from . import loader, rows
from . import version as versions
from .bulkload import change_of, order_of, stage
from .loader import FileRow, Read
from .yamlsource import SourceFile


def _send_files(pipe: Connection, entries: Mapping[str, FileRow]) -> None:
    """Send a run's files (no release: they go to the staging files) and version sum."""
    sent = [(row.name, row.below, row.key, row.digest, row.racy, row.vocabulary, row.media, None,
             row.ids, tuple((p.file, p.line, p.release, p.field, p.message) for p in row.problems)
             if row.problems else ()) for row in entries.values()]
    fold = versions.fold((r.below, r.stamp) for r in entries.values())
    pipe.send(("ok", None))
    # Version 2: no references, which cost a lookup per object shared (names, paths).
    pipe.send_bytes(marshal.dumps((fold, sent), 2))


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
        held = [(n, parts) for n, (_, _, _, parts, _, _) in enumerate(read) if parts is not None]
        sites = [(n, SourceFile(src.name, None), mapping)  # without their whole documents
                 for n, parts in held for src, mapping in parts.sites]
        topics_found = [(n, SourceFile(src.name, None), mapping)
                        for n, parts in held for src, mapping in parts.topics]
        pipe.send(("ok", (sites, topics_found, any(link for *_, link in read))))
        told = pipe.recv()
        site, topics = (None, {}) if told is None else \
            (rows.site_from(told[0]), rows.topics_from(told[1]))
        entries = loader.entries(root, read, site, topics, now)
        files = [change_of(row) for row in entries.values()]
        made += [entries, files]
        pipe.send(("ok", (any(row.problems for row in entries.values()), order_of(files))))
        asked = pipe.recv()  # None: the plan has problems, nothing is staged
        if asked is None:
            _send_files(pipe, entries)
        else:
            paths, first, step, keys, bounds = asked
            ids = range(first, first + step * len(files), step)
            for chunk in stage([Path(path) for path in paths], files, ids, keys, bounds):
                pipe.send(("ok", None))
                if chunk == 0:  # read by the parent while the runs stage the next
                    _send_files(pipe, entries)
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
