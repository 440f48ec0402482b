"""The validated index cached on disk, keyed by the source's content hash: fast restarts.

A snapshot is a pickle, so it is only read from a file this user owns and nobody else may
write; keep FEEDSVC_SNAPSHOT_DIR private to the service. Anything wrong with a snapshot
(missing, stale, truncated, corrupt, written by other code) means a full load, never a failure.
"""
from __future__ import annotations

import copyreg
import gc
import hashlib
import io
import logging
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable, Hashable
from dataclasses import fields
from pathlib import Path
from typing import Any

from . import dataset, index, media, problems, records, yamlsource
from . import fields as fields_module
from .dataset import Release, dataset_from_sources, load_dataset, read_files
from .index import Index, build_index
from .problems import Problem
from .yamlsource import DEFAULT_MAX_FILE_BYTES, content_hash

FORMAT = b"feedsvc-snapshot 1\n"
# Above this many bytes of YAML, a full load runs in a child process: its garbage (3-4x the
# kept data) then never inflates the serving process, which reads the child's snapshot.
CHILD_LOAD_BYTES = 8 << 20
_CODE = (dataset, fields_module, index, media, problems, records, yamlsource)
log = logging.getLogger(__name__)


def load_index(path: str | Path, snapshot_dir: str | Path | None,
               max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, *,
               child_over: int = CHILD_LOAD_BYTES) -> Index:
    """Return the dataset's index: from a matching snapshot, else loaded in full and saved."""
    root = Path(path)
    if snapshot_dir is None or not root.exists():
        return build_index(load_dataset(root, max_file_bytes))
    unreadable: list[Problem] = []
    sources = read_files(root, max_file_bytes, unreadable)
    if unreadable:  # a file that cannot be read safely: report it with every other problem
        return build_index(dataset_from_sources(root, sources, unreadable))
    file = snapshot_path(Path(snapshot_dir), root, content_hash(sources, root))
    found = read_snapshot(file)
    if found is not None:
        log.info("dataset %s: loaded from snapshot %s", root, file)
        return found
    if sum(len(raw) for _, raw in sources) > child_over and _build_in_child(root, file.parent):
        found = read_snapshot(file)
        if found is not None:
            log.info("dataset %s: loaded in a child process, snapshot %s", root, file)
            return found
    return _full_load(root, sources, file)


def save_snapshot(path: str | Path, snapshot_dir: str | Path,
                  max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Path:
    """Load and validate the dataset in full and save its snapshot; raise DatasetError/OSError."""
    root = Path(path)
    if not root.exists():
        load_dataset(root, max_file_bytes)  # raises the DatasetError that says so
    sources = read_files(root, max_file_bytes)
    file = snapshot_path(Path(snapshot_dir), root, content_hash(sources, root))
    _full_load(root, sources, file)
    if not file.exists():
        raise OSError(f"could not write {file}")
    return file


def _full_load(root: Path, sources: list[tuple[str, bytes]], file: Path) -> Index:
    loaded = build_index(dataset_from_sources(root, sources))
    write_snapshot(file, loaded)
    return loaded


def _code_version() -> str:
    """Fingerprint the code that reads, validates and indexes: new rules need a new snapshot."""
    code = hashlib.sha256(FORMAT + f"{sys.version_info[:2]}".encode())
    for module in _CODE:
        code.update(Path(str(module.__file__)).read_bytes())
    code.update(Path(__file__).read_bytes())
    return code.hexdigest()[:12]


# Taken once, at import: the code this process runs, even if newer files are deployed later.
CODE_VERSION = _code_version()


def snapshot_path(snapshot_dir: Path, root: Path, version: str) -> Path:
    """Name the snapshot of this source path, content version and code."""
    source = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    return snapshot_dir / f"{source}-{version}-{CODE_VERSION}.pickle"


def read_snapshot(file: Path) -> Index | None:
    """Return the index saved in `file`, or None if it is absent or cannot be trusted."""
    try:
        with file.open("rb") as stream:
            status = os.fstat(stream.fileno())
            if status.st_uid != os.getuid() or status.st_mode & 0o022:
                log.warning("snapshot %s ignored: not private to this user", file)
                return None
            if stream.readline() != FORMAT:
                raise ValueError("not a feedsvc snapshot")
            digest, payload = stream.readline().strip().decode("ascii"), stream.read()
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError) as error:
        log.warning("snapshot %s ignored: %s", file, error)
        return None
    if hashlib.sha256(payload).hexdigest() != digest:
        log.warning("snapshot %s ignored: damaged (checksum mismatch)", file)
        return None
    return _unpickle(file, payload)


def _unpickle(file: Path, payload: bytes) -> Index | None:
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a million new objects and no cycles: collecting during the load is waste
    try:
        loaded = pickle.loads(payload)  # our own file: owner-checked and checksummed
    # A checksummed pickle can still fail to load against changed classes: any such failure
    # must mean "load the YAML", never "refuse to start".
    except Exception as error:  # noqa: BLE001
        log.warning("snapshot %s ignored: %s: %s", file, type(error).__name__, error)
        return None
    finally:
        if gc_was_enabled:
            gc.enable()
    if not isinstance(loaded, Index):
        log.warning("snapshot %s ignored: holds a %s, not an index", file, type(loaded).__name__)
        return None
    return loaded


def write_snapshot(file: Path, loaded: Index) -> bool:
    """Save an index atomically (temporary file, then rename) and drop older ones; never raise."""
    try:
        file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        payload = _pickle(loaded)
        with tempfile.NamedTemporaryFile(dir=file.parent, prefix=".tmp-", delete=False) as tmp:
            tmp.write(FORMAT + hashlib.sha256(payload).hexdigest().encode() + b"\n")
            tmp.write(payload)
        os.replace(tmp.name, file)
    except OSError as error:
        log.warning("snapshot %s not written: %s", file, error)
        return False
    source = file.name.split("-", 1)[0]
    for old in file.parent.glob(f"{source}-*.pickle"):
        if old != file:
            old.unlink(missing_ok=True)
    return True


def _pickle(loaded: Index) -> bytes:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=5)
    pickler.dispatch_table = copyreg.dispatch_table.copy()
    pickler.dispatch_table[Release] = _release_reducer()
    pickler.dump(loaded)
    return buffer.getvalue()


def _release_reducer() -> Callable[[Release], tuple[Any, ...]]:
    """Pickle a release as a constructor call (2x faster to load than a dataclass's setstate).

    Repeated values (type, language, countries, topics, dateline) become one shared object,
    which pickle then writes once: less to read and less memory once loaded.
    """
    names = tuple(f.name for f in fields(Release))
    shared: dict[Hashable, Any] = {}
    repeated = {"type", "language", "countries", "topics", "dateline"}

    def reduce(release: Release) -> tuple[Any, ...]:
        values = tuple(shared.setdefault(value, value) if name in repeated else value
                       for name, value in ((n, getattr(release, n)) for n in names))
        return Release, values
    return reduce


def _build_in_child(root: Path, snapshot_dir: Path) -> bool:
    """Run `feedsvc snapshot` in a child process; return whether it succeeded."""
    command = [sys.executable, "-m", "feedsvc", "snapshot", str(root), "--dir", str(snapshot_dir)]
    try:
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              check=False)
    except OSError as error:
        log.warning("dataset %s: no child process for the load (%s)", root, error)
        return False
    if done.returncode != 0:
        log.warning("dataset %s: child load failed (exit %s); loading here", root, done.returncode)
    return done.returncode == 0
