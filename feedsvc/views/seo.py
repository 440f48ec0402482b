"""/sitemap.xml (with /sitemaps/<n>.xml above FEEDSVC_SITEMAP_URLS URLs) and /robots.txt,
cached per dataset."""
from __future__ import annotations

from collections.abc import Sequence

from flask import Blueprint, Response, abort, current_app

from ..clock import current_view
from ..dataset.served import Run
from ..dataset.visible import StoreView
from ..feeds.catalogue import catalogue
from ..feeds.sitemap import CONTENT_TYPE, ROBOTS_CONTENT_TYPE, Sitemap, part_count, robots
from ..http.conditional import Rendered
from .common import cacheable, key, urls

bp = Blueprint("seo", __name__)
# Where the sitemap's parts start (StoreView.runs), by dataset version, moment and part size: found
# once (a walk over the listed releases' index, as the sitemap index takes), so that the index
# and every part cut at the same keys and a part reads only its own run.
_cut: tuple[tuple[str, str, int], Sequence[Run]] = (("", "", 0), ())


def _per_file() -> int:
    per: int = current_app.config["FEEDSVC_SITEMAP_URLS"]
    return per


def runs_of(view: StoreView, site: Sitemap) -> Sequence[Run]:
    """Return the runs of releases the sitemap's files hold, newest first (one a file)."""
    global _cut
    moment, found = _cut
    if moment != (view.index.version, view.token, site.per_file):
        found = view.runs(site.sizes())
        _cut = ((view.index.version, view.token, site.per_file), found)  # one assignment
    return found


@bp.get("/sitemap.xml")
def sitemap() -> Response:
    view, links, per = current_view(), urls(), _per_file()

    def render() -> Rendered:
        site = Sitemap.of(view, links, per)
        runs = runs_of(view, site)
        body, lastmod = site.index(runs) if site.parts else site.urlset(0, runs)
        return Rendered.build(body, CONTENT_TYPE, lastmod)

    return cacheable(key("sitemap", "xml", str(per)), render)


@bp.get("/sitemaps/<int:part>.xml")
def sitemap_part(part: int) -> Response:
    view, links, per = current_view(), urls(), _per_file()
    # At most this many URLs: a part number past it is refused before any work is done.
    most = view.count() + len(catalogue(view).listings)
    if not 1 <= part <= part_count(most, per):
        abort(404, description=f"No sitemap part {part}.")

    def render() -> Rendered:
        site = Sitemap.of(view, links, per)
        if part > site.parts:
            abort(404, description=f"No sitemap part {part}.")
        body, lastmod = site.urlset(part - 1, runs_of(view, site))
        return Rendered.build(body, CONTENT_TYPE, lastmod)

    return cacheable(key(f"sitemaps/{part}", "xml", str(per)), render)


@bp.get("/robots.txt")
def robots_txt() -> Response:
    links = urls()
    return cacheable(key("robots", "txt"), lambda: Rendered.build(
        robots(links), ROBOTS_CONTENT_TYPE, catalogue(current_view()).everything.updated))
