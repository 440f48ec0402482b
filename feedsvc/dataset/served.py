"""The values the served dataset is read and asked by: a version's Meta, and a page's Cursor,
Filters and Page.

The store is read through reader.Snapshot and visible.StoreView (their only implementation: no
Protocol stands between them and the views). A page starts after a Cursor, not at a position;
the sitemap cuts the visible releases into runs and reads one run at a time, never all of them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from . import Release
from .records import Site, Topic


@dataclass(frozen=True)
class Meta:
    """What one version of the store says besides its releases."""

    version: str
    site: Site
    topics: Mapping[str, Topic]
    source: str


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
