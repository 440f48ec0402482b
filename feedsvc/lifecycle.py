"""What readers may see of an index at one moment: drafts, scheduled and withdrawn releases.

Works on a built Index without changing it. Releases are sorted newest first, so those
scheduled after `now` are the first k positions: what is visible at `now` starts at the first
position published at or before it (a bisect on `Index.sort_keys`), and a posting list's
visible count is its length less the positions before k and the hidden ones after it.
Drafts and withdrawn releases are hidden always; they are few, and skipped where a page is
selected. Nothing is rebuilt when a scheduled release goes live: the moment's `token` (k, and
how many withdrawal notices have expired) joins the cache key instead.
"""
from __future__ import annotations

import threading
from array import array
from bisect import bisect_left, bisect_right, insort
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from .dataset import Release
from .index import Delta, Filters, Index, Page, words

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


_NONE: array[int] = array("q")


def _names(release: Release) -> tuple[str, ...]:
    return (*(f"countries/{c}" for c in release.countries), *(f"topics/{t}" for t in release.topics))


def _changed(release: Release) -> int:
    return int(release.modified.timestamp())


def _facts(index: Index) -> Facts:
    releases, labels = index.releases, index.labels
    # Only the few drafts, withdrawn or updated releases are looked at one by one.
    special = [i for i, r in enumerate(releases)
               if r.updated is not None or r.draft or r.withdrawn is not None]
    hidden_all = array("q")
    hidden_by: dict[str, array[int]] = {}
    updated: dict[str, list[tuple[int, int]]] = {"": []}
    for i in special:
        release, label = releases[i], labels[i]
        if hidden(release):
            hidden_all.append(label)
            for name in _names(release):
                hidden_by.setdefault(name, array("q")).append(label)
        else:
            for name in ("", *_names(release)):
                updated.setdefault(name, []).append((_changed(release), -label))
    tombstones = sorted((releases[i] for i in special if hidden(releases[i])
                         and not releases[i].draft), key=_tombstone_key)
    return Facts(hidden_all, hidden_by,
                 {name: (array("q", (k for k, _ in keys)), array("q", (n for _, n in keys)))
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
        self.hidden_all = array("q", old.hidden_all)
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
                lo = bisect_left(keys, _changed(release))
                at = bisect_left(negated, -label, lo, bisect_right(keys, _changed(release), lo))
                if sign > 0:
                    keys.insert(at, _changed(release))
                    negated.insert(at, -label)
                else:
                    del keys[at], negated[at]

    def _own_hidden(self, name: str) -> array[int]:
        if "h" + name not in self.copied:
            self.copied.add("h" + name)
            self.hidden_by[name] = array("q", self.hidden_by.get(name, _NONE))
        return self.hidden_by[name]

    def _own_updated(self, name: str) -> tuple[array[int], array[int]]:
        if "u" + name not in self.copied:
            self.copied.add("u" + name)
            keys, negated = self.updated_by.get(name, (_NONE, _NONE))
            self.updated_by[name] = (array("q", keys), array("q", negated))
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


_facts_of: dict[str, Facts] = {}
_lock = threading.Lock()


def facts(index: Index) -> Facts:
    """Return the index's facts, once per dataset version (two kept: a swap's); from the
    previous version's, by the changed releases, when the index was updated from it."""
    with _lock:
        found = _facts_of.get(index.version)
        base = None if index.delta is None else _facts_of.get(index.delta.base)
    if found is None:
        found = _facts(index) if base is None or index.delta is None \
            else _facts_after(base, index.delta)
        with _lock:
            while len(_facts_of) >= 2:
                del _facts_of[next(iter(_facts_of))]
            _facts_of[index.version] = found
    return found


@dataclass(frozen=True)
class View:
    """An index as readers see it at `now`."""

    index: Index
    facts: Facts
    now: datetime
    first: int  # the first position published at or before now
    expired: int  # how many tombstones have ended their notice

    @property
    def token(self) -> str:
        """Name what is visible: the bytes of every response depend on it and the version."""
        return f"{self.first}.{self.expired}"

    @property
    def next_publication(self) -> datetime | None:
        """Return when the next scheduled release goes live (drafts are never), or None."""
        releases = self.index.releases
        for position in range(self.first - 1, -1, -1):  # scheduled drafts are few
            if not hidden(releases[position]):
                return releases[position].published
        return None

    @property
    def next_change(self) -> datetime | None:
        """Return the next instant at which what is visible changes, or None."""
        changes = [self.next_publication]
        if self.expired < len(self.facts.tombstones):
            expiry = self.facts.expiries[self.expired]
            changes.append(datetime.fromtimestamp(expiry, self.now.tzinfo))
        return min((c for c in changes if c is not None), default=None)

    def seconds_to_change(self) -> float | None:
        """Return how long the current responses stay true, or None (until the data changes)."""
        change = self.next_change
        return None if change is None else max(0.0, (change - self.now).total_seconds())

    @property
    def first_label(self) -> int:
        """The label of the first position published at or before now (see index.py)."""
        return self.index.label_at(self.first)

    def status(self, release_id: str) -> tuple[str, Release | None]:
        """Say what `/releases/{id}` answers: ("ok", release), ("gone", release) or
        ("missing", None) for an unknown, draft or not yet published release."""
        position = self.index.position_of(release_id)
        if position is None or position < self.first:
            return "missing", None
        release = self.index.releases[position]
        if release.draft:
            return "missing", None
        return ("gone" if release.withdrawn is not None else "ok"), release

    def select(self, filters: Filters, limit: int, start: int = 0) -> Page:
        """Return up to `limit` visible releases matching `filters` from position `start`."""
        index, start = self.index, max(start, self.first)
        if not self.facts.hidden_all:
            return index.select(filters, limit, start)
        chosen: list[Release] = []
        while True:
            page = index.select(filters, limit + 1 - len(chosen), start)
            chosen += [r for r in page.releases if not hidden(r)]
            if len(chosen) > limit or not page.more or not page.releases:
                return Page(chosen[:limit], len(chosen) > limit)
            start = index.position(index.by_id[page.releases[-1].id]) + 1

    def visible(self) -> Sequence[Release]:
        """Return every release readers can see now, newest first (a pass over the archive:
        for what is built once per version and moment, such as the sitemap)."""
        return self.select(Filters(), max(self.count(), 1)).releases

    def _lists(self, name: str | None) -> tuple[array[int], array[int]]:
        """Return the labels of a posting list (every release for None), and its hidden ones."""
        if name is None:
            return self.index.labels, self.facts.hidden_all
        kind, key = name.split("/", 1)
        postings = (self.index.by_country if kind == "countries" else self.index.by_topic)
        return postings.get(key, _NONE), self.facts.hidden_by.get(name, _NONE)

    def count(self, name: str | None = None) -> int:
        """Return how many releases are visible, in all or in one posting list
        ("countries/TH", "topics/slug")."""
        found, gone = self._lists(name)
        first = self.first_label
        return len(found) - bisect_left(found, first) - (len(gone) - bisect_left(gone, first))

    def newest(self, name: str | None = None) -> Release | None:
        """Return the visible release changed last, in all or in one posting list.

        The newest published visible release changed no earlier than any later one that was
        never updated: only the updated ones (few) can beat it; ties go to the newest published.
        """
        found, gone = self._lists(name)
        first, best = self.first_label, (-1, 0)
        for at in range(bisect_left(found, first), len(found)):  # past the hidden ones (few)
            label = found[at]
            skip = bisect_left(gone, label)
            if skip == len(gone) or gone[skip] != label:
                best = (_changed(self.index.releases[self.index.position(label)]), -label)
                break
        keys, negated = self.facts.updated_by.get(name or "", (_NONE, _NONE))
        for at in range(len(keys) - 1, -1, -1):  # past the scheduled ones (few)
            if -negated[at] >= first:
                best = max(best, (keys[at], negated[at]))
                break
        return None if best[0] < 0 else self.index.releases[self.index.position(-best[1])]

    def tombstones(self, filters: Filters) -> list[Release]:
        """Return the withdrawn releases whose notice still runs, of a feed's selection."""
        live = self.facts.tombstones[self.expired:]
        first = self.first_label
        published = [r for r in live if self.index.by_id[r.id] >= first]
        return sorted((r for r in published if matches(self.index, r, filters)),
                      key=lambda r: (r.withdrawn, r.id), reverse=True)


def matches(index: Index, release: Release, filters: Filters) -> bool:
    """Tell whether a release is of a feed's selection (as Index.select chooses)."""
    if filters.countries and not filters.countries.intersection(release.countries):
        return False
    if filters.topics and not filters.topics.intersection(release.topics):
        return False
    if filters.words and not filters.words <= set(words(f"{release.title} {release.summary}")):
        return False
    if filters.since is not None:
        midnight = datetime.combine(filters.since, time(), index.dataset.site.zone)
        return release.published >= midnight
    return True


def view_at(index: Index, now: datetime) -> View:
    """Return what readers see of `index` at `now` (two bisects, after the first call)."""
    found = facts(index)
    first = bisect_left(index.sort_keys, -now.timestamp())
    return View(index, found, now, first, bisect_right(found.expiries, now.timestamp()))
