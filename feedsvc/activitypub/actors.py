"""What the actors' URLs answer besides their document: outbox pages, followers, WebFinger's
JRD and NodeInfo. Pure functions of the view and URLs (the views add HTTP)."""
from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from ..dataset.served import Cursor
from ..dataset.visible import StoreView
from ..feeds.query import DEFAULT_LIMIT, FeedQuery, cursor_text
from ..feeds.urls import Scope, Urls
from . import objects
from .objects import CONTEXT, SITE_HANDLE, Json

AS_TYPE = "application/activity+json"
NODEINFO_SCHEMA = "http://nodeinfo.diaspora.software/ns/schema/2.1"
FIRST = "newest"  # the outbox's first page: ?page=newest, then ?page=<cursor>


def list_name(scope: Scope) -> str | None:
    """Return the store's name of a feed's list ("countries/TH", "topics/slug"; all: None)."""
    if scope.kind == "countries" and scope.key is not None:
        return f"countries/{scope.key.upper()}"
    return None if scope.kind == "all" else scope.path


def outbox(view: StoreView, urls: Urls, handle: str, scope: Scope) -> Json:
    """Return an actor's outbox: how many activities it holds, and its first page."""
    ident = f"{urls.actor(handle)}/outbox"
    return {"@context": CONTEXT, "id": ident, "type": "OrderedCollection",
            "totalItems": view.count(list_name(scope)), "first": f"{ident}?page={FIRST}"}


def outbox_page(view: StoreView, urls: Urls, handle: str, scope: Scope, before: Cursor | None) -> Json:
    """Return one page of an outbox, newest first: the site's Create, or a feed's Announce,
    of each release readers see now (the feed's own selection: no drafts, nothing scheduled
    before its time, nothing withdrawn), found from the store's index after `before`."""
    ident = f"{urls.actor(handle)}/outbox"
    page = view.select(FeedQuery().filters(scope), DEFAULT_LIMIT, before)
    items = []
    for release in page.releases:
        article = objects.article(release, urls)
        items.append(objects.create(article) if handle == SITE_HANDLE
                     else objects.announce(handle, article))
    for item in items:
        del item["@context"]
    here = FIRST if before is None else cursor_text(before)
    found: Json = {"@context": CONTEXT, "id": f"{ident}?page={quote(here)}",
                   "type": "OrderedCollectionPage", "partOf": ident, "orderedItems": items}
    if page.more and page.releases:
        found["next"] = f"{ident}?page={quote(cursor_text(Cursor.of(page.releases[-1])))}"
    return found


def followers(urls: Urls, handle: str, count: int) -> Json:
    """Return an actor's followers collection: how many, never who."""
    return {"@context": CONTEXT, "id": objects.followers(urls, handle),
            "type": "OrderedCollection", "totalItems": count}


def host(urls: Urls) -> str:
    """Return the host of `acct:` handles: the base URL's (with its port, if any)."""
    return urlsplit(urls.base).netloc


def jrd(urls: Urls, handle: str, page: str) -> Json:
    """Return WebFinger's answer about an actor (RFC 7033)."""
    ident = urls.actor(handle)
    return {"subject": f"acct:{handle}@{host(urls)}", "aliases": [ident, page],
            "links": [{"rel": "self", "type": AS_TYPE, "href": ident},
                      {"rel": "http://webfinger.net/rel/profile-page", "type": "text/html",
                       "href": page}]}


def nodeinfo_links(urls: Urls) -> Json:
    return {"links": [{"rel": NODEINFO_SCHEMA, "href": urls.at("nodeinfo/2.1")}]}


def nodeinfo(view: StoreView, version: str, actors: int) -> Json:
    """Return NodeInfo 2.1: the software, its protocol, and what it serves."""
    site = view.index.site
    metadata: dict[str, Any] = {"nodeName": site.title, "nodeDescription": site.subtitle}
    return {"version": "2.1",
            "software": {"name": "feedsvc", "version": version},
            "protocols": ["activitypub"],
            "services": {"inbound": [], "outbound": ["atom1.0", "rss2.0"]},
            "openRegistrations": False,
            "usage": {"users": {"total": actors}, "localPosts": view.count()},
            "metadata": metadata}
