"""Update an index by the releases that changed: the cost of a publish is the publish.

Kept releases keep their labels (see index.py), so only the changed releases' posting lists
are copied and edited; a new release gets a label between its neighbours'.
"""
from __future__ import annotations

from array import array
from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping, Sequence

from . import Dataset, Release
from .index import EMPTY, HIGHEST, KEYS, LABEL, LOWEST, Delta, Index, build_index, spacing
from .stored import editable

# Above this many releases removed plus added, indexing afresh is as cheap as updating.
UPDATE_LIMIT = 2000


def update_index(old: Index, dataset: Dataset, removed: Sequence[Release],
                 added: Sequence[Release]) -> Index:
    """Index `dataset`: `old`'s releases less `removed`, plus `added`; no text is read again.

    Kept releases keep their labels, so only the posting lists of changed releases are
    copied and edited (bisect and insert, in C); the rest are shared with `old`. Where two
    neighbours leave no room for a new label, the few releases around it are labelled again.
    """
    if len(removed) + len(added) > UPDATE_LIMIT:
        return build_index(dataset)
    edit = _Edit(old)
    for release in removed:
        edit.remove(release)
    for at, release in sorted((_place(dataset.releases, r), r) for r in added):
        if not edit.insert(at, release):
            return build_index(dataset)  # no room anywhere: label afresh
    return edit.result(dataset, old.version)


def _place(releases: Sequence[Release], release: Release) -> int:
    """Return the position of `release` in releases sorted newest first (published, id)."""
    key = (release.published, release.id)
    return bisect_left(releases, True, key=lambda r: (r.published, r.id) <= key)


# A relabelled stretch spaces its labels at least this far apart: room for 6 more halvings.
ROOM = 64


class _Edit:
    """An index being edited: the served one's tables are copied, never changed in place."""

    def __init__(self, old: Index) -> None:
        self.labels, self.sort_keys = array(LABEL, old.labels), array("d", old.sort_keys)
        self.order, self.by_id = editable(old.releases), dict(old.by_id)
        self.lists = [_Lists(old.by_country), _Lists(old.by_topic), _Lists(old.by_word)]
        self.gone: dict[str, tuple[Release, int]] = {}  # by id: what the old index had
        self.new: dict[str, tuple[Release, int]] = {}

    def remove(self, release: Release) -> None:
        label = self.by_id.pop(release.id)
        if self.new.pop(release.id, None) is None:  # not put in by this edit: the old index's
            self.gone.setdefault(release.id, (release, label))
        at = bisect_left(self.labels, label)
        del self.labels[at], self.sort_keys[at], self.order[at]
        for lists, keys in zip(self.lists, KEYS, strict=True):
            lists.remove(keys(release), label)

    def insert(self, at: int, release: Release, label: int | None = None) -> bool:
        """Put a release at position `at`; False if no label is free anywhere."""
        if label is None:
            label = _between(self.labels, at)
        if label is None:
            if not self._relabel_around(at):
                return False
            label = _between(self.labels, at)
            assert label is not None
        self.labels.insert(at, label)
        self.sort_keys.insert(at, -release.published.timestamp())
        self.order.insert(at, release)
        self.by_id[release.id] = label
        self.new[release.id] = (release, label)
        for lists, keys in zip(self.lists, KEYS, strict=True):
            lists.add(keys(release), label)
        return True

    def _relabel_around(self, at: int) -> bool:
        """Space out the labels of a stretch around `at`, widened until it has room."""
        size, count = 4, len(self.labels)
        while True:
            lo, hi = max(0, at - size), min(count, at + size)
            low = self.labels[lo - 1] if lo > 0 else LOWEST
            high = self.labels[hi] if hi < count else HIGHEST
            step = (high - low) // (hi - lo + 2)  # the stretch, and one more release
            if step >= ROOM or (lo == 0 and hi == count and step >= 2):
                break
            if lo == 0 and hi == count:
                return False
            size *= 2
        moved = [(self.order[p], low + step * (p - lo + (p >= at) + 1)) for p in range(lo, hi)]
        for release, _ in moved:  # each out and back in: its lists, the facts, the map
            self.remove(release)
        for offset, (release, label) in enumerate(moved):
            self.insert(lo + offset, release, label)
        return True

    def result(self, dataset: Dataset, base: str) -> Index:
        # A release taken out and put back with its own label has not changed.
        same = {rid for rid, entry in self.new.items() if self.gone.get(rid) == entry}
        delta = Delta(base, tuple(v for k, v in self.gone.items() if k not in same),
                      tuple(v for k, v in self.new.items() if k not in same))
        return Index(dataset=dataset, by_id=self.by_id, by_country=self.lists[0].result(),
                     by_topic=self.lists[1].result(), by_word=self.lists[2].result(),
                     sort_keys=self.sort_keys, labels=self.labels, delta=delta)


def _between(labels: array[int], at: int) -> int | None:
    """Return a free label for a release inserted at position `at`, or None."""
    low = labels[at - 1] if at > 0 else LOWEST
    high = labels[at] if at < len(labels) else HIGHEST
    if high - low < 2:
        return None
    if at == 0 and at < len(labels):  # newer than all: leave room for the next newest
        return max(low + 1, high - spacing(len(labels)))
    if at == len(labels) and at > 0:
        return min(high - 1, low + spacing(len(labels)))
    return (low + high) // 2


class _Lists:
    """Posting lists being edited: each list is copied when first touched, never edited
    in place (the served index still reads it)."""

    def __init__(self, old: Mapping[str, array[int]]) -> None:
        self.lists, self.copied = dict(old), set[str]()

    def _own(self, key: str) -> array[int]:
        if key not in self.copied:
            self.copied.add(key)
            self.lists[key] = array(LABEL, self.lists.get(key, EMPTY))
        return self.lists[key]

    def remove(self, keys: Iterable[str], label: int) -> None:
        for key in keys:
            posting = self._own(key)
            del posting[bisect_left(posting, label)]

    def add(self, keys: Iterable[str], label: int) -> None:
        for key in keys:
            insort(self._own(key), label)

    def result(self) -> dict[str, array[int]]:
        for key in self.copied:
            if not self.lists[key]:
                del self.lists[key]
        return self.lists
