"""The catalogue of feeds a dataset offers: all releases, each topic, each country with releases."""
from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ..dataset.visible import StoreView
from .feed import NEVER, country_name
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


def _listing(view: StoreView, scope: Scope, title: str, name: str | None) -> Listing:
    newest = view.newest(name)
    return Listing(scope, title, view.count(name), NEVER if newest is None else newest.modified)


def build_catalogue(view: StoreView) -> Catalogue:
    """List every feed readers see now, with its number of releases and last update: a
    count per feed from the store (visible.py), never a pass over the releases."""
    dataset = view.index
    countries = (_listing(view, Scope("countries", code.lower()), country_name(code),
                          f"countries/{code}") for code in view.countries())
    return Catalogue(
        everything=_listing(view, Scope(), dataset.site.title, None),
        topics=[_listing(view, Scope("topics", t.slug), t.label, f"topics/{t.slug}")
                for t in dataset.topics.values()],
        countries=sorted((listing for listing in countries if listing.releases),
                         key=lambda listing: (listing.title, listing.scope.path)),
    )


_cached: dict[str, Catalogue] = {}
_lock = threading.Lock()


def catalogue(view: StoreView) -> Catalogue:
    """Return the catalogue of what readers see now, built once per dataset version and
    visibility token."""
    key = f"{view.index.version}:{view.token}"
    with _lock:
        found = _cached.get(key)
    if found is None:
        found = build_catalogue(view)
        with _lock:
            _cached.clear()  # one moment is live at a time; keep only its catalogue
            _cached[key] = found
    return found
