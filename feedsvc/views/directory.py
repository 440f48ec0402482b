"""/feeds/: the directory of every feed, the same list as OPML, and the feeds' XSLT stylesheet."""
from __future__ import annotations

from functools import cache
from importlib.resources import files
from unicodedata import normalize

from flask import Blueprint, Response, render_template, request
from markupsafe import Markup

from ..clock import current_view
from ..dataset.records import COUNTRIES
from ..feeds.catalogue import Listing, catalogue
from ..feeds.feed import NEVER, country_name
from ..feeds.query import FORMATS, parse_country
from ..feeds.render import OPML_CONTENT_TYPE, XSLT_CONTENT_TYPE, Outline, render_opml
from ..feeds.urls import Urls
from ..http.conditional import Rendered
from .common import cacheable, key, urls

bp = Blueprint("directory", __name__)
HTML = "text/html; charset=utf-8"
FORMAT_NAMES = {"rss": "RSS feed", "atom": "Atom feed", "json": "JSON Feed"}


@cache
def country_choices() -> list[tuple[str, str]]:
    """Return every ISO 3166-1 country as (lowercase code, name), by name."""
    names = [(c.lower(), country_name(c)) for c in COUNTRIES]
    # Sort Åland with the A's: by the name without its accents.
    return sorted(names, key=lambda p: (normalize("NFKD", p[1]).encode("ascii", "ignore"), p[0]))


# What partners paste into their pages: every value goes into an attribute through Markup's
# escaping (a label holding `"` or `<` must stay text on the partner's page, not become markup).
SCRIPT = Markup('<script src="{src}" async></script>')
FRAME = Markup('<iframe src="{src}" title="Latest releases: {title}" width="100%" height="320" '
               'style="border:0" loading="lazy"></iframe>\n'
               '<!-- optional: resizes the frame to its content -->\n')
WIDGET = {kind: Markup(f'<div data-feedsvc-{kind}="{{key}}" data-limit="{{limit}}"></div>\n')
          for kind in ("country", "topic")}


def snippets(links: Urls, listing: Listing, limit: int = 5) -> dict[str, str]:
    """Return the HTML a partner pastes to show a country's or topic's latest releases."""
    kind = "country" if listing.scope.kind == "countries" else "topic"
    script = SCRIPT.format(src=links.embed_script())
    frame = FRAME.format(src=links.embed(listing.scope, f"limit={limit}"), title=listing.title)
    widget = WIDGET[kind].format(key=listing.scope.key, limit=limit)
    return {"iframe": str(frame + script), "script": str(widget + script)}


@bp.get("/feeds/")
def directory() -> Response:
    view, links = current_view(), urls()
    index, listed = view.index, catalogue(view)
    chosen = parse_country(request.args.to_dict(flat=False))

    def render() -> Rendered:
        main = {"title": index.site.title, **{f: links.feed(listed.everything.scope, f)
                                                      for f in FORMATS}}
        body = render_template(
            "directory.html", index=index, urls=links, catalogue=listed, formats=FORMAT_NAMES,
            chosen=listed.country(chosen) if chosen else None, choices=country_choices(),
            snippets=lambda listing: snippets(links, listing), never=NEVER, autodiscovery=[main])
        return Rendered.build(body.encode(), HTML, listed.everything.updated)

    return cacheable(key("directory", "html", chosen or ""), render)


@bp.get("/feeds.opml")
def opml() -> Response:
    view, links = current_view(), urls()
    index = view.index

    def outline(listing: Listing) -> Outline:
        return Outline(listing.title, links.feed(listing.scope, "rss"), links.page(listing.scope))

    def render() -> Rendered:
        listed = catalogue(view)
        body = render_opml(f"{index.site.title}: all feeds", index.site.publisher,
                           listed.everything.updated, [
                               outline(listed.everything),
                               Outline("Topics", children=tuple(map(outline, listed.topics))),
                               Outline("Countries", children=tuple(map(outline, listed.countries)))])
        return Rendered.build(body, OPML_CONTENT_TYPE, listed.everything.updated)

    return cacheable(key("feeds", "opml"), render)


@cache
def _stylesheet() -> Rendered:
    xsl = files("feedsvc").joinpath("static/feed.xsl").read_bytes()
    return Rendered.build(xsl, XSLT_CONTENT_TYPE, NEVER)


@bp.get("/feeds/feed.xsl")
def stylesheet() -> Response:
    return cacheable(None, _stylesheet)
