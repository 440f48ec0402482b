"""The dataset as files, each read, parsed and validated once: a change costs the files it touches.

A Catalog records, for every dataset file, its stat key (size, mtime, inode), a hash of its
bytes and what it held: validated releases, or problems. `update` stats the files and reads
only those whose key changed (or whose mtime was too recent to trust); it parses only those
whose bytes changed and keeps every other file's releases as they are. A change to the site or
the topic vocabulary, which every release is checked against, loads everything again.
"""
from __future__ import annotations

import gc
import os
import stat
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from . import Ids, Parts, Problem, Release, Site, Topic, file_releases, media, parse_file, version, vocabulary
from .yamlsource import SUFFIXES, file_digest, find_files, links_out, read_source

Key = tuple[int, int, int]
UNREADABLE: Key = (-1, -1, -1)
# A file changed this recently may change again within the same mtime tick: hash it again
# at the next look (as git does for "racily clean" entries).
RACY_NS = 2_000_000_000


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One dataset file as last read: its stat key, its bytes' digest and what it held."""

    key: Key
    digest: bytes
    releases: Sequence[Release] = ()
    ids: Ids = ()
    problems: tuple[Problem, ...] = ()
    vocabulary: bool = False
    racy: bool = False
    # The media files its releases name: path, stat key when read, and sha256 (hex; "" if
    # unreadable). A change to one reads this file again, though its own bytes are the same.
    media: tuple[tuple[str, Key, str], ...] = ()

    @property
    def stamp(self) -> bytes:
        """What the dataset version is made of: the file's digest and its media files' hashes."""
        if not self.media:
            return self.digest
        return self.digest + "".join(sha for _, _, sha in self.media).encode()


@dataclass(frozen=True)
class Catalog:
    """Every file of a dataset as last read, in path order, and the vocabulary they define."""

    root: str
    files: Mapping[str, FileEntry]
    site: Site | None
    topics: Mapping[str, Topic]
    # Problems of the vocabulary, or of the dataset as a whole (e.g. the path is missing).
    problems: tuple[Problem, ...] = ()
    # Some files or folders are symbolic links: a change to what they point to may come
    # without a notification from the dataset's own folders, so it is looked for by polling.
    linked: bool = False
    # The sum of the files' hashes the version is made of (version.py); None: not summed yet.
    fold: int | None = None
    # The files whose entry is racy (looked at again at every check); None: not gathered yet.
    racy_names: frozenset[str] | None = None


@dataclass(frozen=True)
class Change:
    """What an update found: the new catalog, and the files read again because they changed."""

    catalog: Catalog
    changed: tuple[str, ...]
    removed: tuple[str, ...]

    @property
    def any(self) -> bool:
        return bool(self.changed or self.removed)


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
    return (status.st_size, status.st_mtime_ns, status.st_ino), link


def in_path_order(files: Mapping[str, FileEntry]) -> dict[str, FileEntry]:
    """Order files as find_files does, by path parts ("\\0" sorts before any other character)."""
    return dict(sorted(files.items(), key=lambda item: item[0].replace(os.sep, "\0")))


def _missing(root: Path) -> Catalog:
    return Catalog(str(root), {}, None, {},
                   (Problem(str(root), None, None, None, "no such file or directory"),))


Escapes = Callable[[str, bool | None], bool] | None


def _escapes(root: Path) -> Escapes:
    """Return the test for files that link outside the dataset folder (see links_out)."""
    return links_out(str(root)) if root.is_dir() else None


def _read(name: str, limit: int, escapes: Escapes
          ) -> tuple[Key, bool, bytes | None, Problem | None]:
    """Return a file's stat key, whether it is a link, and its bytes or the problem."""
    key, link = _stat(name)  # before reading: a write after it changes the key, and is seen
    if escapes is not None and escapes(name, link):
        return key, link, None, Problem(name, None, None, None,
                                        "links to a file outside the dataset folder: refused")
    raw, problem = read_source(name, name, limit)
    return key, link, raw, problem


def load(root: Path, limit: int) -> Catalog:
    """Read, parse and validate every file: check-data, a cold start, a vocabulary change."""
    if not root.exists():
        return _missing(root)
    now = time.time_ns()
    with quiet_gc():
        links: list[str] = []
        read = read_files(root, find_files(root, links), limit)
        links += [name for name, *_, link in read if link]
        site, topics, vocab_problems = read_vocabulary(root, vocabulary_parts(read))
        files = entries(root, read, site, topics, now)
    return catalog(root, files, site, topics, vocab_problems, bool(links))


def catalog(root: Path, files: dict[str, FileEntry], site: Site | None,
            topics: Mapping[str, Topic], problems: Iterable[Problem], linked: bool) -> Catalog:
    """Return the catalog of a full load, its version sum and racy files gathered."""
    return Catalog(str(root), files, site, topics, tuple(problems), linked,
                   version.fold(root, ((name, e.stamp) for name, e in files.items())),
                   frozenset(name for name, e in files.items() if e.racy))


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
        if raw is None:
            read.append((name, key, b"", None, [problem] if problem else [], link))
            continue
        problems: list[Problem] = []
        read.append((name, key, raw, parse_file(name, raw, problems), problems, link))
    return read


def vocabulary_parts(read: Iterable[Read]) -> Parts:
    """Return the site and topic mappings the files hold, in their order (no releases)."""
    gathered = Parts([], [], [])
    for _, _, _, parts, _, _ in read:
        if parts is not None:
            gathered.sites += parts.sites
            gathered.topics += parts.topics
    return gathered


def read_vocabulary(root: Path, gathered: Parts
                    ) -> tuple[Site | None, dict[str, Topic], list[Problem]]:
    """Return the site (its icon and logo checked) and topics, and the problems found."""
    problems: list[Problem] = []
    site, topics = vocabulary(gathered, problems)
    site, _ = media.resolve(root, site, [], problems)
    return site, topics, problems


def entries(root: Path, read: Iterable[Read], site: Site | None,
            topics: Mapping[str, Topic], now_ns: int) -> dict[str, FileEntry]:
    """Validate the releases of files read against the vocabulary: their catalog entries."""
    return {name: _entry(root, key, raw, parts, problems, site, topics, now_ns)
            for name, key, raw, parts, problems, _ in read}


def _entry(root: Path, key: Key, raw: bytes, parts: Parts | None, problems: list[Problem],
           site: Site | None, topics: Mapping[str, Topic], now_ns: int) -> FileEntry:
    racy = key[1] >= now_ns - RACY_NS
    digest = file_digest(raw) if parts is not None else b""
    if parts is None:
        return FileEntry(key, digest, problems=tuple(problems), racy=racy)
    holds_vocabulary = bool(parts.sites or parts.topics)
    releases: tuple[Release, ...] = ()
    ids: Ids = ()
    named: tuple[tuple[str, Key, str], ...] = ()
    if site is not None:  # without a site nothing can be checked: its problem is reported
        releases, ids = file_releases(parts, site, topics, problems)
        watched = _media_keys(root, releases)  # before reading: a write after it is seen
        # The media/ files they name: checked, with their length and hash filled in.
        _, resolved = media.resolve(root, None, list(releases), problems)
        releases = tuple(resolved)
        hashes = {m.src: m.digest or "" for r in releases for m in media.release_media(r)}
        named = tuple((path, at, hashes.get(src, "")) for src, (path, at) in watched.items())
        racy = racy or any(at[1] >= now_ns - RACY_NS for _, at, _ in named)
    return FileEntry(key, digest, releases, ids, tuple(problems), holds_vocabulary, racy, named)


def _media_keys(root: Path, releases: tuple[Release, ...]) -> dict[str, tuple[str, Key]]:
    """Return the path and stat key of each local media file the releases name, by src."""
    sources = sorted({m.src for r in releases for m in media.release_media(r) if not m.remote})
    if not sources:  # most releases: not even the media folder's path is worked out
        return {}
    folder = str(media.media_root(root))
    paths = {src: os.path.join(folder, *PurePosixPath(src).parts) for src in sources}
    return {src: (path, stat_key(path)) for src, path in paths.items()}


def _media_moved(entry: FileEntry) -> bool:
    """Tell whether a media file the entry names may have changed since it was read."""
    return bool(entry.media) and (entry.racy or any(stat_key(path) != at
                                                    for path, at, _ in entry.media))


def entry_of(root: Path, raw: bytes, parts: Parts, problems: list[Problem],
             catalog: Catalog) -> FileEntry:
    """Return the entry a file not on disk yet would have in `catalog` (`feedsvc new`)."""
    return _entry(root, UNREADABLE, raw, parts, problems, catalog.site, catalog.topics, 0)


FullLoad = Callable[[Path, int], Catalog]


def update(old: Catalog, limit: int, *, trust_stat: bool = True, full: FullLoad = load,
           only: Collection[str] | None = None) -> Change:
    """Return the catalog of the files on disk now, reading only those that changed.

    With trust_stat=False every file is read and hashed again (SIGHUP: "whatever the file
    times say"); still only files whose bytes changed are parsed. `full` loads everything
    when the vocabulary changed (e.g. in a child process). `only`
    names the paths a notification said changed: only those are looked at, when that is
    safe (see _named); otherwise every file is.
    """
    root = Path(old.root)
    if not root.exists():
        return Change(_missing(root), (), tuple(old.files))
    if old.site is None:  # nothing valid to build on: start afresh
        return _everything(old, full(root, limit))
    names = _named(old, only) if only is not None and trust_stat else None
    links: list[str] = []
    listed = find_files(root, links, ordered=False) if names is None else names
    files = dict(old.files) if names is not None else {}
    now, changed, escapes = time.time_ns(), [], _escapes(root)
    for name in listed:
        previous = old.files.get(name)
        if names is not None and not os.path.lexists(name):
            files.pop(name, None)
            continue
        key, link = _stat(name)
        if link:
            links.append(name)
        moved = previous is not None and (_media_moved(previous)
                                          or not trust_stat and bool(previous.media))
        if previous is not None and previous.key == key and not previous.racy and trust_stat \
                and not moved:
            files[name] = previous
            continue
        entry = _reread(name, previous, limit, old, now, escapes, moved)
        if entry is None:  # the site or topics changed: every release is checked again
            return _everything(old, full(root, limit))
        files[name] = entry
        if previous is None or entry.stamp != previous.stamp or entry.problems != previous.problems:
            changed.append(name)
    removed = tuple(name for name in (listed if names is not None else old.files)
                    if name in old.files and name not in files)
    if any(old.files[name].vocabulary for name in removed):
        return _everything(old, full(root, limit))
    if names is None:  # listed afresh: in the order they were in, or in path order
        files = {name: files[name] for name in old.files} \
            if files.keys() == old.files.keys() else in_path_order(files)
    linked = old.linked or bool(links) if names is not None else bool(links)
    racy = frozenset(name for name in (files if names is None else names)
                     if name in files and files[name].racy)
    new = replace(old, files=files, linked=linked, racy_names=racy,
                  fold=refold(old, files, (*changed, *removed)))
    return Change(new, tuple(changed), removed)


def refold(old: Catalog, files: Mapping[str, FileEntry], names: Collection[str]) -> int:
    """Return the version sum of `files`: old's, less the old and plus the new hashes of
    `names` (every other file's digest being as in `old`)."""
    total = old.fold if old.fold is not None else \
        version.fold(old.root, ((name, e.stamp) for name, e in old.files.items()))
    return version.refold(old.root, total,
                          ((n, old.files[n].stamp) for n in names if n in old.files),
                          ((n, files[n].stamp) for n in names if n in files))


def _named(old: Catalog, paths: Collection[str]) -> list[str] | None:
    """Return the dataset files among notified paths, and the racy ones; None: look at all.

    Safe only in a plain folder tree: a path through a link, in a hidden folder, or a
    folder's own change may stand for files under other names, so everything is listed.
    """
    top = os.path.abspath(old.root)
    if old.linked or not os.path.isdir(old.root):
        return None
    names = set(old.racy_names) if old.racy_names is not None else \
        {name for name, entry in old.files.items() if entry.racy}
    media_files = set()
    for path in paths:
        if not path.startswith(top + os.sep) or os.path.islink(path) or os.path.isdir(path):
            return None
        *folders, base = path[len(top) + 1:].split(os.sep)
        if any(folder.startswith(".") for folder in folders):
            return None
        if folders[:1] == [media.MEDIA_DIR]:  # a picture or attachment (or a dataset file)
            media_files.add(os.path.join(old.root, *folders, base))
        if not base.startswith(".") and base.endswith(SUFFIXES):
            names.add(os.path.join(old.root, *folders, base))
    if media_files:  # rare: a pass over the entries finds the files naming them
        names.update(name for name, entry in old.files.items()
                     if any(path in media_files for path, _, _ in entry.media))
    return sorted(names)


def _reread(name: str, previous: FileEntry | None, limit: int, old: Catalog,
            now_ns: int, escapes: Escapes, media_moved: bool = False) -> FileEntry | None:
    """Read one file again (and the media files it names, if they moved); None if it holds
    (or held) part of the vocabulary."""
    key, _, raw, problem = _read(name, limit, escapes)
    racy = key[1] >= now_ns - RACY_NS
    if raw is None:
        if previous is not None and previous.vocabulary:
            return None
        return FileEntry(key, b"", problems=(problem,) if problem else (), racy=racy)
    digest = file_digest(raw)
    if previous is not None and digest == previous.digest and not media_moved:
        return replace(previous, key=key, racy=racy)  # touched, not changed: nothing to parse
    if previous is not None and previous.vocabulary:
        return None
    problems: list[Problem] = []
    parts = parse_file(name, raw, problems)
    if parts.sites or parts.topics:
        return None
    assert old.site is not None
    entry = _entry(Path(old.root), key, raw, parts, problems, old.site, old.topics, now_ns)
    if previous is not None and entry.stamp == previous.stamp \
            and entry.problems == previous.problems:
        # Read again only for its media files, which are as they were: keep the very
        # releases served, which the index holds (a reload removes them by identity).
        return replace(entry, releases=previous.releases, ids=previous.ids)
    return entry


def _everything(old: Catalog, new: Catalog) -> Change:
    changed = tuple(name for name, entry in new.files.items()
                    if name not in old.files or old.files[name].stamp != entry.stamp
                    or old.files[name].problems != entry.problems)
    removed = tuple(name for name in old.files if name not in new.files)
    if new.problems != old.problems and not changed and not removed:
        changed = (new.root,)
    return Change(new, changed, removed)
