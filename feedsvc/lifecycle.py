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
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from itertools import accumulate

from .dataset import Release
from .fields import YEARS
from .index import Filters, Index, Page, words

# How long a withdrawn release's Atom tombstone (RFC 6721) stays in the feeds it was in.
TOMBSTONE_DAYS = timedelta(days=30)


def hidden(release: Release) -> bool:
    """Tell whether a release is never served: a draft, or withdrawn."""
    return release.draft or release.withdrawn is not None


@dataclass(frozen=True)
class Facts:
    """What one index version says about hiding, computed once per version."""

    hidden_all: array[int]  # positions of hidden releases, ascending
    hidden_by: Mapping[str, array[int]]  # the same, per "countries/TH" or "topics/slug"
    newest_all: array[int]  # [i]: the newest change among visible positions >= i, as a key
    newest_by: Mapping[str, array[int]]  # the same per posting-list entry; -1: none
    tombstones: Sequence[Release]  # withdrawn, published releases, by end of notice
    expiries: array[float]  # each tombstone's end of notice (Unix seconds), ascending


# A release's last change and its position in one int64, so that the C `max` finds both:
# whole seconds since before the oldest date allowed (fields.YEARS) above, and below them
# the position inverted (ties: the newest published). Hidden releases are -1.
_POSITION_BITS = 26
_LOW = (1 << _POSITION_BITS) - 1
_EPOCH = int(datetime(YEARS[0] - 1, 1, 1, tzinfo=UTC).timestamp())


def _newest(keys: Sequence[int], positions: Sequence[int]) -> array[int]:
    """Return, for each i, the key of the latest change among visible positions[i:] (-1: none)."""
    ordered = [keys[p] for p in reversed(positions)]
    return array("q", reversed(list(accumulate(ordered, max, initial=-1))[1:]))


def newest_position(key: int) -> int:
    return -1 if key < 0 else _LOW - (key & _LOW)


def _facts(index: Index) -> Facts:
    releases = index.releases
    # Most releases changed when published: their keys come from the sort keys, and only
    # the few updated, draft or withdrawn ones are looked at one by one.
    keys = [((int(-t) - _EPOCH) << _POSITION_BITS) | (_LOW - i)
            for i, t in enumerate(index.sort_keys)]
    hidden_all = array("I")
    for i, r in enumerate(releases):
        if r.updated is not None or r.draft or r.withdrawn is not None:
            keys[i] = ((int(r.modified.timestamp()) - _EPOCH) << _POSITION_BITS) | (_LOW - i)
            if hidden(r):
                hidden_all.append(i)
    hidden_by: dict[str, array[int]] = {}
    for i in hidden_all:
        keys[i] = -1
        for name in (*(f"countries/{c}" for c in releases[i].countries),
                     *(f"topics/{t}" for t in releases[i].topics)):
            hidden_by.setdefault(name, array("I")).append(i)
    lists = {**{f"countries/{c}": p for c, p in index.by_country.items()},
             **{f"topics/{t}": p for t, p in index.by_topic.items()}}
    tombstones = sorted((releases[i] for i in hidden_all if not releases[i].draft),
                        key=lambda r: (_expiry(r), r.id))
    return Facts(hidden_all, hidden_by, _newest(keys, range(len(releases))),
                 {name: _newest(keys, positions) for name, positions in lists.items()},
                 tombstones, array("d", (_expiry(r) for r in tombstones)))


def _expiry(release: Release) -> float:
    assert release.withdrawn is not None
    return (release.withdrawn + TOMBSTONE_DAYS).timestamp()


_facts_of: dict[str, Facts] = {}
_lock = threading.Lock()


def facts(index: Index) -> Facts:
    """Return the index's facts, computed once per dataset version (two kept: a swap's)."""
    with _lock:
        found = _facts_of.get(index.version)
    if found is None:
        found = _facts(index)
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

    def status(self, release_id: str) -> tuple[str, Release | None]:
        """Say what `/releases/{id}` answers: ("ok", release), ("gone", release) or
        ("missing", None) for an unknown, draft or not yet published release."""
        position = self.index.by_id.get(release_id)
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
            start = index.by_id[page.releases[-1].id] + 1

    def visible(self) -> Sequence[Release]:
        """Return every release readers can see now, newest first (a pass over the archive:
        for what is built once per version and moment, such as the sitemap)."""
        return self.select(Filters(), max(self.count(), 1)).releases

    def count(self, name: str | None = None) -> int:
        """Return how many releases are visible, in all or in one posting list
        ("countries/TH", "topics/slug")."""
        if name is None:
            total, gone = len(self.index.releases) - self.first, self.facts.hidden_all
        else:
            kind, key = name.split("/", 1)
            postings = (self.index.by_country if kind == "countries" else self.index.by_topic)
            found = postings.get(key, array("I"))
            total, gone = len(found) - bisect_left(found, self.first), \
                self.facts.hidden_by.get(name, array("I"))
        return total - (len(gone) - bisect_left(gone, self.first))

    def newest(self, name: str | None = None) -> Release | None:
        """Return the visible release changed last, in all or in one posting list."""
        if name is None:
            newest, at = self.facts.newest_all, self.first
        else:
            kind, key = name.split("/", 1)
            postings = (self.index.by_country if kind == "countries" else self.index.by_topic)
            newest = self.facts.newest_by.get(name, array("q"))
            at = bisect_left(postings.get(key, array("I")), self.first)
        position = newest_position(newest[at]) if at < len(newest) else -1
        return None if position < 0 else self.index.releases[position]

    def tombstones(self, filters: Filters) -> list[Release]:
        """Return the withdrawn releases whose notice still runs, of a feed's selection."""
        live = self.facts.tombstones[self.expired:]
        published = [r for r in live if self.index.by_id[r.id] >= self.first]
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
