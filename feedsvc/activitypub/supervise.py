"""`feedsvc deliver` as a process: the deliverer in a child, started again if it dies.

The command's own process only supervises (no thread, no connection): it forks the deliverer,
waits for it, and forks another if it ended other than by a stop (a crash, the OOM killer),
waiting longer after each quick death. SIGTERM or SIGINT stops both (what is in flight is
finished); so does the end of the process that started it (the gunicorn master, which starts
it from deploy/gunicorn.conf.py's when_ready and stops it in on_exit; a master killed with
SIGKILL is seen within a second). A deploy's sidecar runs the same command.
"""
from __future__ import annotations

import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..dataset import statedir
from ..feeds.urls import Urls
from .settings import federation

log = logging.getLogger("feedsvc.deliver")
PID_ENV = "_FEEDSVC_DELIVERER_PID"  # the master's record of its deliverer (its hooks reload)
QUICK = 10.0  # seconds: a deliverer that dies sooner is started again after a longer wait
MOST = 60.0  # seconds: the longest wait before a start again
NICE = 10  # the deliverer's niceness increment
STOPS = (signal.SIGTERM, signal.SIGINT)
SINCE_ENV = "_FEEDSVC_FEDERATION_SINCE"  # ledger.begun()'s mark, from the master
# The master's pid, from the master: one killed before this process got to read its parent
# would otherwise leave it the child of init, taken for its parent, delivering on for good.
MASTER_ENV = "_FEEDSVC_DELIVERER_MASTER"


def main(settings: Mapping[str, Any]) -> int:
    """Run the deliverer until stopped; 2 (one line) if this instance does not federate."""
    found = federation(settings)
    if not found.owner or found.durable is None or found.base is None:
        why = found.reason or f"FEEDSVC_ACTIVITYPUB={found.mode}"
        print(f"feedsvc deliver: this instance does not deliver: {why}", file=sys.stderr)
        return 2
    _log_to_stderr(settings)
    stop = threading.Event()
    for number in STOPS:
        signal.signal(number, lambda *_: stop.set())
    parent, wait = int(os.environ.pop(MASTER_ENV, "0")) or os.getppid(), 1.0
    while not stop.is_set():
        started = time.monotonic()
        # Held across the fork: one sent to the child before its interpreter is set up after
        # the fork would be dropped (CPython clears the signals it had noted), so it waits.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
        pid = os.fork()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)
        if pid == 0:  # the deliverer: it never returns into this loop
            code = 1
            try:
                code = _child(settings, found.durable, found.base, stop)
            except BaseException:  # noqa: BLE001 (any end of the child is said, then exit)
                log.exception("the deliverer failed")
            finally:
                os._exit(code)
        ended = _wait(pid, stop, parent)
        if stop.is_set() or os.getppid() != parent:
            return 0
        wait = 1.0 if time.monotonic() - started > QUICK else min(MOST, wait * 2)
        log.error("the deliverer ended (%s): starting it again in %.0f s", ended, wait)
        stop.wait(wait)
    return 0


def _log_to_stderr(settings: Mapping[str, Any]) -> None:
    """Send the `feedsvc` loggers to stderr in FEEDSVC_LOG_FORMAT, at FEEDSVC_LOG_LEVEL."""
    from ..operations.logs import formatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(settings))
    logger = logging.getLogger("feedsvc")
    logger.addHandler(handler)
    logger.setLevel(settings["FEEDSVC_LOG_LEVEL"])


def _wait(pid: int, stop: threading.Event, parent: int) -> str:
    """Wait for the child; on a stop (or the parent's end) pass SIGTERM on. Say how it ended."""
    told = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                    else f"exit status {os.WEXITSTATUS(status)}")
        if not told and (stop.is_set() or os.getppid() != parent):
            os.kill(pid, signal.SIGTERM)
            told = True
            stop.set()
        time.sleep(0.2)


def _child(settings: Mapping[str, Any], durable_file: Path, base: str,
           stop: threading.Event) -> int:
    """Run the deliverer in this (forked) process until `stop`; return its exit status.

    `stop` is the supervisor's event, copied by the fork with the SIGTERM handler that sets
    it, so that a SIGTERM at any moment after the fork stops this process too (an event of
    its own, set up after its imports, missed one sent meanwhile: the deliverer ran on, and
    the gunicorn master waited for it).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor passes it on as SIGTERM
    from .deliver import Deliverer, only_deliverer, sender
    from .durable import Durable
    from .ledger import Ledger

    # Background work: when the cores are busy, the workers' requests go first.
    os.nice(NICE)
    supervisor = os.getppid()
    durable = Durable(durable_file, settings.get("FEEDSVC_ACTIVITYPUB_KEYS_DIR"))
    durable.site_key()  # made at the instance's first start (not at a first request); a bad file is said now
    urls = Urls(base)
    store = _store(settings)
    with only_deliverer(durable_file, stop) as held:
        if not held:
            return 0
        log.info("delivering to the fediverse from %s", durable_file)
        since = os.environ.get(SINCE_ENV)
        deliverer = Deliverer(durable, store, lambda reader: Ledger(durable, reader, urls, since),
                              sender(durable, urls, settings))
        deliverer.run(stop, alive=lambda: os.getppid() == supervisor)
    return 0


def start_with_master(settings: Mapping[str, Any]) -> int | None:
    """Start `feedsvc deliver` from the gunicorn master, unless this instance does not
    federate or a sidecar delivers (FEEDSVC_ACTIVITYPUB_DELIVER=external); return its pid.

    It is told where the store is now, before the workers serve (ledger.begun). A new
    program (posix_spawn: nothing of the master's gevent hub, sockets, threads or
    connections comes along); gunicorn's SIGCHLD handler reaps it if it ends.
    """
    if settings.get("FEEDSVC_ACTIVITYPUB_DELIVER") == "external" or not federation(settings).owner:
        return None
    from ..dataset.db import Unusable
    from ..dataset.reader import Reader
    from .ledger import begun

    env = dict(os.environ)
    reader = Reader(_store(settings))
    try:
        env[SINCE_ENV] = begun(reader, datetime.now(UTC))
    except (Unusable, OSError, sqlite3.Error) as error:
        log.warning("fediverse: the store is not readable (%s): the deliverer's first sync "
                    "takes its start", error)
    finally:
        reader.close()
    env[MASTER_ENV] = str(os.getpid())
    argv = [sys.executable, "-m", "feedsvc", "deliver"]
    pid = os.posix_spawn(sys.executable, argv, env)
    os.environ[PID_ENV] = str(pid)
    return pid


def _store(settings: Mapping[str, Any]) -> Path:
    """Name the store the instance serves (the state directory's file for its dataset)."""
    return statedir.state_file(settings["FEEDSVC_SNAPSHOT_DIR"], settings["FEEDSVC_DATA"],
                               "sqlite")


def stop_with_master(timeout: float = 30.0) -> None:
    """Stop the deliverer the master started, waiting up to `timeout` s for it to finish."""
    pid = int(os.environ.pop(PID_ENV, "0"))
    if not pid:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:  # reaped by gunicorn's SIGCHLD handler
            return
        time.sleep(0.1)
