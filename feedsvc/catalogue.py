"""The catalogue of feeds a dataset offers: all releases, each topic, each country with releases."""
from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from .feed import NEVER, country_name
from .index import Index
from .urls import Scope


@dataclass(frozen=True)
class Listing:
    """One feed as the directory and the OPML list name it."""

    scope: Scope
    title: str
    releases: int
    updated: datetime  # when its newest change happened; NEVER for an empty feed


@dataclass(frozen=True)
class Catalogue:
    everything: Listing
    topics: Sequence[Listing]
    countries: Sequence[Listing]  # only countries with releases, by name

    @property
    def listings(self) -> tuple[Listing, ...]:
        return (self.everything, *self.topics, *self.countries)

    def country(self, code: str) -> Listing:
        """Return the listing of any country, with or without releases."""
        scope = Scope("countries", code.lower())
        found = [listing for listing in self.countries if listing.scope == scope]
        return found[0] if found else Listing(scope, country_name(code), 0, NEVER)


def _updated(index: Index) -> tuple[datetime, dict[str, datetime], dict[str, datetime]]:
    """Return the last change of all releases, of each country's and each topic's, in one pass."""
    latest, countries, topics = NEVER, dict[str, datetime](), dict[str, datetime]()
    for release in index.releases:
        modified = release.modified
        latest = max(latest, modified)
        for code in release.countries:
            if modified > countries.get(code, NEVER):
                countries[code] = modified
        for slug in release.topics:
            if modified > topics.get(slug, NEVER):
                topics[slug] = modified
    return latest, countries, topics


def build_catalogue(index: Index) -> Catalogue:
    """List every feed of the index with its number of releases and last update."""
    latest, countries, topics = _updated(index)
    dataset = index.dataset
    return Catalogue(
        everything=Listing(Scope(), dataset.site.title, len(index.releases), latest),
        topics=[Listing(Scope("topics", t.slug), t.label, len(index.by_topic.get(t.slug, ())),
                        topics.get(t.slug, NEVER)) for t in dataset.topics.values()],
        countries=sorted((Listing(Scope("countries", code.lower()), country_name(code),
                                  len(positions), countries[code])
                          for code, positions in index.by_country.items()),
                         key=lambda listing: (listing.title, listing.scope.path)),
    )


_cached: dict[str, Catalogue] = {}
_lock = threading.Lock()


def catalogue(index: Index) -> Catalogue:
    """Return the index's catalogue, built once per dataset version (it reads every release)."""
    with _lock:
        found = _cached.get(index.version)
    if found is None:
        found = build_catalogue(index)
        with _lock:
            _cached.clear()  # one version is live at a time; keep only its catalogue
            _cached[index.version] = found
    return found
