"""From a catalog of files to a valid dataset and its index: in full, or by the changed files."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from . import Dataset, DatasetError, Problem, Release, duplicate_ids, facts, newest_first, parse_file
from . import version as versions
from .index import Index, build_index
from .loader import Catalog, FileEntry, entry_of, in_path_order, load
from .merge import Merged, index_of, releases_of
from .stored import editable, frozen
from .yamlsource import version_of


def problems_of(catalog: Catalog) -> list[Problem]:
    """Return every problem of the files and of the dataset as a whole, sorted by place."""
    problems = list(catalog.problems)
    for entry in catalog.files.values():
        problems += entry.problems
    # An id used twice is reported where it comes again, in path order (as find_files lists);
    # the files are sorted for it only when some id is used twice.
    ids = [rid for entry in catalog.files.values() for rid, _ in entry.ids]
    if len(set(ids)) < len(ids):
        files = in_path_order(catalog.files)
        problems += duplicate_ids((name, entry.ids) for name, entry in files.items())
    if not catalog.files and not problems:
        problems.append(Problem(catalog.root, None, None, None, "no .yaml or .yml files found"))
    return sorted(problems, key=lambda p: (p.file, p.line or 0))


def assemble(catalog: Catalog) -> Dataset:
    """Return the valid dataset the catalog describes; raise DatasetError listing every problem."""
    problems = problems_of(catalog)
    if problems:
        raise DatasetError(problems)
    assert catalog.site is not None
    return Dataset(catalog.site, catalog.topics, newest_first(_releases(catalog)),
                   version(catalog), catalog.root)


def assemble_changed(served: Index, catalog: Catalog, removed: Sequence[Release],
                     changed: Sequence[FileEntry]) -> Dataset | None:
    """Return the dataset `served` becomes when only the `changed` files differ (their old
    releases being `removed`), looking at nothing else; None where only `assemble` can tell
    (a problem, a duplicate id, another vocabulary): it then finds and reports everything.
    """
    if catalog.site is not served.dataset.site or catalog.problems or not catalog.files \
            or any(entry.problems for entry in changed):
        return None
    gone = {release.id for release in removed}
    new: set[str] = set()
    for entry in changed:
        for rid, _ in entry.ids:
            if rid in new or (rid in served.by_id and rid not in gone):
                return None  # used twice: assemble says where
            new.add(rid)
    releases = editable(served.releases)  # stored records stay records: none is made
    for position in sorted((_position(releases, r) for r in removed), reverse=True):
        del releases[position]
    for release in (r for entry in changed for r in entry.releases):
        releases.insert(_insertion(releases, release), release)
    return Dataset(catalog.site, catalog.topics, frozen(releases), version(catalog), catalog.root)


def _key(release: Release) -> tuple[datetime, str]:
    return release.published, release.id


def _insertion(releases: Sequence[Release], release: Release) -> int:
    """Return where `release` goes in releases sorted newest first (by published, then id)."""
    lo, hi, key = 0, len(releases), _key(release)
    while lo < hi:
        mid = (lo + hi) // 2
        if _key(releases[mid]) > key:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _position(releases: Sequence[Release], release: Release) -> int:
    position = _insertion(releases, release)
    while releases[position] is not release:  # equal keys: ids are unique, so at most one
        position += 1
    return position


def _releases(catalog: Catalog) -> Iterator[Release]:
    for entry in catalog.files.values():
        yield from entry.releases


def version(catalog: Catalog) -> str:
    """Return the dataset version: a hash of every file's name and digest (see version.py)."""
    if catalog.fold is None:
        return version_of(catalog.root, ((name, e.stamp) for name, e in catalog.files.items()))
    return versions.version(catalog.fold)


@dataclass(frozen=True)
class Loaded:
    """A served index and the catalog of the files it was built from."""

    index: Index
    catalog: Catalog


def build(catalog: Catalog, merged: Merged | None = None) -> Loaded:
    """Assemble and index a catalog; raise DatasetError if it is not a valid dataset.

    With the merged runs of the child processes that read it (fanout.read), its releases are
    their store's records, in order already, and the index is merged from theirs: no release
    is made (merge.py).
    """
    if merged is None or catalog.problems or catalog.site is None or not merged.valid():
        return Loaded(build_index(assemble(catalog)), catalog)  # assemble reports problems
    data = Dataset(catalog.site, catalog.topics, releases_of(merged), version(catalog),
                   catalog.root)
    index = index_of(data, merged)
    facts.remember(index, facts.worked_out(index, merged.special()))
    return Loaded(index, catalog)


def check_with_file(root: Path, limit: int, name: str, raw: bytes,
                    problems: Sequence[Problem] = ()) -> None:
    """Check the dataset as it would be with one more file, not written yet (`feedsvc new`);
    raise DatasetError listing every problem, `problems` included."""
    catalog = load(root, limit)
    found: list[Problem] = []
    parts = parse_file(name, raw, found)
    entry = entry_of(root, raw, parts, found, catalog)
    every = [*problems, *problems_of(replace(catalog, files={**catalog.files, name: entry},
                                             fold=None))]
    if every:
        raise DatasetError(sorted(every, key=lambda p: (p.file, p.line or 0)))
