"""What every view needs from the request: the public URLs and the parsed feed query."""
from __future__ import annotations

from flask import current_app, request

from ..feedcache import FeedCache
from ..index import Index
from ..query import DEFAULT_QUERY, FeedQuery, parse_query
from ..urls import Urls


def urls() -> Urls:
    """Return the URL builder for the configured base URL, else for the request's host."""
    base: str | None = current_app.config["FEEDSVC_BASE_URL"]
    return Urls(base or request.host_url)


def feed_query(index: Index) -> FeedQuery:
    """Parse the request's query string; a bad value raises QueryError (a 400)."""
    if not request.query_string:  # most feed requests: no parameters to parse
        return DEFAULT_QUERY
    return parse_query(request.args.to_dict(flat=False), index.dataset.topics)


def feed_cache() -> FeedCache:
    cache: FeedCache = current_app.extensions["feedsvc.cache"]
    return cache


def cache_control() -> str:
    """Return the Cache-Control of cacheable responses (made once, from the configuration)."""
    return feed_cache().cache_control
