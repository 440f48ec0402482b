"""Which actors exist: `all`, each country with releases (its lowercase code), each topic (its
slug); one namespace, so check-data refuses a topic slug that is a country code or `all`."""
from __future__ import annotations

from ..dataset.records import Release
from ..dataset.visible import StoreView
from ..feeds.catalogue import catalogue
from ..feeds.feed import country_name
from ..feeds.urls import Scope, Urls
from .objects import SITE_HANDLE, Profile


def handles_of(release: Release) -> list[str]:
    """Return the country and topic actors that announce a release (their feeds include it)."""
    return [code.lower() for code in release.countries] + list(release.topics)


def scope_of(view: StoreView, handle: str) -> Scope | None:
    """Return the feed an actor posts (None: no such actor now).

    A country is an actor while readers see a release of it (its feed is in the catalogue).
    """
    if handle == SITE_HANDLE:
        return Scope()
    if handle in view.index.topics:
        return Scope("topics", handle)
    scope = Scope("countries", handle)
    if any(listing.scope == scope for listing in catalogue(view).countries):
        return scope
    return None


def every_handle(view: StoreView) -> int:
    """Return how many actors there are now (NodeInfo's count of users)."""
    return 1 + len(view.index.topics) + len(catalogue(view).countries)


def profile(view: StoreView, urls: Urls, scope: Scope) -> Profile:
    """Return what the actor of a feed says about itself."""
    site = view.index.site
    if scope.kind == "topics" and scope.key is not None:
        topic = view.index.topics[scope.key]
        name, summary = topic.label, f"{topic.description} ({site.title})"
    elif scope.kind == "countries" and scope.key is not None:
        name = country_name(scope.key)
        summary = f"Releases about {name}: {site.title}."
    else:
        name, summary = site.title, site.subtitle
    if site.logo is not None:
        icon, icon_type = urls.media(site.logo.src, site.logo.digest), site.logo.type
    else:
        icon, icon_type = urls.ap_icon(), "image/png"
    return Profile(name=name, summary=summary, page=urls.page(scope),
                   rss=urls.feed(scope, "rss"), atom=urls.feed(scope, "atom"),
                   icon=icon, icon_type=icon_type)
