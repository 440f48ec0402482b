"""What one index version says about hiding releases, kept per version (see lifecycle.py).

Worked out afresh at a start, from the few drafts, withdrawn and updated releases; after a
publish, from the facts of the index it was updated from by the releases that changed
(Index.delta; the reloader names that index: see facts()).
"""
from __future__ import annotations

import threading
import weakref
from array import array
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from . import Release
from .index import LABEL, Delta, Index

# How long a withdrawn release's Atom tombstone (RFC 6721) stays in the feeds it was in.
TOMBSTONE_DAYS = timedelta(days=30)


def hidden(release: Release) -> bool:
    """Tell whether a release is never served: a draft, or withdrawn."""
    return release.draft or release.withdrawn is not None


@dataclass(frozen=True)
class Facts:
    """What one index version says about hiding, by label (see index.py): kept per version,
    and worked out from the previous version's by the releases that changed."""

    hidden_all: array[int]  # labels of hidden releases, ascending
    hidden_by: Mapping[str, array[int]]  # the same, per "countries/TH" or "topics/slug"
    # Visible releases updated since publication, in all ("") and per posting list: their last
    # change (whole seconds) and their negated label, ascending by both (parallel arrays).
    updated_by: Mapping[str, tuple[array[int], array[int]]]
    tombstones: Sequence[Release]  # withdrawn, published releases, by end of notice
    expiries: array[float]  # each tombstone's end of notice (Unix seconds), ascending


NONE: array[int] = array(LABEL)


def _names(release: Release) -> tuple[str, ...]:
    return (*(f"countries/{c}" for c in release.countries), *(f"topics/{t}" for t in release.topics))


def changed(release: Release) -> int:
    return int(release.modified.timestamp())


def _facts(index: Index) -> Facts:
    # Only the few drafts, withdrawn or updated releases are looked at one by one.
    return worked_out(index, ((i, found) for i, r in enumerate(index.releases)
                              if (found := special(r)) is not None))


@dataclass(frozen=True, slots=True)
class Special:
    """What the facts need of a draft, withdrawn or updated release."""

    hidden: bool  # a draft, or withdrawn: never served
    tombstone: bool  # withdrawn and published: its tombstone is shown for a while
    names: tuple[str, ...]  # its posting lists: "countries/TH", "topics/slug"
    changed: int  # its last change (whole seconds)


def special(release: Release) -> Special | None:
    """Return what the facts need of a release; None for the many they never look at."""
    if release.updated is None and not release.draft and release.withdrawn is None:
        return None
    gone = hidden(release)
    return Special(gone, gone and not release.draft, _names(release), changed(release))


def worked_out(index: Index, special: Iterable[tuple[int, Special]]) -> Facts:
    """Return the index's facts from its special releases, by position, ascending (made by
    `special`, perhaps by another process: only withdrawn releases are then read here)."""
    releases, labels = index.releases, index.labels
    hidden_all = array(LABEL)
    hidden_by: dict[str, array[int]] = {}
    updated: dict[str, list[tuple[int, int]]] = {"": []}
    tombstones: list[Release] = []
    for i, found in special:
        label = labels[i]
        if found.hidden:
            hidden_all.append(label)
            for name in found.names:
                hidden_by.setdefault(name, array(LABEL)).append(label)
            if found.tombstone:
                tombstones.append(releases[i])
        else:
            for name in ("", *found.names):
                updated.setdefault(name, []).append((found.changed, -label))
    tombstones.sort(key=_tombstone_key)
    return Facts(hidden_all, hidden_by,
                 {name: (array("q", (k for k, _ in keys)), array(LABEL, (n for _, n in keys)))
                  for name, keys in ((name, sorted(keys)) for name, keys in updated.items())},
                 tombstones, array("d", (_expiry(r) for r in tombstones)))


def _facts_after(old: Facts, delta: Delta) -> Facts:
    """Return the facts of the index `delta` made from the index `old` describes."""
    edit = _FactsEdit(old)
    for release, label in delta.removed:
        edit.change(release, label, -1)
    for release, label in delta.added:
        edit.change(release, label, +1)
    return edit.result()


class _FactsEdit:
    """Facts being edited: each list is copied when first touched (the old facts are served)."""

    def __init__(self, old: Facts) -> None:
        self.hidden_all = array(LABEL, old.hidden_all)
        self.hidden_by, self.updated_by = dict(old.hidden_by), dict(old.updated_by)
        self.tombstones, self.expiries = list(old.tombstones), array("d", old.expiries)
        self.copied: set[str] = set()

    def change(self, release: Release, label: int, sign: int) -> None:
        """Take a release out (sign -1) or put it in (+1)."""
        if hidden(release):
            _edit(self.hidden_all, label, sign)
            for name in _names(release):
                _edit(self._own_hidden(name), label, sign)
            if not release.draft:
                self._tombstone(release, sign)
        elif release.updated is not None:
            for name in ("", *_names(release)):
                keys, negated = self._own_updated(name)
                lo = bisect_left(keys, changed(release))
                at = bisect_left(negated, -label, lo, bisect_right(keys, changed(release), lo))
                if sign > 0:
                    keys.insert(at, changed(release))
                    negated.insert(at, -label)
                else:
                    del keys[at], negated[at]

    def _own_hidden(self, name: str) -> array[int]:
        if "h" + name not in self.copied:
            self.copied.add("h" + name)
            self.hidden_by[name] = array(LABEL, self.hidden_by.get(name, NONE))
        return self.hidden_by[name]

    def _own_updated(self, name: str) -> tuple[array[int], array[int]]:
        if "u" + name not in self.copied:
            self.copied.add("u" + name)
            keys, negated = self.updated_by.get(name, (NONE, NONE))
            self.updated_by[name] = (array("q", keys), array(LABEL, negated))
        return self.updated_by[name]

    def _tombstone(self, release: Release, sign: int) -> None:
        keys = [_tombstone_key(r) for r in self.tombstones]  # withdrawn releases are few
        at = bisect_left(keys, _tombstone_key(release))
        if sign > 0:
            self.tombstones.insert(at, release)
            self.expiries.insert(at, _expiry(release))
        else:
            del self.tombstones[at], self.expiries[at]

    def result(self) -> Facts:
        hidden_by = {k: v for k, v in self.hidden_by.items() if v}
        updated_by = {k: v for k, v in self.updated_by.items() if v[0] or k == ""}
        return Facts(self.hidden_all, hidden_by, updated_by, self.tombstones, self.expiries)


def _edit(labels: array[int], label: int, sign: int) -> None:
    if sign > 0:
        insort(labels, label)
    else:
        del labels[bisect_left(labels, label)]


def _tombstone_key(release: Release) -> tuple[float, str]:
    return _expiry(release), release.id


def _expiry(release: Release) -> float:
    assert release.withdrawn is not None
    return (release.withdrawn + TOMBSTONE_DAYS).timestamp()


# By index (its id, and a weak reference to tell it from a later one with the same id), not
# by version: an index updated release by release and one built afresh from the same files
# have one version but label them differently. Two kept: a swap's.
_facts_of: dict[int, tuple[weakref.ref[Index], Facts]] = {}
_lock = threading.Lock()


def facts(index: Index, base: Index | None = None) -> Facts:
    """Return the index's facts, once per index (two kept: a swap's); from the facts of
    `base`, by the changed releases, when the index was updated from that very index."""
    with _lock:
        found = _known(index)
        delta = index.delta
        before = _known(base) if base is not None and delta is not None \
            and delta.base == base.version else None
    if found is None:
        found = _facts(index) if before is None or delta is None \
            else _facts_after(before, delta)
        remember(index, found)
    return found


def _known(index: Index) -> Facts | None:
    kept = _facts_of.get(id(index))
    return kept[1] if kept is not None and kept[0]() is index else None


def remember(index: Index, found: Facts) -> None:
    """Keep `found` as the facts of `index` (read with it from a snapshot): not worked out again."""
    with _lock:
        _facts_of.pop(id(index), None)
        while len(_facts_of) >= 2:
            del _facts_of[next(iter(_facts_of))]
        _facts_of[id(index)] = (weakref.ref(index), found)
