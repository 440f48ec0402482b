"""The dataset as files, each read, parsed and validated once: a full load, and a valid
dataset (or every problem) made of it.

A full read is a Plan: for every dataset file a FileRow (its stat key, a hash of its bytes
and what it held: validated releases, or problems), the vocabulary, the version sum and every
problem. `check-data`, `feedsvc new` and the tests load it here, in one process; the store's
writer finds the files that changed itself (catalog.py, ingest.py) and reads every file
through the same steps on a cold start (coldstart.py).
"""
from __future__ import annotations

import gc
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, NamedTuple

from . import (
    Dataset,
    DatasetError,
    Ids,
    Parts,
    Problem,
    Release,
    Site,
    Topic,
    duplicate_ids,
    file_releases,
    media,
    newest_first,
    parse_file,
    site_of,
    topics_of,
)
from . import version as versions
from .version import Names
from .yamlsource import file_digest, find_files, links_out, read_source

if TYPE_CHECKING:
    from .bulkload import Staged  # which reads FileRow from here

Key = tuple[int, int, int]
UNREADABLE: Key = (-1, -1, -1)
# The media files a file's releases name, by name below media/ (as a notification names
# them): stat key when read, sha256 (hex; "" if unreadable). A change to one reads the file
# again, though its own bytes are the same.
MediaRows = tuple[tuple[str, Key, str], ...]
# A file changed this recently may change again within the same mtime tick: hash it again
# at the next look (as git does for "racily clean" entries).
RACY_NS = 2_000_000_000


class FileRow(NamedTuple):
    """One dataset file as read: its stat key, its bytes' digest and what it held, as the store
    keeps it. A tuple: a full read makes one a file, at a tuple's cost.

    `releases` None: its bytes are the same as the store holds, keep its releases; a full
    read for the store has them in its staging files instead (bulkload.Staged)."""

    name: str  # as find_files gives it (problems name files so)
    below: str  # below the root, as the version and the store name it
    key: Key
    digest: bytes
    racy: bool = False
    vocabulary: bool = False
    media: MediaRows = ()
    releases: tuple[Release, ...] | None = ()
    ids: Ids = ()  # every id its releases name, valid or not, with its line
    problems: tuple[Problem, ...] = ()

    @property
    def stamp(self) -> bytes:
        """What the dataset version is made of: the file's digest and its media files' hashes."""
        if not self.media:
            return self.digest
        return self.digest + "".join(sha for _, _, sha in self.media).encode()


@dataclass(frozen=True)
class Plan:
    """What one look found and what its one transaction writes (nothing if problems)."""

    files: tuple[FileRow, ...]
    removed: tuple[str, ...]  # below the root
    problems: tuple[Problem, ...]
    changed: tuple[str, ...]  # names whose releases, hashes or problems changed
    fold: int  # the version sum (version.py) after the change
    linked: bool
    gone: int  # served releases the change removes (the mass-removal guard's count)
    served: int  # releases in the store before it (meta "releases", kept by every commit)
    # A new vocabulary (every file read again): the store is rebuilt (`staged`).
    site: Site | None = None
    topics: Mapping[str, Topic] | None = None
    # The files this look read or found gone (a full read: those that differ from the store):
    # until a commit, the next looks read them again (sync.Looker).
    looked: tuple[str, ...] = ()
    # A full read for the store, without problems: its releases, in staging files.
    staged: Staged | None = None

    @property
    def any(self) -> bool:
        return bool(self.changed or self.removed or self.problems)

    @property
    def version(self) -> str:
        return versions.version(self.fold)


def stat_key(path: str) -> Key:
    """Return a file's (size, mtime_ns, inode), following links; UNREADABLE if stat fails."""
    return _stat(path)[0]


def _stat(path: str) -> tuple[Key, bool]:
    """Return stat_key(path), and whether the path is a symbolic link."""
    try:
        status = os.lstat(path)
        link = stat.S_ISLNK(status.st_mode)
        if link:
            status = os.stat(path)
    except OSError:
        return UNREADABLE, os.path.islink(path)
    return _key(status), link


def _key(status: os.stat_result) -> Key:
    return status.st_size, status.st_mtime_ns, status.st_ino


Escapes = Callable[[str, bool | None], bool] | None


def _escapes(root: Path) -> Escapes:
    """Return the test for files that link outside the dataset folder (see links_out)."""
    return links_out(str(root)) if root.is_dir() else None


def _read(name: str, limit: int, escapes: Escapes
          ) -> tuple[Key, bool, bytes | None, Problem | None]:
    """Return a file's stat key, whether it is a link, and its bytes or the problem."""
    opened = _open_plain(name)  # the key before reading: a write after it changes it, and is seen
    key, link = _stat(name) if opened is None else (_key(opened[1]), False)
    if escapes is not None and escapes(name, link):
        if opened is not None:
            os.close(opened[0])
        return key, link, None, Problem(name, None, None, None,
                                        "links to a file outside the dataset folder: refused")
    raw, problem = read_source(name, name, limit, opened)
    return key, link, raw, problem


def _open_plain(name: str) -> tuple[int, os.stat_result] | None:
    """Open a file that is not a symbolic link, and fstat it (one lookup of its path, not an
    lstat and an open); None for a link (O_NOFOLLOW refuses it) or any error (see _read)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        return fd, os.fstat(fd)
    except OSError:
        os.close(fd)
        return None


def raw_files(root: Path, limit: int) -> list[tuple[str, bytes]]:
    """Return each dataset file's name and bytes, in path order, unparsed (`feedsvc new` finds
    the ids in use in them, even in a broken dataset). A file that cannot be read safely, or
    that links outside the dataset folder, is left out."""
    escapes = _escapes(root)
    return [(name, raw) for name in find_files(root)
            if (raw := _read(name, limit, escapes)[2]) is not None]


def absent(root: Path) -> Plan:
    """Return the plan of a dataset path that does not exist: that one problem."""
    missing = Problem(str(root), None, None, None, "no such file or directory")
    return Plan((), (), (missing,), (), 0, False, 0, 0)


def load(root: Path, limit: int, extra: tuple[str, bytes] | None = None) -> Plan:
    """Read, parse and validate every file in this process, with `extra` (a file not written
    yet, checked against the vocabulary on disk: `feedsvc new`): check-data, the tests'
    reference. Its problems are every problem of the files and of the dataset, sorted."""
    if not root.exists():
        return absent(root)
    with quiet_gc():
        links: list[str] = []
        read = read_files(root, find_files(root, links), limit)
        site, topics, problems = read_vocabulary(root, vocabulary_parts(read))
        if extra is not None:  # not on disk: no stat key
            found: list[Problem] = []
            read.append((extra[0], UNREADABLE, extra[1], parse_file(*extra, found), found,
                         False))
        rows = tuple(entries(root, read, site, topics, time.time_ns()).values())
    problems += [problem for row in rows for problem in row.problems]
    # An id used twice is reported where it comes again, in path order (as find_files lists:
    # by parts, "\0" before any other character); sorted only when some id is used twice.
    ids = [rid for row in rows for rid, _ in row.ids]
    if len(set(ids)) < len(ids):
        problems += duplicate_ids((row.name, row.ids) for row in
                                  sorted(rows, key=lambda row: row.name.replace(os.sep, "\0")))
    if not rows and not problems:
        problems.append(Problem(str(root), None, None, None, "no .yaml or .yml files found"))
    return Plan(rows, (), tuple(sorted(problems, key=Problem.place)), (),
                versions.fold((row.below, row.stamp) for row in rows),
                any(link for *_, link in read) or bool(links), 0, 0, site, topics)


@contextmanager
def quiet_gc() -> Iterator[None]:
    """Collect no garbage inside: a load makes millions of objects and no cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# One file as read and parsed: name, stat key, bytes, what it holds (None if unreadable),
# its problems so far, and whether its path is a symbolic link.
Read = tuple[str, Key, bytes, Parts | None, list[Problem], bool]


def read_files(root: Path, names: Iterable[str], limit: int) -> list[Read]:
    """Read and parse the named files of the dataset at `root`, in the order given."""
    read: list[Read] = []
    escapes = _escapes(root)
    for name in names:
        key, link, raw, problem = _read(name, limit, escapes)
        problems = [problem] if problem else []
        parts = parse_file(name, raw, problems) if raw is not None else None
        read.append((name, key, raw or b"", parts, problems, link))
    return read


def vocabulary_parts(read: Iterable[Read]) -> Parts:
    """Return the site and topic mappings the files hold, in their order (no releases)."""
    held = [parts for _, _, _, parts, _, _ in read if parts is not None]
    return Parts([site for p in held for site in p.sites],
                 [topic for p in held for topic in p.topics], [])


def read_vocabulary(root: Path, gathered: Parts
                    ) -> tuple[Site | None, dict[str, Topic], list[Problem]]:
    """Return the site (its icon and logo checked) and topics, and the problems found."""
    problems: list[Problem] = []
    site, topics = site_of(gathered, problems), topics_of(gathered, problems)
    site, _ = media.resolve(root, site, [], problems)
    return site, topics, problems


def entries(root: Path, read: Iterable[Read], site: Site | None,
            topics: Mapping[str, Topic], now_ns: int) -> dict[str, FileRow]:
    """Validate the releases of files read against the vocabulary: their catalog entries."""
    names = Names(root)
    return {name: _entry(root, name, names.below(name), key, raw, parts, problems, site, topics,
                         now_ns) for name, key, raw, parts, problems, _ in read}


def _entry(root: Path, name: str, below: str, key: Key, raw: bytes, parts: Parts | None,
           problems: list[Problem], site: Site | None, topics: Mapping[str, Topic],
           now_ns: int) -> FileRow:
    racy = key[1] >= now_ns - RACY_NS
    if parts is None:
        return FileRow(name, below, key, b"", racy, problems=tuple(problems))
    releases: tuple[Release, ...] = ()
    ids: Ids = ()
    named: MediaRows = ()
    if site is not None:  # without a site nothing can be checked: its problem is reported
        releases, ids = file_releases(parts, site, topics, problems)
        if any(r.image or r.attachments for r in releases):  # most name no media file
            watched = _media_keys(root, releases)  # before reading: a write after it is seen
            # The media/ files they name: checked, with their length and hash filled in.
            _, resolved = media.resolve(root, None, list(releases), problems)
            releases = tuple(resolved)
            hashes = {m.src: m.digest or "" for r in releases for m in media.release_media(r)}
            named = tuple(sorted((below, at, hashes.get(src, ""))
                                 for src, (below, at) in watched.items()))
            racy = racy or any(at[1] >= now_ns - RACY_NS for _, at, _ in named)
    return FileRow(name, below, key, file_digest(raw), racy, bool(parts.sites or parts.topics),
                   named, releases, ids, problems=tuple(problems))


def _media_keys(root: Path, releases: tuple[Release, ...]) -> dict[str, tuple[str, Key]]:
    """Return the name below media/ (as a notification names it) and the stat key of each
    local media file the releases name, by src."""
    sources = {m.src for r in releases for m in media.release_media(r) if not m.remote}
    if not sources:  # most releases: not even the media folder's path is worked out
        return {}
    folder = str(media.media_root(root))
    parts = {src: PurePosixPath(src).parts for src in sources}
    return {src: ("/".join(p), stat_key(os.path.join(folder, *p))) for src, p in parts.items()}


def assemble(found: Plan, source: str) -> Dataset:
    """Return the valid dataset a full read found; raise DatasetError listing every problem."""
    if found.problems:
        raise DatasetError(found.problems)
    assert found.site is not None and found.topics is not None
    releases = (release for row in found.files for release in row.releases or ())
    return Dataset(found.site, found.topics, newest_first(releases), found.version, source)


def check_with_file(root: Path, limit: int, name: str, raw: bytes,
                    problems: Sequence[Problem] = ()) -> None:
    """Check the dataset as it would be with one more file, not written yet (`feedsvc new`);
    raise DatasetError listing every problem, `problems` included."""
    every = [*problems, *load(root, limit, (name, raw)).problems]
    if every:
        raise DatasetError(sorted(every, key=Problem.place))
