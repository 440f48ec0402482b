"""What every view needs from the request: the public URLs, the parsed feed query, and how a
cacheable body becomes a response (decided by conditional.py, kept in the feed cache)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import Request, Response, abort, current_app, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from ..activitypub.settings import federation
from ..clock import current_view
from ..dataset.records import country_code
from ..dataset.served import Meta
from ..feeds.countries import unknown_country
from ..feeds.query import DEFAULT_QUERY, FeedQuery, parse_query
from ..feeds.urls import Scope, Urls
from ..http.conditional import VARY, Answer, Conditions, Rendered, cache_control, respond
from ..http.errors import HostRefused
from ..http.feedcache import cache_key
from ..state import ParsedQueries, current_snapshot, feed_cache, parsed_queries

NO_HOST = "The Host header is missing or is not a valid host name."


def urls_for(config: Mapping[str, Any], req: Request) -> Urls | None:
    """Return the URL builder for the configured base URL, else for the request's host
    (None when the Host header is missing or is not a host name: werkzeug empties it)."""
    base: str | None = config["FEEDSVC_BASE_URL"]
    if base is None and not req.host:
        return None
    return Urls(base or req.host_url)


def urls() -> Urls:
    """Return the URL builder of this request, or abort with 400 when it has no usable host."""
    found = urls_for(current_app.config, request)
    if found is None:
        raise HostRefused(description=NO_HOST)
    return found


def query_of(req: Request, index: Meta, parsed: ParsedQueries) -> FeedQuery:
    """Parse a request's query string, or take it from those `parsed` before (state.py says
    why); a bad value raises QueryError (a 400)."""
    raw = req.query_string
    if not raw:  # most feed requests: no parameters to parse
        return DEFAULT_QUERY
    key = (index.version, raw)
    found = parsed.get(key)
    if found is None:
        found = parsed.put(key, parse_query(req.args.to_dict(flat=False), index.topics))
    return found


def feed_query(index: Meta) -> FeedQuery:
    return query_of(request, index, parsed_queries())


def check_country(code: str, example: str) -> None:
    """Abort with 404 when `code` is no country code in any case, naming the likely ones."""
    if country_code(code) is None:
        abort(404, description=unknown_country(code, example))


def lowercase(code: str, url_of: Callable[[Urls, Scope, str], str]) -> BaseResponse | None:
    """Return a 301 to the lowercase form of a country's URL (`url_of` builds it, the query
    kept), or None when `code` is lowercase already: one URL per page, and per cache entry."""
    if code == code.lower():
        return None
    query = request.query_string.decode("latin-1")
    return redirect(url_of(urls(), Scope("countries", code.lower()), query), code=301)


def topic_scope(slug: str) -> Scope:
    """Return the scope of a page about a topic, or abort with 404."""
    if slug not in current_view().index.topics:
        abort(404, description=f"No such topic {slug[:40]!r}.")
    return Scope("topics", slug)


def settings_of(config: Mapping[str, Any], links: Urls) -> str:
    """Return what, besides data and query, shapes a rendered body: base URL (or host), hub,
    and whether pages link to the fediverse (the same on an owner and on `elsewhere`
    instances, which share cache entries)."""
    linked = "objects" if federation(config).objects else "plain"
    return f"{links.base} {config['FEEDSVC_WEBSUB_HUB'] or ''} {linked}"


def key(path: str, fmt: str, canonical_query: str = "") -> str:
    """Return this request's cache key of a body: `path` and `fmt` name what is rendered."""
    view = current_view()
    return cache_key(view.index.version, view.token, settings_of(current_app.config, urls()),
                     path, fmt, canonical_query)


def to_response(answer: Answer) -> Response:
    return Response(answer.body, status=answer.status, headers=answer.headers)


def cacheable(cache_as: str | None, render: Callable[[], Rendered], vary: str = VARY) -> Response:
    """Answer with a body that depends only on the dataset and the request: from the feed
    cache under the key `cache_as` (None: not cached, e.g. a static asset), 304 when fresh."""
    cache = feed_cache()
    control = cache_control(current_app.config, current_view().seconds_to_change())
    conditions = Conditions.of(request.environ)
    if cache_as is None:  # not the dataset's: the code's own (its dates are its own)
        return to_response(respond(conditions, control, render, vary=vary))
    return to_response(respond(conditions, control,
                               lambda: cache.fetch(cache_as, render),
                               lambda: cache.validators(cache_as), vary,
                               current_snapshot().changed_at))
