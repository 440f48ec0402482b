"""HTML pages: the latest releases (all, per country, per topic) and one page per release."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, abort, render_template

from ..catalogue import catalogue
from ..conditional import Rendered
from ..feed import country_name, feed_title
from ..index import Index
from ..query import FeedQuery
from ..state import current_index
from ..urls import Scope, Urls
from .common import cacheable, feed_query, key, page_scope, urls

bp = Blueprint("pages", __name__)
HTML = "text/html; charset=utf-8"
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")


@bp.app_template_filter("longdate")
def longdate(value: datetime) -> str:
    """Format a date as published (17 January 2005), whatever the server's locale."""
    return f"{value.day} {MONTHS[value.month - 1]} {value.year}"


def _feeds(links: Urls, scope: Scope, title: str, query: str = "") -> dict[str, str]:
    return {"title": title, **{fmt: links.feed(scope, fmt, query) for fmt in ("rss", "atom", "json")}}


@bp.app_context_processor
def _helpers() -> dict[str, Any]:
    return {"home_scope": Scope(), "topic_scope": lambda s: Scope("topics", s),
            "country_scope": lambda c: Scope("countries", c), "country_name": country_name}


def _html(body: str, index: Index) -> Rendered:
    # A page lists more than its releases (e.g. every country with releases): it is as new as
    # the newest change in the dataset.
    return Rendered.build(body.encode(), HTML, catalogue(index).everything.updated)


def _listing(scope: Scope) -> Response:
    index, links = current_index(), urls()
    query: FeedQuery = feed_query(index)

    def render() -> Rendered:
        title = feed_title(index, scope, query)
        here = _feeds(links, scope, title, query.link_query())
        everything = _feeds(links, Scope(), index.dataset.site.title)
        return _html(render_template(
            "listing.html", index=index, scope=scope, urls=links, title=title, feed_links=here,
            page=index.select(query.filters(scope), query.limit, index.start_after(query.before)),
            autodiscovery=[here] if scope.kind == "all" and not query.link_query()
            else [here, everything],
            countries_with_releases=_countries_with_releases(index)), index)

    return cacheable(key(f"page/{scope.path}", "html", query.canonical()), render)


def _countries_with_releases(index: Index) -> list[str]:
    return sorted((c.lower() for c in index.by_country), key=country_name)


@bp.get("/")
def home() -> Response:
    return _listing(Scope())


@bp.get("/countries/<code>")
def country(code: str) -> Response:
    return _listing(page_scope("countries", code))


@bp.get("/topics/<slug>")
def topic(slug: str) -> Response:
    return _listing(page_scope("topics", slug))


@bp.get("/releases/<release_id>")
def release(release_id: str) -> Response:
    index, links = current_index(), urls()
    found = index.release(release_id)
    if found is None:
        abort(404, description=f"No release has the id {release_id[:100]!r}.")
    shown = found

    def render() -> Rendered:
        topics = index.dataset.topics
        autodiscovery = [_feeds(links, Scope(), index.dataset.site.title)]
        autodiscovery += [_feeds(links, Scope("topics", t), topics[t].label) for t in shown.topics]
        autodiscovery += [_feeds(links, Scope("countries", c.lower()), country_name(c))
                          for c in shown.countries]
        return _html(render_template("release.html", index=index, release=shown, urls=links,
                                     autodiscovery=autodiscovery), index)

    return cacheable(key(f"releases/{release_id}", "html"), render)
