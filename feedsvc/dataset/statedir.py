"""The state directory: its files per dataset, one instance on it, a store usable or to build.

Per dataset root (resolved, hashed) it holds `<src>.sqlite` (the store, and SQLite's -wal and
-shm), `<src>.lock` (the instance lock), `<src>.start` (instance-mates' turns at start, `alone`),
`<src>.held` and `<src>.accept` (guard.py), and while every file is read,
`<src>.sqlite.stage-<pid>-*` (bulkload.Staged; removed at the next start if that process died).
It is the service's alone (created 0700; another user's, or one others may write, is not
used). A store of another schema or code, damaged or not writable, is moved aside (`.bad`,
the last one kept) and built again; if the directory cannot be used, the store goes to a
private temporary one.
"""
from __future__ import annotations

import atexit
import ctypes
import fcntl
import glob
import hashlib
import logging
import os
import re
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import dataset
from ..config import ConfigError
from . import db, fields, loader, media, records, rows, version, words, yamlsource

log = logging.getLogger("feedsvc.statedir")
NO_STATE = "no persistent state: restarts will cold-start"
HEADER = b"SQLite format 3\x00"
TO_BUILD = ("missing", "empty", "not yet built")  # a first start (or an instance-mate's build)

# The code that parses and validates (the package's parse_file, site_of and file_releases and
# loader's per-file steps among it) and encodes, fingerprinted once, at import (the code this
# process runs, even if newer files are deployed later): new rules, a new store. A new meaning
# of what write.py puts in a column is db.FORMAT's, bumped by hand.
CODE_VERSION = hashlib.sha256(b"".join(
    module.__name__.encode() + Path(str(module.__file__)).read_bytes()
    for module in (dataset, db, fields, loader, media, records, rows, version, words,
                   yamlsource))).hexdigest()[:12]
# What the writer puts in `meta` with every commit (sync.Looker's meta), so that a store written
# by other code is rebuilt, never misread.
META = {"code": CODE_VERSION}


def state_file(state_dir: str | Path, root: str | Path, kind: str) -> Path:
    """Name a file of the state directory for this dataset: kind "sqlite", "lock", "held"..."""
    source = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:12]
    return Path(state_dir) / f"{source}.{kind}"


@dataclass(frozen=True)
class Opened:
    """Where the store is, what /readyz says of it (a store to build holds no version)."""

    path: Path  # in the state directory, or in a private temporary one (never None)
    state: str  # "persistent", or NO_STATE with the reason
    persistent: bool
    first: str | None = None  # why a first build (missing, empty): said once it is built


# Instance locks this process holds (also through a fork: the descriptor is inherited), by path.
_held: dict[Path, int] = {}


def open_state(state_dir: str | Path | None, root: str | Path) -> Opened:
    """Take the instance lock of `state_dir` and check the store of `root` in it: ConfigError
    if another instance holds it; anything else wrong is a log line and a store to build."""
    if state_dir is None:
        return _temporary("FEEDSVC_STATE_DIR is off", logging.DEBUG)
    directory = Path(state_dir)
    try:
        _private_dir(directory)
        guard = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        return _temporary(f"state directory {directory} cannot be used: {error}")
    try:
        # Taking the lock and writing who holds it, and checking the file, are one step for the
        # instances and instance-mates starting together (a brief flock on the directory).
        fcntl.flock(guard, fcntl.LOCK_EX)
        try:
            tempfile.TemporaryFile(dir=directory).close()  # SQLite makes -wal, -shm beside it
            _lock(state_file(directory, root, "lock"))
        except OSError as error:
            return _temporary(f"state directory {directory} cannot be used: {error}")
        _remove_orphans(state_file(directory, root, "sqlite"))
        return _check(state_file(directory, root, "sqlite"))
    finally:
        os.close(guard)


@contextmanager
def alone(opened: Opened) -> Iterator[None]:
    """Bring the store up to date within this: instance-mates starting together (the workers
    of a plain `gunicorn -w N`) take turns (a flock on `<src>.start`), so that one builds the
    store and the next finds it built, never two creating or building it at once (a private
    temporary store is this process's alone: its flock is never waited for)."""
    fd = os.open(opened.path.with_suffix(".start"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and the flock with it


def _remove_orphans(store: Path) -> None:
    """Remove the staging directories (bulkload.Staged) of full reads whose process died."""
    for found in store.parent.glob(f"{glob.escape(store.name)}.stage-*"):
        pid = re.match(r"\d+", found.name[len(store.name) + len(".stage-"):])
        if pid is not None and not _alive(int(pid.group())):
            log.info("removing %s, left by a full read that did not end", found)
            shutil.rmtree(found, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _private_dir(directory: Path) -> None:
    """Make the directory 0700 if missing; raise OSError if others could plant a file in it."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    found = directory.stat()
    if found.st_uid != os.getuid() or found.st_mode & 0o022:
        raise PermissionError(f"not private to this user (owner uid {found.st_uid}, mode "
                              f"{stat.filemode(found.st_mode)})")


def _lock(lock: Path) -> None:
    """Hold `lock` for this process's life, or accept an instance-mate's; else ConfigError.

    Instance-mates are the processes forked, without exec, from one started program (the
    workers of one gunicorn): a fork of the holder inherits its locked descriptor (`_held`);
    the workers of a plain `gunicorn -w N`, each starting the app, share the exec they were
    forked from. Another program (another gunicorn, even started by the same parent) has its
    own exec, so it is refused.
    """
    if lock in _held:
        return
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode("ascii", "replace").split()
        os.close(fd)
        if holder[1:2] == [_exec_id()]:
            return
        raise ConfigError(f"state directory {lock.parent} is in use by another feedsvc instance "
                          f"(pid {holder[0] if holder else '?'}); give each its own "
                          "FEEDSVC_STATE_DIR") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {_exec_id()}\n".encode(), 0)
    _held[lock] = fd


def _exec_id() -> str:
    """Name the exec this process runs: the same in every process forked from it, without exec.

    The kernel draws 16 random bytes for each exec (AT_RANDOM, getauxval(3)), and a fork copies
    them with the rest of memory; their hash (they seed the stack protector) names the exec.
    Without them (not Linux), every process is an instance of its own, its forks' inherited
    lock aside.
    """
    try:
        getauxval = ctypes.CDLL(None).getauxval
    except (OSError, AttributeError):
        return f"pid-{os.getpid()}"
    getauxval.restype, getauxval.argtypes = ctypes.c_ulong, [ctypes.c_ulong]
    address = getauxval(_AT_RANDOM)
    if not address:
        return f"pid-{os.getpid()}"
    return hashlib.sha256(ctypes.string_at(address, 16)).hexdigest()[:32]


_AT_RANDOM = 25  # <elf.h>


def _check(file: Path) -> Opened:
    """Return the store if usable, else move it aside and say it is to be built."""
    problem = _problem(file)
    if problem in (None, *TO_BUILD):  # to build: said once built (reload.init_app, `first`)
        return _private_file(Opened(file, "persistent", True, problem))
    log.warning("state file %s unusable (%s): rebuilding from the YAML", file, problem)
    try:
        os.replace(file, file.with_name(file.name + ".bad"))
        for side in ("-wal", "-shm"):  # a stale WAL must never be replayed into the new file
            file.with_name(file.name + side).unlink(missing_ok=True)
    except OSError as error:
        return _temporary(f"state file {file} cannot be moved aside: {error}")
    return _private_file(Opened(file, "persistent", True))


def _private_file(opened: Opened) -> Opened:
    """Create the store file 0600 if missing (SQLite gives its -wal and -shm the same mode)."""
    os.close(os.open(opened.path, os.O_WRONLY | os.O_CREAT, 0o600))
    return opened


def _problem(file: Path) -> str | None:
    """Say what is wrong with the store file: None if usable; TO_BUILD: nothing to move."""
    try:
        with file.open("rb") as stream:
            found = os.fstat(stream.fileno())
            header = stream.read(100)
    except FileNotFoundError:
        return "missing"
    except OSError as error:
        return f"cannot be read: {error}"
    if found.st_uid != os.getuid() or found.st_mode & 0o022:
        return "not private to this user"
    if not header:
        return "empty"
    if len(header) < 100 or not header.startswith(HEADER):
        return "not an SQLite database"
    page_size = int.from_bytes(header[16:18], "big")
    size = int.from_bytes(header[28:32], "big") * (65536 if page_size == 1 else page_size)
    # The header's page count is valid when its two change counters agree (SQLite >= 3.7.0).
    if header[24:28] == header[92:96] and found.st_size < size:
        return f"truncated: {found.st_size} bytes of {size}"
    try:
        os.close(os.open(file, os.O_RDWR))
    except OSError as error:
        return f"not writable: {error}"
    return _schema_problem(file)


def _schema_problem(file: Path) -> str | None:
    try:
        with closing(sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            schema = conn.execute("PRAGMA user_version").fetchone()[0]
            if schema == 0:  # a new file, or another program's database
                tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
                return f"not a feedsvc store: {tables} tables, no schema version" if tables \
                    else "empty"
            if schema != db.SCHEMA_VERSION:
                return f"schema {schema}, this code reads {db.SCHEMA_VERSION}"
            code = conn.execute("SELECT value FROM meta WHERE name = 'code'").fetchone()
    except sqlite3.Error as error:
        return f"not a feedsvc store: {error}"
    if code is None:
        return "not yet built"  # the schema, but no build committed
    return None if code[0] == CODE_VERSION else f"written by other code ({code[0]})"


def _temporary(why: str, level: int = logging.WARNING) -> Opened:
    """A store in a private directory removed when this process ends: nothing persists."""
    log.log(level, "%s: %s", why, NO_STATE)
    directory = Path(tempfile.mkdtemp(prefix="feedsvc-state-"))
    atexit.register(_remove, directory, os.getpid())
    return _private_file(Opened(directory / "store.sqlite", f"{NO_STATE} ({why})", False))


def _remove(directory: Path, owner: int) -> None:
    if os.getpid() == owner:  # forked workers run atexit too: the maker alone removes it
        shutil.rmtree(directory, ignore_errors=True)
