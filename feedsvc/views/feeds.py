"""/feeds/...: every feed, in RSS, Atom and JSON Feed, cached and conditional."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Blueprint, Flask, Request, Response, abort, current_app, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from ..clock import current_view
from ..dataset import Release
from ..dataset.served import Meta
from ..feeds.feed import build_feed
from ..feeds.query import FeedQuery
from ..feeds.render import CONTENT_TYPES, RENDERERS
from ..feeds.urls import Scope, Urls
from ..http.conditional import FEED_VARY, Rendered
from ..http.errors import HostRefused
from ..http.feedcache import cache_key
from ..state import parsed_queries
from .common import NO_HOST, cacheable, check_country, lowercase, query_of, settings_of, urls_for

bp = Blueprint("feeds", __name__, url_prefix="/feeds")
HTML = "text/html; charset=utf-8"
FORMAT_NAMES = {"rss": "RSS", "atom": "Atom", "json": "JSON Feed"}
FMT = "<any(rss, atom, json):fmt>"
# Endpoint -> the scope its URL arguments name (the fast path reads the same table).
SCOPES: dict[str, Callable[[Mapping[str, str]], Scope]] = {
    "feeds.all_releases": lambda args: Scope(),
    "feeds.country": lambda args: Scope("countries", args["code"]),
    "feeds.topic": lambda args: Scope("topics", args["slug"]),
}


class Keyed(Protocol):
    """What a feed's cache key needs of the store: a View, or the fast path's Moment."""

    @property
    def index(self) -> Meta: ...
    @property
    def token(self) -> str: ...


@dataclass(frozen=True, slots=True)
class FeedRequest:
    """A feed request resolved: what to render, and the cache key of its bytes."""

    scope: Scope
    fmt: str
    query: FeedQuery
    links: Urls
    key: str
    page: bool  # a person opened the feed in a browser tab: a page about it, not the feed


def opened_in_a_tab(req: Request) -> bool:
    """Tell whether a browser navigates to the URL (what it sends, never who it says it is):
    feed readers, scripts and XSLT-running browsers' subresource fetches send no such header."""
    return req.headers.get("Sec-Fetch-Dest") == "document"


def feed_request(app: Flask, req: Request, view: Keyed, scope: Scope, fmt: str
                 ) -> FeedRequest | None:
    """Resolve a feed request (None: no usable host; QueryError: a bad query parameter)."""
    config = app.config
    links = urls_for(config, req)
    if links is None:
        return None
    query = query_of(req, view.index, parsed_queries(app))
    page = opened_in_a_tab(req)
    # The page has its own key (and nginx's, and Vary): the feed's bytes and entry are untouched.
    return FeedRequest(scope, fmt, query, links, cache_key(
        view.index.version, view.token, settings_of(config, links), scope.path,
        f"{fmt}-page" if page else fmt, query.canonical()), page)


def serve_feed(scope: Scope, fmt: str) -> Response:
    """Answer from the cache (or a 304 from cached validators alone), rendering on a miss."""
    view, config = current_view(), current_app.config
    found = feed_request(current_app, request, view, scope, fmt)
    if found is None:
        raise HostRefused(description=NO_HOST)
    feed = found

    def render() -> Rendered:
        index, query = view.index, feed.query
        filters = query.filters(scope)
        page = view.select(filters, query.limit, query.before)
        # Withdrawal notices belong to the feed, not to a page of its archive.
        gone = view.tombstones(filters) if query.before is None else []
        doc = build_feed(index, scope, query, fmt, feed.links, page, config["FEEDSVC_WEBSUB_HUB"],
                         gone)
        if feed.page:
            return Rendered.build(preview(doc, feed, page.releases), HTML, doc.updated)
        return Rendered.build(RENDERERS[fmt](doc), CONTENT_TYPES[fmt], doc.updated)

    return cacheable(feed.key, render, FEED_VARY)


def preview(doc: Any, feed: FeedRequest, releases: Sequence[Release]) -> bytes:
    """Return the page a person sees on opening a feed: what it is, its URL to copy into a
    reader, and its latest releases."""
    address = feed.links.feed(feed.scope, feed.fmt, feed.query.link_query())
    return render_template("feed-preview.html", index=current_view().index, urls=feed.links,
                           autodiscovery=[], doc=doc, address=address, fmt=FORMAT_NAMES[feed.fmt],
                           releases=releases, page_url=feed.links.page(
                               feed.scope, feed.query.link_query())).encode()


@bp.get(f"/all.{FMT}")
def all_releases(fmt: str) -> Response:
    return serve_feed(Scope(), fmt)


@bp.get(f"/countries/<code>.{FMT}")
def country(code: str, fmt: str) -> BaseResponse:
    check_country(code, f"/feeds/countries/th.{fmt}")
    return (lowercase(code, lambda links, scope, query: links.feed(scope, fmt, query))
            or serve_feed(Scope("countries", code), fmt))


@bp.get(f"/topics/<slug>.{FMT}")
def topic(slug: str, fmt: str) -> Response:
    topics = current_view().index.topics
    if slug not in topics:
        abort(404, description=f"No such topic {slug[:40]!r}; topics: {', '.join(sorted(topics))}.")
    return serve_feed(Scope("topics", slug), fmt)
