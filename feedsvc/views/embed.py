"""/embed/...: a country's or topic's latest releases as a framable page; /embed.js."""
from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from functools import cache
from importlib.resources import files

from flask import Blueprint, Response, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from ..clock import current_view
from ..feeds.feed import NEVER, feed_title
from ..feeds.query import parse_choice
from ..feeds.urls import Scope, Urls
from ..http.conditional import Rendered
from .common import cacheable, check_country, feed_query, key, lowercase, topic_scope, urls

bp = Blueprint("embed", __name__)
THEMES = ("light", "dark")
EMBED_LIMIT = 5


@cache
def _asset(name: str) -> str:
    return files("feedsvc").joinpath(f"static/{name}").read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@cache
def content_security_policy() -> str:
    """Allow only the page's own inline style and script, and framing by any site."""
    return ("default-src 'none'; "
            f"style-src {_sha256(_asset('embed.css'))}; "
            f"script-src {_sha256(_asset('embed-frame.js'))}; "
            "base-uri 'none'; form-action 'none'; frame-ancestors *")


@bp.after_request
def _csp(response: Response) -> Response:
    # Stricter than headers.EMBED: only this page's own hashed style and script may run.
    # (CORS and the other headers come from headers.py, like every route's.)
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = content_security_policy()
    return response


def _embed(scope: Scope) -> Response:
    view, links = current_view(), urls()
    index = view.index
    query = feed_query(index)
    if "limit" not in request.args:
        query = replace(query, limit=EMBED_LIMIT)
    theme = parse_choice(request.args.to_dict(flat=False), "theme", THEMES)

    def render() -> Rendered:
        page = view.select(query.filters(scope), query.limit, query.before)
        body = render_template(
            "embed.html", index=index, urls=links, theme=theme, releases=page.releases,
            title=feed_title(index, scope, query), css=_asset("embed.css"),
            script=_asset("embed-frame.js"),
            page_url=links.page(scope, query.link_query(limit=False, before=False)),
            feed_url=links.feed(scope, "rss"))
        updated = max((r.modified for r in page.releases), default=NEVER)
        return Rendered.build(body.encode(), "text/html; charset=utf-8", updated)

    return cacheable(key(f"embed/{scope.path}", f"html-{theme}", query.canonical()), render)


@bp.get("/embed/countries/<code>")
def country(code: str) -> BaseResponse:
    check_country(code, "/embed/countries/th")
    return lowercase(code, Urls.embed) or _embed(Scope("countries", code))


@bp.get("/embed/topics/<slug>")
def topic(slug: str) -> Response:
    return _embed(topic_scope(slug))


@cache
def _script() -> Rendered:
    return Rendered.build(_asset("embed.js").encode(), "text/javascript; charset=utf-8", NEVER)


@bp.get("/embed.js")
def script() -> Response:
    return cacheable(None, _script)
