"""/sitemap.xml (with /sitemaps/<n>.xml above 50,000 URLs) and /robots.txt, cached per dataset."""
from __future__ import annotations

from flask import Blueprint, Response, abort, current_app

from ..clock import current_view
from ..feeds.catalogue import catalogue
from ..feeds.sitemap import CONTENT_TYPE, ROBOTS_CONTENT_TYPE, Sitemap, part_count, robots
from ..http.conditional import Rendered
from .common import cacheable, key, urls

bp = Blueprint("seo", __name__)


def _per_file() -> int:
    per: int = current_app.config["FEEDSVC_SITEMAP_URLS"]
    return per


@bp.get("/sitemap.xml")
def sitemap() -> Response:
    view, links, per = current_view(), urls(), _per_file()

    def render() -> Rendered:
        site = Sitemap.of(view, links)
        total = len(site)
        body, lastmod = site.urlset(0, total) if total <= per else site.index(per)
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
        site = Sitemap.of(view, links)
        if part > part_count(len(site), per):
            abort(404, description=f"No sitemap part {part}.")
        body, lastmod = site.urlset((part - 1) * per, part * per)
        return Rendered.build(body, CONTENT_TYPE, lastmod)

    return cacheable(key(f"sitemaps/{part}", "xml", str(per)), render)


@bp.get("/robots.txt")
def robots_txt() -> Response:
    links = urls()
    return cacheable(key("robots", "txt"), lambda: Rendered.build(
        robots(links), ROBOTS_CONTENT_TYPE, catalogue(current_view()).everything.updated))
