"""The snapshot file format: our own checksummed pickles, their bytes written and read back.

A snapshot file holds the index last served, with its facts (facts.py), and the per-file
catalog it was built from (see loader.py), as two pickles with a checksum each: the index is
read alone (`open_snapshot`); the catalog, whose releases are the index's own (referred to
by position, not written twice), when first asked for (`Restored.catalog`). A journal is a
file of one checksummed pickle (`write_private`, `read_private`). Only a file this user owns
and nobody else may write is read; a missing one reads as None, and so does anything wrong
with one (truncated, corrupt, written by other code), logged. Where the files are, and when
they are read and written, is snapshot.py's business.
"""
from __future__ import annotations

import copyreg
import hashlib
import io
import logging
import os
import pickle
import tempfile
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from .. import dataset
from . import Release, facts, loader
from .assemble import Loaded
from .index import Index
from .loader import Catalog, FileEntry
from .stored import Positions, StoredReleases, place, storing

# A snapshot's first line; then "<length of the index part> <its sha256> <the catalog's sha256>".
FORMAT = b"feedsvc-snapshot 3\n"
# The first line of a file of one checksummed pickle: a journal.
PRIVATE = b"feedsvc-snapshot 2\n"
log = logging.getLogger("feedsvc.snapshot")
T = TypeVar("T")


class Restored:
    """A snapshot's index, read and served; the catalog of its files, read once when asked."""

    def __init__(self, index: Index, file: Path, at: tuple[int, int, int, int],
                 digest: str) -> None:
        self.index, self.file = index, file
        # Where the catalog starts, and the file's inode, size and time when the index was read.
        self._at: tuple[int, int, int, int] | None = at
        self._digest = digest

    def catalog(self) -> Catalog | None:
        """Return the catalog (the index's releases in it); None if it cannot be trusted."""
        at, self._at = self._at, None
        if at is None:
            raise RuntimeError("the catalog of a snapshot is read once")
        try:
            with self.file.open("rb") as stream:
                status = os.fstat(stream.fileno())
                if (status.st_ino, status.st_size, status.st_mtime_ns) != at[1:]:
                    raise ValueError("replaced since its index was read")
                stream.seek(at[0])
                payload = stream.read()
        except (OSError, ValueError) as error:
            log.warning("snapshot %s ignored: %s", self.file, error)
            return None
        found = _unpickle(self.file, payload, self._digest, self.index)
        if not isinstance(found, Catalog):
            if found is not None:
                log.warning("snapshot %s ignored: holds a %s, not a catalog", self.file,
                            type(found).__name__)
            return None
        return found


def open_snapshot(file: Path) -> Restored | None:
    """Read the index of a snapshot (and its facts); None if absent or untrusted."""
    def index_part(stream: BinaryIO, status: os.stat_result
                   ) -> tuple[bytes, str, str, tuple[int, int, int, int]]:
        length, digest, catalog_digest = stream.readline().decode("ascii").split()
        payload = stream.read(int(length))
        return payload, digest, catalog_digest, (stream.tell(), status.st_ino, status.st_size,
                                                 status.st_mtime_ns)

    read = _read_own(file, FORMAT, index_part)
    if read is None:
        return None
    payload, digest, catalog_digest, at = read
    found = _unpickle(file, payload, digest)
    if not (isinstance(found, tuple) and len(found) == 2 and isinstance(found[0], Index)
            and isinstance(found[1], facts.Facts)):
        if found is not None:
            log.warning("snapshot %s ignored: holds a %s, not a dataset", file,
                        type(found).__name__)
        return None
    index, known = found
    facts.remember(index, known)
    return Restored(index, file, at, catalog_digest)


def read_private(file: Path) -> object:
    """Return the object a checksummed file of this user holds; None if absent or untrusted."""
    def whole(stream: BinaryIO, _: os.stat_result) -> tuple[str, bytes]:
        return stream.readline().strip().decode("ascii"), stream.read()

    read = _read_own(file, PRIVATE, whole)
    return None if read is None else _unpickle(file, read[1], read[0])


def _read_own(file: Path, first: bytes, rest: Callable[[BinaryIO, os.stat_result], T]
                 ) -> T | None:
    """Return what `rest` reads of `file` after its first line, which must be `first`; None
    (logged) if it is absent, unreadable, or not this user's alone (others may not write it)."""
    try:
        with file.open("rb") as stream:
            status = os.fstat(stream.fileno())
            if status.st_uid != os.getuid() or status.st_mode & 0o022:
                log.warning("snapshot %s ignored: not private to this user", file)
                return None
            if stream.readline() != first:
                raise ValueError("not a feedsvc snapshot")
            return rest(stream, status)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError) as error:
        log.warning("snapshot %s ignored: %s", file, error)
        return None


class _Unpickler(pickle.Unpickler):
    """Reads a catalog written by _catalog_bytes: its site and topics are the index's, and
    each file's releases are records of the index's store, by position."""

    def __init__(self, payload: bytes, index: Index) -> None:
        super().__init__(io.BytesIO(payload))
        self.index = index

    def find_class(self, module: str, name: str) -> Any:
        if module == __name__ and name == "_stored_entry":
            return self._entry
        if module == __name__ and name == "_stored_catalog":
            return self._catalog
        return super().find_class(module, name)

    def _entry(self, positions: tuple[int, ...], *values: Any) -> FileEntry:
        releases = self.index.releases
        found: Sequence[Release] = StoredReleases(releases.store, positions) \
            if isinstance(releases, StoredReleases) else tuple(releases[p] for p in positions)
        key, digest, *rest = values
        return FileEntry(key, digest, found, *rest)

    def _catalog(self, *values: Any) -> Catalog:
        root, files, *rest = values
        return Catalog(root, files, self.index.dataset.site, self.index.dataset.topics, *rest)


def _stored_entry(*values: Any) -> FileEntry:
    """Stand for a catalog entry whose releases are in a store: only _Unpickler makes it."""
    raise pickle.UnpicklingError("a snapshot's catalog is read with its index")


def _stored_catalog(*values: Any) -> Catalog:
    """Stand for a catalog of the index's vocabulary: only _Unpickler makes it."""
    raise pickle.UnpicklingError("a snapshot's catalog is read with its index")


def _unpickle(file: Path, payload: bytes, digest: str, index: Index | None = None) -> object:
    """Return what a payload of our own holds; None (logged) if it does not match `digest`
    (its SHA-256) or cannot be loaded."""
    if hashlib.sha256(payload).hexdigest() != digest:
        log.warning("snapshot %s ignored: damaged (checksum mismatch)", file)
        return None
    # A million new objects and no cycles: collecting during the load is waste.
    with loader.quiet_gc():
        try:
            # Our own file: owner-checked and checksummed.
            return pickle.loads(payload) if index is None else _Unpickler(payload, index).load()
        # A checksummed pickle can still fail to load against changed classes: any such
        # failure must mean "load the YAML", never "refuse to start".
        except Exception as error:  # noqa: BLE001
            log.warning("snapshot %s ignored: %s: %s", file, type(error).__name__, error)
            return None


def snapshot_parts(loaded: Loaded) -> list[bytes]:
    """Return a snapshot's bytes: its header, the index with its facts, and the catalog.

    The index's releases are written as one store of records (stored.py); each file's
    releases in the catalog as their positions there.
    """
    releases, known = storing(loaded.index.releases)
    index = replace(loaded.index, dataset=replace(loaded.index.dataset, releases=releases))
    served = dumps((index, facts.facts(loaded.index)))
    catalog = _catalog_bytes(loaded.catalog, index.dataset, known)
    header = f"{len(served)} {_sha(served)} {_sha(catalog)}\n".encode()
    return [FORMAT, header, served, catalog]


def _catalog_bytes(catalog: Catalog, data: dataset.Dataset, known: Positions) -> bytes:
    """Pickle a catalog: its files' releases as positions in the store `known` describes,
    and its site and topics, if the dataset's, as theirs (a reload compares them by identity)."""
    names = tuple(f.name for f in fields(FileEntry) if f.name not in ("key", "digest",
                                                                        "releases"))

    def entry(entry: FileEntry) -> tuple[Any, ...]:
        found = place(entry.releases, known)
        if found is None:
            return _entry_reducer(entry)
        return _stored_entry, (found, entry.key, entry.digest,
                               *(getattr(entry, name) for name in names))

    def whole(catalog: Catalog) -> str | tuple[Any, ...]:
        if catalog.site is not data.site or catalog.topics is not data.topics:
            return catalog.__reduce_ex__(5)  # as pickle writes it
        return _stored_catalog, (catalog.root, catalog.files,
                                 *(getattr(catalog, f.name) for f in fields(Catalog)[4:]))
    return dumps(catalog, {FileEntry: entry, Catalog: whole})


def _sha(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def write_private(file: Path, payload: bytes) -> None:
    """Write a checksummed payload to `file` atomically (a temporary file, then rename)."""
    write_atomic(file, [PRIVATE, _sha(payload).encode() + b"\n", payload])


def write_atomic(file: Path, parts: Sequence[bytes]) -> None:
    """Write `parts` to `file` atomically (a temporary file, then rename)."""
    with tempfile.NamedTemporaryFile(dir=file.parent, prefix=".tmp-", delete=False) as tmp:
        for part in parts:
            tmp.write(part)
    os.replace(tmp.name, file)


def dumps(loaded: object, reducers: Mapping[type, Callable[[Any], Any]] | None = None) -> bytes:
    """Pickle an index, catalog or journal, releases as constructor calls, a whole store of
    them as its records; `reducers` in place of the usual ones, by type."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=5)
    pickler.dispatch_table = copyreg.dispatch_table.copy()
    pickler.dispatch_table[Release] = _release_reducer()
    pickler.dispatch_table[FileEntry] = _entry_reducer
    pickler.dispatch_table[StoredReleases] = _stored_reducer
    pickler.dispatch_table.update(reducers or {})
    pickler.dump(loaded)
    return buffer.getvalue()


def _stored_reducer(releases: StoredReleases) -> tuple[Any, ...]:
    if releases.whole:
        return StoredReleases.all_of, (releases.store,)
    return tuple, (tuple(releases),)


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


_ENTRY_FIELDS = tuple(f.name for f in fields(FileEntry))


def _entry_reducer(entry: FileEntry) -> tuple[Any, ...]:
    return FileEntry, tuple(getattr(entry, name) for name in _ENTRY_FIELDS)
