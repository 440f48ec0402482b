"""HTML pages: the latest releases (all, per country, per topic) and one page per release."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, abort, render_template
from markupsafe import Markup
from werkzeug.wrappers import Response as BaseResponse

from ..clock import current_view
from ..dataset import Release
from ..dataset.visible import StoreView
from ..feeds.catalogue import catalogue
from ..feeds.feed import country_name, feed_title
from ..feeds.query import FeedQuery
from ..feeds.seo import news_article, script_json
from ..feeds.urls import Scope, Urls
from ..http.conditional import Rendered
from . import activitypub
from .common import cacheable, check_country, feed_query, key, lowercase, topic_scope, urls

bp = Blueprint("pages", __name__)
HTML = "text/html; charset=utf-8"
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")


@bp.app_template_filter("longdate")
def longdate(value: datetime) -> str:
    """Format a date as published (17 January 2005), whatever the server's locale."""
    return f"{value.day} {MONTHS[value.month - 1]} {value.year}"


@bp.app_template_filter("lang")
def lang(release: Release, site_language: str) -> Markup:
    """Return the lang attribute of a release's own words where its language is not the page's
    (the site's): a screen reader reads a Thai title as Thai."""
    if release.language == site_language:
        return Markup("")
    return Markup(' lang="{}"').format(release.language)


@bp.app_template_filter("filesize")
def filesize(length: int) -> str:
    """Format a file's size for people: 843 bytes, 12 KB, 3.4 MB."""
    if length < 1000:
        return f"{length} bytes"
    if length < 1_000_000:
        return f"{length / 1000:.0f} KB"
    return f"{length / 1_000_000:.1f} MB"


def _feeds(links: Urls, scope: Scope, title: str, query: str = "") -> dict[str, str]:
    return {"title": title, **{fmt: links.feed(scope, fmt, query) for fmt in ("rss", "atom", "json")}}


@bp.app_context_processor
def _helpers() -> dict[str, Any]:
    return {"home_scope": Scope(), "topic_scope": lambda s: Scope("topics", s),
            "country_scope": lambda c: Scope("countries", c), "country_name": country_name}


def _html(body: str, view: StoreView) -> Rendered:
    # A page lists more than its releases (e.g. every country with releases): it is as new as
    # the newest change readers can see.
    return Rendered.build(body.encode(), HTML, catalogue(view).everything.updated)


def _listing(scope: Scope) -> BaseResponse:
    if activitypub.negotiated():
        return activitypub.feed_actor(scope)
    view, links = current_view(), urls()
    index = view.index
    query: FeedQuery = feed_query(index)

    def render() -> Rendered:
        title = feed_title(index, scope, query)
        here = _feeds(links, scope, title, query.link_query())
        everything = _feeds(links, Scope(), index.site.title)
        return _html(render_template(
            "listing.html", index=index, scope=scope, urls=links, title=title, feed_links=here,
            page=view.select(query.filters(scope), query.limit, query.before),
            autodiscovery=[here] if scope.kind == "all" and not query.link_query()
            else [here, everything],
            countries_with_releases=_countries_with_releases(view),
            activity=activitypub.actor_link(scope)), view)

    return cacheable(key(f"page/{scope.path}", "html", query.canonical()), render,
                     activitypub.page_vary())


def _countries_with_releases(view: StoreView) -> list[str]:
    return [listing.scope.key or "" for listing in catalogue(view).countries]


@bp.get("/")
def home() -> BaseResponse:
    return _listing(Scope())


@bp.get("/countries/<code>")
def country(code: str) -> BaseResponse:
    check_country(code, "/countries/th")
    return lowercase(code, Urls.page) or _listing(Scope("countries", code))


@bp.get("/topics/<slug>")
def topic(slug: str) -> BaseResponse:
    return _listing(topic_scope(slug))


@bp.get("/releases/<release_id>")
def release(release_id: str) -> Response:
    view, links = current_view(), urls()
    index = view.index
    status, found = view.status(release_id)
    if found is None:
        abort(404, description=f"No release has the id {release_id[:100]!r}.")
    if activitypub.negotiated():
        return activitypub.release_object(release_id, status, found)
    if status == "gone":
        return withdrawn(view, links, found)
    shown = found

    def render() -> Rendered:
        topics = index.topics
        autodiscovery = [_feeds(links, Scope(), index.site.title)]
        autodiscovery += [_feeds(links, Scope("topics", t), topics[t].label) for t in shown.topics]
        autodiscovery += [_feeds(links, Scope("countries", c.lower()), country_name(c))
                          for c in shown.countries]
        jsonld = Markup(script_json(news_article(shown, index.site, links)))
        return _html(render_template("release.html", index=index, release=shown, urls=links,
                                     autodiscovery=autodiscovery, jsonld=jsonld,
                                     activity=activitypub.object_link(shown)), view)

    return cacheable(key(f"releases/{release_id}", "html"), render, activitypub.page_vary())


def withdrawn(view: StoreView, links: Urls, release: Release) -> Response:
    """Answer 410 Gone for a withdrawn release, with its note (not cached: rare, and small)."""
    body = render_template("withdrawn.html", release=release, index=view.index, urls=links,
                           autodiscovery=[])
    response = Response(body, status=410, content_type=HTML)
    response.headers["Cache-Control"] = "public, max-age=60"
    response.headers["Vary"] = activitypub.page_vary()
    return response
