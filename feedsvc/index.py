"""An immutable, indexed view of one dataset version: selecting a page costs the page, not the archive."""
from __future__ import annotations

import re
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from itertools import chain, islice

from .dataset import Dataset, Release

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Split text into the case-folded words that `q` matches."""
    return _WORD.findall(text.casefold())


def _postings(pairs: Iterable[tuple[str, int]]) -> dict[str, array[int]]:
    index: dict[str, array[int]] = {}
    for key, position in pairs:
        index.setdefault(key, array("I")).append(position)
    return index


@dataclass(frozen=True)
class Page:
    """The releases selected for one feed page, newest first, and whether older ones exist."""

    releases: Sequence[Release]
    more: bool


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the release there, by its sort keys (published, then id)."""

    published: datetime
    id: str

    @classmethod
    def of(cls, release: Release) -> Cursor:
        return cls(release.published, release.id)


@dataclass(frozen=True)
class Filters:
    """What a feed selects: any of the countries, and any of the topics, and every word."""

    countries: frozenset[str] = frozenset()
    topics: frozenset[str] = frozenset()
    words: frozenset[str] = frozenset()
    since: date | None = None


@dataclass(frozen=True)
class Index:
    """A dataset with its releases newest first and posting lists of their positions."""

    dataset: Dataset
    by_id: Mapping[str, int] = field(repr=False)
    by_country: Mapping[str, array[int]] = field(repr=False)
    by_topic: Mapping[str, array[int]] = field(repr=False)
    by_word: Mapping[str, array[int]] = field(repr=False)
    # -timestamp of each position: ascending, so bisect finds date boundaries.
    sort_keys: array[float] = field(repr=False)

    @property
    def releases(self) -> tuple[Release, ...]:
        return self.dataset.releases

    @property
    def version(self) -> str:
        return self.dataset.version

    def release(self, release_id: str) -> Release | None:
        """Return the release with this id, or None."""
        position = self.by_id.get(release_id)
        return None if position is None else self.releases[position]

    def start_after(self, cursor: Cursor | None) -> int:
        """Return the position of the first release older than the cursor (0 for None).

        The cursor need not name an existing release: deleting or adding releases
        never moves a page boundary, so a reader sees each release once.
        """
        if cursor is None:
            return 0
        key = -cursor.published.timestamp()
        lo = bisect_left(self.sort_keys, key)
        hi = bisect_right(self.sort_keys, key, lo)
        # Ties on the date are sorted by id, descending: skip ids >= the cursor's.
        return bisect_left(self.releases, True, lo, hi, key=lambda r: r.id < cursor.id)

    def select(self, filters: Filters, limit: int, start: int = 0) -> Page:
        """Return up to `limit` matching releases from position `start`, newest first."""
        end = len(self.releases)
        if filters.since is not None:
            midnight = datetime.combine(filters.since, time(), self.dataset.site.zone)
            end = bisect_right(self.sort_keys, -midnight.timestamp())
        groups = [[self.by_word.get(w, _EMPTY)] for w in sorted(filters.words)]
        if filters.countries:
            groups.append([self.by_country.get(c, _EMPTY) for c in sorted(filters.countries)])
        if filters.topics:
            groups.append([self.by_topic.get(t, _EMPTY) for t in sorted(filters.topics)])
        positions = _matching(groups, start, end, limit + 1) if groups else range(start, end)
        chosen = [self.releases[p] for p in islice(positions, limit + 1)]
        return Page(chosen[:limit], len(chosen) > limit)


_EMPTY: array[int] = array("I")
# The first window of positions searched; each next one is twice as wide.
_FIRST_WINDOW = 256


def _matching(groups: list[list[array[int]]], start: int, end: int, want: int) -> Iterator[int]:
    """Yield the positions in [start, end) that are in every group, ascending.

    A group matches a position that is in any of its posting lists (the countries asked for,
    say); the groups are ANDed. The positions are searched in windows that double in width;
    in each, the groups' slices are intersected smallest first, as sets (in C), stopping at
    the first empty intersection. A dense query costs about its page; a query matching
    nothing costs one pass over its rarest lists, never a Python loop per candidate.
    """
    low, width = start, max(_FIRST_WINDOW, want)
    while low < end:
        high = min(end, low + width)
        slices = sorted((_window(group, low, high) for group in groups), key=_total)
        found = set(chain.from_iterable(slices[0]))
        for group in slices[1:]:
            if not found:
                break
            found = found.intersection(chain.from_iterable(group))
        yield from sorted(found)
        low, width = high, width * 2


def _window(group: list[array[int]], low: int, high: int) -> list[array[int]]:
    """Return the part of each posting list in the group that lies in [low, high)."""
    return [p[bisect_left(p, low):bisect_left(p, high)] for p in group]


def _total(group: list[array[int]]) -> int:
    return sum(len(p) for p in group)


def build_index(dataset: Dataset) -> Index:
    """Index a dataset whose releases are already sorted newest first."""
    releases = dataset.releases
    return Index(
        dataset=dataset,
        by_id={r.id: i for i, r in enumerate(releases)},
        by_country=_postings((c, i) for i, r in enumerate(releases) for c in r.countries),
        by_topic=_postings((t, i) for i, r in enumerate(releases) for t in r.topics),
        by_word=_postings(
            (w, i) for i, r in enumerate(releases) for w in dict.fromkeys(words(f"{r.title} {r.summary}"))
        ),
        sort_keys=array("d", (-r.published.timestamp() for r in releases)),
    )


# Above this many releases removed plus added, indexing afresh is as cheap as updating.
UPDATE_LIMIT = 2000


def update_index(old: Index, dataset: Dataset, removed: Sequence[Release],
                 added: Sequence[Release]) -> Index:
    """Index `dataset`: `old`'s releases less `removed`, plus `added`; no text is read again.

    Kept releases keep their order, so each posting list is mapped to the new positions as
    it is (C speed: no words are split again); only the lists of changed releases are edited.
    """
    if len(removed) + len(added) > UPDATE_LIMIT:
        return build_index(dataset)
    releases = dataset.releases
    by_id = {r.id: i for i, r in enumerate(releases)}
    # Where each old position now stands; the places of removed releases are dropped first.
    moved = array("I", (by_id.get(r.id, 0) for r in old.releases))
    postings = []
    for mapping, keys in ((old.by_country, _countries), (old.by_topic, _topics),
                          (old.by_word, _words)):
        trimmed, copied = dict(mapping), set()
        for release in removed:
            position = old.by_id[release.id]
            for key in keys(release):
                if key not in copied:  # never edit the served index's arrays
                    copied.add(key)
                    trimmed[key] = array("I", trimmed[key])
                del trimmed[key][bisect_left(trimmed[key], position)]
        new = {key: array("I", map(moved.__getitem__, posting))
               for key, posting in trimmed.items() if posting}
        for release in added:
            for key in keys(release):
                posting = new.setdefault(key, array("I"))
                posting.insert(bisect_left(posting, by_id[release.id]), by_id[release.id])
        postings.append(new)
    sort_keys = array("d", old.sort_keys)
    for position in sorted((old.by_id[r.id] for r in removed), reverse=True):
        del sort_keys[position]
    for release in sorted(added, key=lambda r: by_id[r.id]):
        sort_keys.insert(by_id[release.id], -release.published.timestamp())
    return Index(dataset=dataset, by_id=by_id, by_country=postings[0], by_topic=postings[1],
                 by_word=postings[2], sort_keys=sort_keys)


def _countries(release: Release) -> Iterable[str]:
    return release.countries


def _topics(release: Release) -> Iterable[str]:
    return release.topics


def _words(release: Release) -> Iterable[str]:
    return dict.fromkeys(words(f"{release.title} {release.summary}"))
