"""An immutable, indexed view of one dataset version: selecting a page costs the page, not the
archive, and updating it by one release costs that release, not the archive."""
from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from itertools import chain, islice

from . import Dataset, Release
from .words import words


def _postings(keyed: Iterable[tuple[Iterable[str], int]]) -> dict[str, array[int]]:
    """Return each key's labels, ascending, from (keys, label) pairs in label order."""
    index: dict[str, array[int]] = {}
    get = index.get
    for keys, label in keyed:  # millions of (key, label) pairs: no call or array per pair
        for key in keys:
            posting = get(key)
            if posting is None:
                posting = index[key] = array(LABEL)
            posting.append(label)
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


# A release's label sorts as its position does and keeps its value while others come and go,
# so posting lists of labels never move: a change edits the lists of the changed releases only.
# Labels stay within a C int, which keeps posting lists as small as positions and their
# values one-digit Python ints (fast to hash into the sets `_matching` intersects).
LABEL = "i"
LOWEST, HIGHEST = -(1 << 30), (1 << 30) - 1


def spacing(count: int) -> int:
    """Return how far apart a new index puts `count` labels: all of them fit below HIGHEST
    (the room below 0 is for newer releases). Odd, so that labels differ in their low bits."""
    gap = max(1, (HIGHEST - 1) // (count + 1))
    return gap if gap % 2 else max(1, gap - 1)


@dataclass(frozen=True)
class Delta:
    """What an index was updated by: from version `base`, releases and their labels."""

    base: str
    removed: tuple[tuple[Release, int], ...]
    added: tuple[tuple[Release, int], ...]


@dataclass(frozen=True)
class Index:
    """A dataset with its releases newest first, their labels, and posting lists of labels."""

    dataset: Dataset
    by_id: Mapping[str, int] = field(repr=False)  # id -> label
    by_country: Mapping[str, array[int]] = field(repr=False)
    by_topic: Mapping[str, array[int]] = field(repr=False)
    by_word: Mapping[str, array[int]] = field(repr=False)
    # -timestamp of each position: ascending, so bisect finds date boundaries.
    sort_keys: array[float] = field(repr=False)
    labels: array[int] = field(repr=False)  # the label of each position, ascending
    delta: Delta | None = field(default=None, repr=False)

    @property
    def releases(self) -> Sequence[Release]:
        return self.dataset.releases

    @property
    def version(self) -> str:
        return self.dataset.version

    def position(self, label: int) -> int:
        """Return the position of the release with this label (or where it would go)."""
        return bisect_left(self.labels, label)

    def label_at(self, position: int) -> int:
        """Return the label at a position; past the end, one above every label."""
        return self.labels[position] if position < len(self.labels) else HIGHEST

    def position_of(self, release_id: str) -> int | None:
        """Return the position of the release with this id, or None."""
        label = self.by_id.get(release_id)
        return None if label is None else self.position(label)

    def release(self, release_id: str) -> Release | None:
        """Return the release with this id, or None."""
        position = self.position_of(release_id)
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
        groups = [[self.by_word.get(w, EMPTY)] for w in sorted(filters.words)]
        if filters.countries:
            groups.append([self.by_country.get(c, EMPTY) for c in sorted(filters.countries)])
        if filters.topics:
            groups.append([self.by_topic.get(t, EMPTY) for t in sorted(filters.topics)])
        positions = _matching(groups, self.labels, start, end, limit + 1) if groups \
            else range(start, end)
        chosen = [self.releases[p] for p in islice(positions, limit + 1)]
        return Page(chosen[:limit], len(chosen) > limit)


EMPTY: array[int] = array(LABEL)
# The first window of positions searched; each next one is twice as wide.
_FIRST_WINDOW = 256


def _matching(groups: list[list[array[int]]], labels: array[int], start: int, end: int,
              want: int) -> Iterator[int]:
    """Yield the positions in [start, end) whose labels are in every group, ascending.

    A group matches a label that is in any of its posting lists (the countries asked for,
    say); the groups are ANDed. The positions are searched in windows that double in width;
    in each, the groups' slices are intersected smallest first, as sets (in C), stopping at
    the first empty intersection. A dense query costs about its page; a query matching
    nothing costs one pass over its rarest lists, never a Python loop per candidate.
    """
    low, width = start, max(_FIRST_WINDOW, want)
    while low < end:
        high = min(end, low + width)
        top = labels[high] if high < len(labels) else HIGHEST
        slices = sorted((_window(group, labels[low], top) for group in groups), key=_total)
        found = set(chain.from_iterable(slices[0]))
        for group in slices[1:]:
            if not found:
                break
            found = found.intersection(chain.from_iterable(group))
        yield from (bisect_left(labels, label, low, high) for label in sorted(found))
        low, width = high, width * 2


def _window(group: list[array[int]], low: int, high: int) -> list[array[int]]:
    """Return the part of each posting list in the group that lies in [low, high)."""
    return [p[bisect_left(p, low):bisect_left(p, high)] for p in group]


def _total(group: list[array[int]]) -> int:
    return sum(len(p) for p in group)


def build_index(dataset: Dataset) -> Index:
    """Index a dataset whose releases are already sorted newest first."""
    releases = dataset.releases
    gap = spacing(len(releases))
    labels = array(LABEL, range(0, len(releases) * gap, gap))
    return Index(
        dataset=dataset,
        by_id=dict(zip((r.id for r in releases), labels, strict=True)),
        by_country=_postings(zip(map(_countries, releases), labels, strict=True)),
        by_topic=_postings(zip(map(_topics, releases), labels, strict=True)),
        by_word=_postings(zip(map(_words, releases), labels, strict=True)),
        sort_keys=array("d", (-r.published.timestamp() for r in releases)),
        labels=labels,
    )


def _countries(release: Release) -> Iterable[str]:
    return release.countries


def _topics(release: Release) -> Iterable[str]:
    return release.topics


def _words(release: Release) -> Iterable[str]:
    return dict.fromkeys(words(f"{release.title} {release.summary}"))


# What each posting-list mapping is keyed by, in the order Index holds them.
KEYS = (_countries, _topics, _words)
