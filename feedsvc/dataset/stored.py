"""Releases kept as pickled records, each made an object the first time it is used.

A snapshot holds the served releases as one run of bytes with an offset table (a `Store`), so
a restart reads them without constructing 100,000 objects: a request makes the few it shows,
once per process. `StoredReleases` is a sequence of releases in which each item is a record
of its store, by number, or a release made since (a publish inserts new ones); copying it for
an edit copies those small items, never makes the records into objects.
"""
from __future__ import annotations

import operator
import pickle
import threading
from array import array
from collections.abc import Iterable, Iterator, MutableSequence, Sequence
from dataclasses import dataclass, fields
from itertools import accumulate
from typing import Any, overload

from . import Release

# A release's constructor arguments, in order.
_ARGUMENTS = operator.attrgetter(*(f.name for f in fields(Release)))


def record(release: Release) -> bytes:
    """Return a release as a record: its constructor's arguments, pickled."""
    return pickle.dumps(_ARGUMENTS(release), protocol=5)


class Store:
    """Pickled releases, one record each, made into objects once and kept (per process)."""

    __slots__ = ("blob", "offsets", "made", "_lock")

    def __init__(self, blob: bytes, offsets: array[int]) -> None:
        self.blob, self.offsets = blob, offsets
        self.made: list[Release | None] = [None] * (len(offsets) - 1)
        self._lock = threading.Lock()

    @classmethod
    def of(cls, records: Iterable[bytes | memoryview]) -> Store:
        """Return a store of the given records, numbered from 0."""
        parts = list(records)
        return cls(b"".join(parts), array("q", accumulate((len(p) for p in parts), initial=0)))

    def get(self, number: int) -> Release:
        """Return record `number` as a release: always the same object in this process."""
        found = self.made[number]
        if found is not None:
            return found
        made = Release(*pickle.loads(self.raw(number)))
        with self._lock:  # two threads may make it at once: one object wins, for both
            found = self.made[number]
            if found is None:
                self.made[number] = found = made
        return found

    def peek(self, number: int) -> Release:
        """Return record `number` as a release, without keeping one made for it (a pass over
        the whole store must not leave an object per record behind: see Passing)."""
        found = self.made[number]
        return found if found is not None else Release(*pickle.loads(self.raw(number)))

    def raw(self, number: int) -> bytes:
        """Return record `number` as stored."""
        return self.blob[self.offsets[number]:self.offsets[number + 1]]

    def __len__(self) -> int:
        return len(self.made)

    def __reduce__(self) -> tuple[Any, ...]:
        return Store, (self.blob, self.offsets)


Item = int | Release


class StoredReleases(MutableSequence[Release]):
    """Releases, each a record of `store` (by number) or a release made since.

    Served sequences are never changed: an edit works on a copy (`editable`).
    """

    __slots__ = ("store", "items")

    def __init__(self, store: Store, items: Sequence[Item]) -> None:
        # A range (every record, in order) or a tuple until copied for an edit: a list.
        self.store, self.items = store, items

    @classmethod
    def all_of(cls, store: Store) -> StoredReleases:
        """Return every record of the store, in its order."""
        return cls(store, range(len(store)))

    @property
    def whole(self) -> bool:
        """Whether these are every record of the store, in order, and nothing else."""
        return isinstance(self.items, range) and self.items == range(len(self.store))

    def _own(self) -> list[Item]:
        assert isinstance(self.items, list), "only a copy made by editable() is edited"
        return self.items

    def _get(self, item: Item) -> Release:
        return self.store.get(item) if isinstance(item, int) else item

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, at: int) -> Release: ...

    @overload
    def __getitem__(self, at: slice) -> StoredReleases: ...

    def __getitem__(self, at: int | slice) -> Release | StoredReleases:
        if isinstance(at, slice):
            return StoredReleases(self.store, self.items[at])
        return self._get(self.items[at])

    @overload
    def __setitem__(self, at: int, value: Release) -> None: ...

    @overload
    def __setitem__(self, at: slice, value: Iterable[Release]) -> None: ...

    def __setitem__(self, at: int | slice, value: Any) -> None:
        if isinstance(at, slice):
            self._own()[at] = list(value)
        else:
            self._own()[at] = value

    def __delitem__(self, at: int | slice) -> None:
        del self._own()[at]

    def insert(self, at: int, value: Release) -> None:
        self._own().insert(at, value)

    def __iter__(self) -> Iterator[Release]:
        return map(self._get, self.items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or len(other) != len(self):
            return False
        return all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{len(self.items)} stored releases>"

    def __reduce__(self) -> tuple[Any, ...]:
        # Anywhere but a snapshot's own store (snapfile.py), a plain tuple of releases.
        return tuple, (tuple(self),)


class Passing(Sequence[Release]):
    """The releases at some positions of a dataset's, each made for the moment: a record that
    is not an object yet is made, used and dropped, never kept. For a pass over the whole
    archive (the sitemap, the media files the visible releases name), which would otherwise
    leave an object per release in every worker that made it."""

    __slots__ = ("releases", "positions")

    def __init__(self, releases: Sequence[Release], positions: Sequence[int]) -> None:
        self.releases, self.positions = releases, positions

    def __len__(self) -> int:
        return len(self.positions)

    @overload
    def __getitem__(self, at: int) -> Release: ...

    @overload
    def __getitem__(self, at: slice) -> Passing: ...

    def __getitem__(self, at: int | slice) -> Release | Passing:
        if isinstance(at, slice):
            return Passing(self.releases, self.positions[at])
        return self._made(self.positions[at])

    def __iter__(self) -> Iterator[Release]:
        return map(self._made, self.positions)

    def _made(self, position: int) -> Release:
        releases = self.releases
        if not isinstance(releases, StoredReleases):
            return releases[position]
        item = releases.items[position]
        return releases.store.peek(item) if isinstance(item, int) else item


def editable(releases: Sequence[Release]) -> MutableSequence[Release]:
    """Return a copy of `releases` to edit; stored records stay records."""
    if isinstance(releases, StoredReleases):
        return StoredReleases(releases.store, list(releases.items))
    return list(releases)


def frozen(releases: MutableSequence[Release]) -> Sequence[Release]:
    """Return an edited copy as the sequence a dataset holds (a tuple, or stored releases)."""
    return releases if isinstance(releases, StoredReleases) else tuple(releases)


@dataclass(frozen=True)
class Positions:
    """Where each release is in a store made by `storing`: by id() of the release object,
    and by number of a record of `source` (None: the number is the position)."""

    objects: dict[int, int]
    source: Store | None = None
    records: dict[int, int] | None = None

    def of(self, store: Store, number: int) -> int | None:
        if store is self.source:
            return number if self.records is None else self.records.get(number)
        made = store.made[number]
        return None if made is None else self.objects.get(id(made))


def storing(releases: Sequence[Release]) -> tuple[StoredReleases, Positions]:
    """Return `releases` as every record of one store, in their order, and their positions."""
    if isinstance(releases, StoredReleases) and releases.whole:
        made = enumerate(releases.store.made)
        return releases, Positions({id(r): at for at, r in made if r is not None},
                                   releases.store)
    records: list[bytes] = []
    objects: dict[int, int] = {}
    numbers: dict[int, int] = {}
    store = releases.store if isinstance(releases, StoredReleases) else None
    items: Sequence[Item] = releases.items if isinstance(releases, StoredReleases) else releases
    for at, item in enumerate(items):
        if isinstance(item, int):
            assert store is not None
            records.append(store.raw(item))
            numbers[item] = at
            done = store.made[item]
            if done is not None:
                objects[id(done)] = at
        else:
            records.append(record(item))
            objects[id(item)] = at
    return StoredReleases.all_of(Store.of(records)), Positions(objects, store, numbers)


def place(releases: Sequence[Release], known: Positions) -> tuple[int, ...] | None:
    """Return the positions of a file's releases in a store made by `storing`; None if one
    of them is not there."""
    found: list[int] = []
    items: Iterable[Item] = releases.items if isinstance(releases, StoredReleases) else releases
    for item in items:
        if isinstance(item, int):
            assert isinstance(releases, StoredReleases)
            at = known.of(releases.store, item)
        else:
            at = known.objects.get(id(item))
        if at is None:
            return None
        found.append(at)
    return tuple(found)
