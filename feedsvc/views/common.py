"""What every view needs from the request: the public URLs and the parsed feed query."""
from __future__ import annotations

from flask import abort, current_app, request

from ..feedcache import FeedCache
from ..index import Index
from ..query import DEFAULT_QUERY, FeedQuery, parse_query
from ..records import country_code
from ..state import current_index
from ..urls import Scope, Urls


def urls() -> Urls:
    """Return the URL builder for the configured base URL, else for the request's host."""
    base: str | None = current_app.config["FEEDSVC_BASE_URL"]
    if base is None and not request.host:  # werkzeug empties a Host that is not a host name
        abort(400, description="The Host header is missing or is not a valid host name.")
    return Urls(base or request.host_url)


def feed_query(index: Index) -> FeedQuery:
    """Parse the request's query string; a bad value raises QueryError (a 400)."""
    if not request.query_string:  # most feed requests: no parameters to parse
        return DEFAULT_QUERY
    return parse_query(request.args.to_dict(flat=False), index.dataset.topics)


def page_scope(kind: str, key: str) -> Scope:
    """Return the scope of a page about a lowercase country code or a topic, or abort with 404."""
    if kind == "countries" and (country_code(key) is None or key != key.lower()):
        abort(404, description=f"No such country {key[:20]!r}: use a lowercase ISO 3166-1 code.")
    if kind == "topics" and key not in current_index().dataset.topics:
        abort(404, description=f"No such topic {key[:40]!r}.")
    return Scope(kind, key)


def feed_cache() -> FeedCache:
    cache: FeedCache = current_app.extensions["feedsvc.cache"]
    return cache


def cache_control() -> str:
    """Return the Cache-Control of cacheable responses (made once, from the configuration)."""
    return feed_cache().cache_control


def render_settings() -> str:
    """Return what, besides data and query, shapes a rendered body: base URL (or host) and hub."""
    return f"{urls().base} {current_app.config['FEEDSVC_WEBSUB_HUB'] or ''}"
