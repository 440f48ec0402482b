"""An immutable, indexed view of one dataset version: selecting a page costs the page, not the archive."""
from __future__ import annotations

import re
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from itertools import islice

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

    def select(self, filters: Filters, limit: int, start: int = 0) -> Page:
        """Return up to `limit` matching releases from position `start`, newest first."""
        end = len(self.releases)
        if filters.since is not None:
            midnight = datetime.combine(filters.since, time(), self.dataset.site.zone)
            end = bisect_right(self.sort_keys, -midnight.timestamp())
        groups = self._groups(filters)
        positions = _intersect(groups, start, end) if groups else iter(range(start, end))
        chosen = [self.releases[p] for p in islice(positions, limit + 1)]
        return Page(chosen[:limit], len(chosen) > limit)

    def _groups(self, filters: Filters) -> list[list[array[int]]]:
        """Return the posting lists to intersect: one group per filter, any list of a group."""
        groups = []
        if filters.countries:
            groups.append([self.by_country.get(c, _EMPTY) for c in sorted(filters.countries)])
        if filters.topics:
            groups.append([self.by_topic.get(t, _EMPTY) for t in sorted(filters.topics)])
        groups.extend([self.by_word.get(w, _EMPTY)] for w in sorted(filters.words))
        # The rarest first: it moves furthest on each step.
        return sorted(groups, key=lambda group: sum(len(p) for p in group))


_EMPTY: array[int] = array("I")


def _intersect(groups: list[list[array[int]]], start: int, end: int) -> Iterator[int]:
    """Yield, ascending, the positions in [start, end) found in every group (a leapfrog join).

    Each step seeks every posting list forward by bisection from where it last stopped, so
    the work grows with the matches and the lists' interleaving, never with the archive.
    """
    cursors = [[0] * len(group) for group in groups]
    position = start
    while position < end:
        highest = position
        for group, cursor in zip(groups, cursors):
            highest = max(highest, _seek(group, cursor, position, end))
        if highest == position:
            yield position
            position += 1
        else:
            position = highest


def _seek(group: list[array[int]], cursor: list[int], position: int, end: int) -> int:
    """Return the first position >= `position` in any list of the group, or `end`."""
    found = end
    for i, posting in enumerate(group):
        j = cursor[i] = bisect_left(posting, position, cursor[i])
        if j < len(posting) and posting[j] < found:
            found = posting[j]
    return found


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
