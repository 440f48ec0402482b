"""What a start does with the snapshot: restarts cost the changes, not the archive.

A start serves the snapshot of its source, if there is one (`restore`: the index alone, its
catalog read when the files are first compared with it; `load`: both), else loads every file
(in child processes when the data is large, see fanout.py) and saves the result as the
snapshot. Snapshots are named by source path and by a fingerprint of the code that shapes
the data (`snapshot_path`), so other code's snapshots are never read; writing one drops the
source's other snapshots and its journals. The bytes of a snapshot file, and the checks it
must pass to be read, are snapfile.py's. Keep FEEDSVC_SNAPSHOT_DIR private to the service;
anything wrong with a snapshot means a full load, never a failure.
"""
from __future__ import annotations

import hashlib
import logging
import sys
from pathlib import Path

from .. import dataset
from . import (
    assemble,
    facts,
    fanout,
    index,
    loader,
    media,
    merge,
    problems,
    records,
    reindex,
    saving,
    snapfile,
    stored,
    version,
    words,
    yamlsource,
)
from . import fields as fields_module
from .assemble import Loaded, build
from .index import Index
from .loader import Catalog, update
from .yamlsource import DEFAULT_MAX_FILE_BYTES

# Above this many bytes of YAML, a full load parses in child processes (fanout.py): its
# garbage (3-4x the kept data) then never inflates the serving process, which receives
# their checked releases.
CHILD_LOAD_BYTES = 8 << 20
_CODE = (assemble, dataset, facts, fanout, fields_module, index, loader, media, merge, problems,
         records, reindex, snapfile, stored, version, words, yamlsource)
log = logging.getLogger("feedsvc.snapshot")


def load(path: str | Path, snapshot_dir: str | Path | None,
         max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, *,
         child_over: int = CHILD_LOAD_BYTES, background: bool = False) -> Loaded:
    """Return the last snapshot of this source (the caller updates it), else a full load.

    A full load is saved as the snapshot (with `background`, once this has returned: see
    saving.py); it raises DatasetError if the data is invalid.
    """
    root = Path(path)
    if snapshot_dir is None:  # no snapshot to read or write; a large load still spreads
        return build(*fanout.read(root, max_file_bytes, over=child_over))
    file = snapshot_path(Path(snapshot_dir), root)
    saving.settle()
    found = read_snapshot(file)
    if found is not None:
        log.info("dataset %s: loaded from snapshot %s", root, file)
        return found
    return load_afresh(root, Path(snapshot_dir), max_file_bytes, child_over=child_over,
                       background=background)


def load_afresh(root: Path, snapshot_dir: Path, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
                *, child_over: int = CHILD_LOAD_BYTES, background: bool = False) -> Loaded:
    """Load every file and save the result as the snapshot (with `background`, once this has
    returned: see saving.py); raise DatasetError if invalid."""
    file = snapshot_path(snapshot_dir, root)
    loaded = build(*fanout.read(root, max_file_bytes, over=child_over))
    if background:
        saving.later(lambda: write_snapshot(file, loaded))
    else:
        write_snapshot(file, loaded)
    return loaded


def restore(path: str | Path, snapshot_dir: str | Path) -> snapfile.Restored | None:
    """Return the index of the last snapshot of this source, its catalog read on demand."""
    root = Path(path)
    file = snapshot_path(Path(snapshot_dir), root)
    saving.settle()
    found = snapfile.open_snapshot(file)
    if found is not None:
        log.info("dataset %s: loaded from snapshot %s (the catalog of its files when first "
                 "needed)", root, file)
    return found


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
    if not write_snapshot(file, build(*fanout.read(root, max_file_bytes, over=CHILD_LOAD_BYTES))):
        raise OSError(f"could not write {file}")
    return file


def _code_version() -> str:
    """Fingerprint the code that reads, validates and indexes: new rules need a new snapshot."""
    code = hashlib.sha256(snapfile.FORMAT + f"{sys.version_info[:2]}".encode())
    # Module names too: a pickle names its classes by module, so a moved module needs a new one.
    for module in _CODE:
        code.update(module.__name__.encode() + Path(str(module.__file__)).read_bytes())
    code.update(__name__.encode() + Path(__file__).read_bytes())
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
    found = snapfile.open_snapshot(file)
    if found is None:
        return None
    catalog = found.catalog()
    return None if catalog is None else Loaded(found.index, catalog)


def write_snapshot(file: Path, loaded: Loaded) -> bool:
    """Save an index atomically (temporary file, then rename) and drop older ones; never raise."""
    try:
        file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        snapfile.write_atomic(file, snapfile.snapshot_parts(loaded))
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
