"""What the app reads of the served dataset at one moment, and the values a page is asked by.

Consumers (views, feeds, the fast path, WebSub, health) are typed against these Protocols,
which the reader over the SQLite store (reader.py) serves. A page starts after a Cursor, not
at a position; the sitemap cuts the visible releases into runs and reads one run at a time,
never all of them.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from . import Release
from .records import Site, Topic


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
class Run:
    """A run of visible releases, newest first (a sitemap part's): up to `size` of those with a
    key at or below `upper`."""

    upper: int
    size: int


class Described(Protocol):
    """What a dataset says besides its releases (Dataset offers it; a store keeps it as meta)."""

    @property
    def site(self) -> Site: ...
    @property
    def topics(self) -> Mapping[str, Topic]: ...
    @property
    def source(self) -> str: ...


class Handle(Protocol):
    """One served version: `view.index` (the attribute names of the former in-memory index,
    kept for the templates and feed builders that read `index.dataset.site` and `index.version`)."""

    @property
    def version(self) -> str: ...
    @property
    def dataset(self) -> Described: ...


class View(Protocol):
    """A served version as readers see it at `now` (visible.StoreView says what each means)."""

    @property
    def index(self) -> Handle: ...
    @property
    def now(self) -> datetime: ...
    @property
    def token(self) -> str: ...
    @property
    def next_publication(self) -> datetime | None: ...
    @property
    def next_change(self) -> datetime | None: ...
    def seconds_to_change(self) -> float | None: ...
    def status(self, release_id: str) -> tuple[str, Release | None]: ...

    def select(self, filters: Filters, limit: int, before: Cursor | None = None) -> Page:
        """Return up to `limit` visible releases matching `filters`, older than `before`."""

    def countries(self) -> Collection[str]:
        """Return the codes of the countries some release of this version names (visible
        now or not: WebSub compares the feeds of two versions country by country)."""

    def count(self, name: str | None = None) -> int: ...
    def newest(self, name: str | None = None) -> Release | None: ...
    def tombstones(self, filters: Filters) -> list[Release]: ...

    def runs(self, sizes: Sequence[int]) -> list[Run]:
        """Cut the visible releases, newest first, into runs of these sizes one after the
        other; `count()` of them exist."""

    def lastmod(self, run: Run) -> int | None:
        """Return the last change (UTC second) of a run's releases (None: no release)."""

    def listed(self, run: Run) -> Sequence[tuple[str, int]]:
        """Return the id and last change (UTC second) of a run's releases, newest first."""

    def media_files(self) -> Collection[str]:
        """Return the src of every file below media/ that the site or a visible release
        names: only these are served (a draft's picture must not be found by its name)."""
