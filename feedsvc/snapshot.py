"""The served dataset cached on disk, with the catalog of its files: restarts cost the changes.

A snapshot holds the index last served and the per-file catalog it was built from (see
loader.py); a start reads it and then only the files that changed since. It is a pickle, so it
is only read from a file this user owns and nobody else may write; keep FEEDSVC_SNAPSHOT_DIR
private to the service. Anything wrong with a snapshot (missing, truncated, corrupt, written by
other code) means a full load, never a failure.
"""
from __future__ import annotations

import copyreg
import gc
import hashlib
import io
import logging
import os
import pickle
import sys
import tempfile
from collections.abc import Callable, Hashable
from dataclasses import fields
from pathlib import Path
from typing import Any

from . import (
    assemble,
    dataset,
    fanout,
    flatyaml,
    index,
    loader,
    media,
    problems,
    records,
    reindex,
    saving,
    version,
    yamlsource,
)
from . import fields as fields_module
from .assemble import Loaded, build
from .dataset import Release
from .index import Index
from .loader import Catalog, FileEntry, update
from .yamlsource import DEFAULT_MAX_FILE_BYTES

FORMAT = b"feedsvc-snapshot 2\n"
# Above this many bytes of YAML, a full load parses in child processes (fanout.py): its
# garbage (3-4x the kept data) then never inflates the serving process, which receives
# their checked releases.
CHILD_LOAD_BYTES = 8 << 20
_CODE = (assemble, dataset, fanout, fields_module, flatyaml, index, loader, media, problems,
         records, reindex, version, yamlsource)
log = logging.getLogger(__name__)


def load(path: str | Path, snapshot_dir: str | Path | None,
         max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, *,
         child_over: int = CHILD_LOAD_BYTES, background: bool = False) -> Loaded:
    """Return the last snapshot of this source (the caller updates it), else a full load.

    A full load is saved as the snapshot (with `background`, once this has returned: see
    saving.py); it raises DatasetError if the data is invalid.
    """
    root = Path(path)
    if snapshot_dir is None:
        return build(loader.load(root, max_file_bytes))
    file = snapshot_path(Path(snapshot_dir), root)
    saving.settle()
    found = read_snapshot(file)
    if found is not None:
        log.info("dataset %s: loaded from snapshot %s", root, file)
        return found
    loaded = build(load_catalog(root, max_file_bytes, child_over=child_over))
    if background:
        saving.later(lambda: write_snapshot(file, loaded))
    else:
        write_snapshot(file, loaded)
    return loaded


def load_catalog(root: Path, max_file_bytes: int, *, child_over: int | None = None) -> Catalog:
    """Read, parse and validate every file: in child processes when the data is large (see
    fanout.py), this process only receiving what they found."""
    return fanout.load(root, max_file_bytes,
                       over=CHILD_LOAD_BYTES if child_over is None else child_over)


def load_index(path: str | Path, snapshot_dir: str | Path | None,
               max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, *,
               child_over: int = CHILD_LOAD_BYTES) -> Index:
    """Return the index of the data on disk now: the snapshot, updated; saved if it changed."""
    loaded = load(path, snapshot_dir, max_file_bytes, child_over=child_over)
    change = update(loaded.catalog, max_file_bytes)
    if not change.any:
        return loaded.index
    fresh = build(change.catalog)
    if snapshot_dir is not None:
        write_snapshot(snapshot_path(Path(snapshot_dir), Path(path)), fresh)
    return fresh.index


def save_snapshot(path: str | Path, snapshot_dir: str | Path,
                  max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Path:
    """Load and validate the dataset in full and save its snapshot; raise DatasetError/OSError."""
    root = Path(path)
    file = snapshot_path(Path(snapshot_dir), root)
    if not write_snapshot(file, build(loader.load(root, max_file_bytes))):
        raise OSError(f"could not write {file}")
    return file


def _code_version() -> str:
    """Fingerprint the code that reads, validates and indexes: new rules need a new snapshot."""
    code = hashlib.sha256(FORMAT + f"{sys.version_info[:2]}".encode())
    for module in _CODE:
        code.update(Path(str(module.__file__)).read_bytes())
    code.update(Path(__file__).read_bytes())
    return code.hexdigest()[:12]


# Taken once, at import: the code this process runs, even if newer files are deployed later.
CODE_VERSION = _code_version()


def snapshot_path(snapshot_dir: Path, root: Path) -> Path:
    """Name the snapshot of this source path and code: one per source, the data last served."""
    source = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    return snapshot_dir / f"{source}-{CODE_VERSION}.pickle"


def side_file(snapshot_dir: str, path: str, kind: str) -> Path:
    """Name the snapshot ("snapshot") of a dataset path, or a file kept beside it ("held")."""
    file = snapshot_path(Path(snapshot_dir), Path(path))
    return file if kind == "snapshot" else file.with_name(f"{file.name.split('-')[0]}.{kind}")


def read_snapshot(file: Path) -> Loaded | None:
    """Return what `file` holds, or None if it is absent or cannot be trusted."""
    loaded = read_private(file)
    if not isinstance(loaded, Loaded):
        if loaded is not None:
            log.warning("snapshot %s ignored: holds a %s, not a dataset", file,
                        type(loaded).__name__)
        return None
    return loaded


def read_private(file: Path) -> object:
    """Return the object a checksummed file of this user holds; None if absent or untrusted."""
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


def _unpickle(file: Path, payload: bytes) -> object:
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
    return loaded


def write_snapshot(file: Path, loaded: Loaded) -> bool:
    """Save an index atomically (temporary file, then rename) and drop older ones; never raise."""
    try:
        file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(file, dumps(loaded))
    except OSError as error:
        log.warning("snapshot %s not written: %s", file, error)
        return False
    _drop_others(file)
    return True


def _drop_others(file: Path) -> None:
    """Remove the other snapshots of the same source, and every journal: `file` is newer."""
    source = file.name.split("-", 1)[0]
    for old in [*file.parent.glob(f"{source}-*.pickle"), *file.parent.glob(f"{source}-*.journal")]:
        if old != file:
            old.unlink(missing_ok=True)


def write_private(file: Path, payload: bytes) -> None:
    """Write a checksummed payload to `file` atomically (a temporary file, then rename)."""
    with tempfile.NamedTemporaryFile(dir=file.parent, prefix=".tmp-", delete=False) as tmp:
        tmp.write(FORMAT + hashlib.sha256(payload).hexdigest().encode() + b"\n")
        tmp.write(payload)
    os.replace(tmp.name, file)


def dumps(loaded: object) -> bytes:
    """Pickle the index, catalog or journal, releases as constructor calls."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=5)
    pickler.dispatch_table = copyreg.dispatch_table.copy()
    pickler.dispatch_table[Release] = _release_reducer()
    pickler.dispatch_table[FileEntry] = _entry_reducer
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


def _entry_reducer(entry: FileEntry) -> tuple[Any, ...]:
    return FileEntry, tuple(getattr(entry, f.name) for f in fields(FileEntry))
