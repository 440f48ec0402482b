"""Update an index by the releases that changed: the cost of a publish is the publish.

Kept releases keep their labels (see index.py), so only the changed releases' posting lists
are copied and edited; a new release gets a label between its neighbours'.
"""
from __future__ import annotations

from array import array
from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping, Sequence

from .dataset import Dataset, Release
from .index import EMPTY, GAP, HIGHEST, KEYS, LOWEST, Delta, Index, build_index

# Above this many releases removed plus added, indexing afresh is as cheap as updating.
UPDATE_LIMIT = 2000


def update_index(old: Index, dataset: Dataset, removed: Sequence[Release],
                 added: Sequence[Release]) -> Index:
    """Index `dataset`: `old`'s releases less `removed`, plus `added`; no text is read again.

    Kept releases keep their labels, so only the posting lists of changed releases are
    copied and edited (bisect and insert, in C); the rest are shared with `old`.
    """
    if len(removed) + len(added) > UPDATE_LIMIT:
        return build_index(dataset)
    labels, sort_keys, by_id = array("q", old.labels), array("d", old.sort_keys), dict(old.by_id)
    lists = [_Lists(old.by_country), _Lists(old.by_topic), _Lists(old.by_word)]
    gone = []
    for release in removed:
        label = by_id.pop(release.id)
        gone.append((release, label))
        at = bisect_left(labels, label)
        del labels[at], sort_keys[at]
        for edit, keys in zip(lists, KEYS, strict=True):
            edit.remove(keys(release), label)
    new = []
    for at, release in sorted((_place(dataset.releases, r), r) for r in added):
        fresh = _between(labels, at)
        if fresh is None:  # no room left between two neighbours: label afresh
            return build_index(dataset)
        new.append((release, fresh))
        labels.insert(at, fresh)
        sort_keys.insert(at, -release.published.timestamp())
        by_id[release.id] = fresh
        for edit, keys in zip(lists, KEYS, strict=True):
            edit.add(keys(release), fresh)
    return Index(dataset=dataset, by_id=by_id, by_country=lists[0].result(),
                 by_topic=lists[1].result(), by_word=lists[2].result(), sort_keys=sort_keys,
                 labels=labels, delta=Delta(old.version, tuple(gone), tuple(new)))


def _place(releases: Sequence[Release], release: Release) -> int:
    """Return the position of `release` in releases sorted newest first (published, id)."""
    key = (release.published, release.id)
    return bisect_left(releases, True, key=lambda r: (r.published, r.id) <= key)


def _between(labels: array[int], at: int) -> int | None:
    """Return a label for a release inserted at position `at`; None if there is no room."""
    low = labels[at - 1] if at > 0 else None
    high = labels[at] if at < len(labels) else None
    if low is None:
        label = 0 if high is None else high - GAP
    elif high is None:
        label = low + GAP
    else:
        label = (low + high) // 2
    fits = LOWEST <= label <= HIGHEST - 1 and (low is None or label > low) \
        and (high is None or label < high)
    return label if fits else None


class _Lists:
    """Posting lists being edited: each list is copied when first touched, never edited
    in place (the served index still reads it)."""

    def __init__(self, old: Mapping[str, array[int]]) -> None:
        self.lists, self.copied = dict(old), set[str]()

    def _own(self, key: str) -> array[int]:
        if key not in self.copied:
            self.copied.add(key)
            self.lists[key] = array("q", self.lists.get(key, EMPTY))
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
