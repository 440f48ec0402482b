"""From a catalog of files to a valid dataset, or every problem it has (load_dataset, `feedsvc new`)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from . import Dataset, DatasetError, Problem, Release, duplicate_ids, newest_first, parse_file
from . import version as versions
from .loader import Catalog, entry_of, in_path_order, load
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


def _releases(catalog: Catalog) -> Iterator[Release]:
    for entry in catalog.files.values():
        yield from entry.releases


def version(catalog: Catalog) -> str:
    """Return the dataset version: a hash of every file's name and digest (see version.py)."""
    if catalog.fold is None:
        return version_of(catalog.root, ((name, e.stamp) for name, e in catalog.files.items()))
    return versions.version(catalog.fold)


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
