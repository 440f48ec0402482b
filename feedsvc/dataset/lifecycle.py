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

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, time

from . import Release
from .facts import NONE, Facts, changed, facts, hidden
from .index import Cursor, Filters, Index, Page
from .media import local_files
from .stored import Passing
from .words import words


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

    def select(self, filters: Filters, limit: int, before: Cursor | None = None) -> Page:
        """Return up to `limit` visible releases matching `filters`, older than `before`."""
        index = self.index
        start = max(index.start_after(before), self.first)
        if not self.facts.hidden_all:
            return index.select(filters, limit, start)
        chosen: list[Release] = []
        while True:
            page = index.select(filters, limit + 1 - len(chosen), start)
            chosen += [r for r in page.releases if not hidden(r)]
            if len(chosen) > limit or not page.more or not page.releases:
                return Page(chosen[:limit], len(chosen) > limit)
            start = index.position(index.by_id[page.releases[-1].id]) + 1

    def countries(self) -> Collection[str]:
        """Return the codes of the countries some release of this version names."""
        return self.index.by_country.keys()

    def media_files(self) -> frozenset[str]:
        """Return the src of every file below media/ the site or a visible release names (a
        pass over the archive: the caller keeps it per version and moment)."""
        return frozenset(local_files(self.index.dataset.site, self.visible_slice(0, self.count())))

    def visible_slice(self, start: int, stop: int) -> Sequence[Release]:
        """Return the visible releases ranked `start` to `stop` (excluded), newest first, each
        made only while it is used (stored.Passing): a slice costs its length and the hidden
        releases (few), not the archive."""
        index, end = self.index, len(self.index.releases)
        hidden = sorted({p for p in map(index.position, self.facts.hidden_all) if p >= self.first})

        def position(rank: int) -> int:  # of the visible release ranked `rank`
            found = self.first + rank
            for at in hidden:  # ascending: each hidden one at or before it pushes it on
                if at <= found:
                    found += 1
            return min(found, end)

        low, high = position(max(start, 0)), position(max(stop, start, 0))
        skipped = set(hidden)
        return Passing(index.releases, [p for p in range(low, high) if p not in skipped]
                       if skipped else range(low, high))

    def _lists(self, name: str | None) -> tuple[array[int], array[int]]:
        """Return the labels of a posting list (every release for None), and its hidden ones."""
        if name is None:
            return self.index.labels, self.facts.hidden_all
        kind, key = name.split("/", 1)
        postings = (self.index.by_country if kind == "countries" else self.index.by_topic)
        return postings.get(key, NONE), self.facts.hidden_by.get(name, NONE)

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
                best = (changed(self.index.releases[self.index.position(label)]), -label)
                break
        keys, negated = self.facts.updated_by.get(name or "", (NONE, NONE))
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
