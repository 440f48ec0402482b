"""What the store's tests share: releases compared field by field, date-times by zone too."""
from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from feedsvc.dataset import Dataset, Release
from feedsvc.dataset.bulkload import rebuild
from feedsvc.dataset.db import connect
from feedsvc.dataset.reader import Reader
from feedsvc.dataset.served import Meta
from feedsvc.dataset.write import FileChange


def exact(value: Any) -> Any:
    """Return what a value is when nothing may differ: a date-time's wall time, its zone (its
    key, or its offset), its fold and offset; a record's every field, recursively."""
    if isinstance(value, datetime):
        zone = value.tzinfo
        name = zone.key if isinstance(zone, ZoneInfo) else repr(zone)
        return (value.replace(tzinfo=None).isoformat(), type(zone).__name__, name, value.fold,
                value.utcoffset())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__,
                *((f.name, exact(getattr(value, f.name))) for f in dataclasses.fields(value)))
    if isinstance(value, tuple | list):
        return tuple(exact(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, exact(v)) for k, v in value.items())
    return value


def assert_same(found: Release | None, expected: Release | None) -> None:
    """Assert two releases (or None) are the same in every field, date-times exactly."""
    assert exact(found) == exact(expected)


def files_of(dataset: Dataset, per_file: int = 1) -> list[FileChange]:
    """Return the catalog of a made-up folder holding the dataset: the vocabulary in one file,
    then `per_file` releases a file (in the dataset's order)."""
    releases = list(dataset.releases)
    files = [FileChange("site.yaml", 1, 1, 1, b"\0" * 16, (), vocabulary=True)]
    for at in range(0, len(releases), per_file):
        held = tuple(releases[at:at + per_file])
        name = f"releases/{held[0].id}.yaml"
        files.append(FileChange(name, len(held), at, at + 2, hashlib.md5(name.encode()).digest(),
                                held))
    return files


def build_store(dataset: Dataset, path: Path, per_file: int = 1) -> Reader:
    """Write the dataset into a new store at `path`; return its reader."""
    conn = connect(path, write=True)
    try:
        rebuild(conn, dataset, files_of(dataset, per_file))
    finally:
        conn.close()
    return Reader(path)


def meta_of(dataset: Dataset) -> Meta:
    """Return what a store built from `dataset` says besides its releases, for a view made on
    a bare connection."""
    return Meta(dataset.version, dataset.site, dataset.topics, dataset.source)
