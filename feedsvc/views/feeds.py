"""/feeds/...: every feed, in RSS, Atom and JSON Feed, cached and conditional."""
from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from ..conditional import (
    Rendered,
    is_conditional,
    not_modified,
    prepare,
    respond_not_modified,
    send,
)
from ..feed import build_feed
from ..feedcache import cache_key
from ..records import country_code
from ..render import CONTENT_TYPES, RENDERERS
from ..replay import MARK
from ..state import current_index
from ..urls import Scope
from .common import feed_cache, feed_query, render_settings, urls

bp = Blueprint("feeds", __name__, url_prefix="/feeds")
FMT = "<any(rss, atom, json):fmt>"


def serve_feed(scope: Scope, fmt: str) -> Response:
    """Answer from the cache (or a 304 from cached validators alone), rendering on a miss."""
    index, links = current_index(), urls()
    query = feed_query(index)
    key = cache_key(index.version, render_settings(), scope.path, fmt, query.canonical())
    cache = feed_cache()
    if is_conditional(request):
        validators = cache.validators(key)
        if validators is not None and not_modified(request, validators):
            return respond_not_modified(request, validators, cache.cache_control)

    def render() -> Rendered:
        page = index.select(query.filters(scope), query.limit, index.start_after(query.before))
        doc = build_feed(index, scope, query, fmt, links, page,
                         current_app.config["FEEDSVC_WEBSUB_HUB"])
        return prepare(RENDERERS[fmt](doc), CONTENT_TYPES[fmt], doc.updated)

    prepared = cache.prepared(key, render)
    # The bytes depend only on the version and the request: replay.py may send them again.
    request.environ[MARK] = (request.url_rule.rule if request.url_rule else "", prepared.validators)
    return send(request, prepared)


@bp.get(f"/all.{FMT}")
def all_releases(fmt: str) -> Response:
    return serve_feed(Scope(), fmt)


@bp.get(f"/countries/<code>.{FMT}")
def country(code: str, fmt: str) -> BaseResponse:
    if country_code(code) is None:
        abort(404, description=f"No such country {code[:20]!r}: use an ISO 3166-1 alpha-2 code "
                               "in lowercase, e.g. /feeds/countries/th.rss.")
    if code != code.lower():
        query = request.query_string.decode("latin-1")
        return redirect(urls().feed(Scope("countries", code.lower()), fmt, query), code=301)
    return serve_feed(Scope("countries", code), fmt)


@bp.get(f"/topics/<slug>.{FMT}")
def topic(slug: str, fmt: str) -> Response:
    topics = current_index().dataset.topics
    if slug not in topics:
        abort(404, description=f"No such topic {slug[:40]!r}; topics: {', '.join(sorted(topics))}.")
    return serve_feed(Scope("topics", slug), fmt)
