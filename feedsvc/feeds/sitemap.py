"""The sitemap of the release and listing pages, in files of at most 50,000 URLs.

Up to that many URLs, /sitemap.xml is the sitemap; above it, /sitemap.xml is a sitemap index
naming /sitemaps/1.xml, /sitemaps/2.xml, … Listing pages come first, then releases newest
first, so a part's contents move only when releases are added or removed.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

from ..dataset.served import Listed, View
from .catalogue import catalogue
from .feed import NEVER
from .urls import Urls

NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
CONTENT_TYPE = "application/xml; charset=utf-8"
ROBOTS_CONTENT_TYPE = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Loc:
    """One URL of a sitemap and when its page last changed."""

    url: str
    lastmod: datetime




@dataclass(frozen=True)
class Sitemap:
    """Every page of the site: the listings with releases, then each release, newest first.

    URLs are built, and releases read, only for the slice a sitemap file holds, not for the
    whole archive.
    """

    pages: Sequence[Loc]
    view: View
    urls: Urls

    @classmethod
    def of(cls, view: View, urls: Urls) -> Sitemap:
        """List what readers can see at the view's moment (no draft, scheduled or withdrawn)."""
        listed = catalogue(view)
        pages = [Loc(urls.page(listing.scope), listing.updated) for listing in listed.listings
                 if listing.releases and listing.updated != NEVER]
        return cls(pages, view, urls)

    def __len__(self) -> int:
        return len(self.pages) + self.view.count()

    def _releases(self, start: int, stop: int) -> Sequence[Listed]:
        first = len(self.pages)
        return self.view.visible_slice(max(start - first, 0), max(stop - first, 0))

    def locs(self, start: int, stop: int) -> list[Loc]:
        """Return the URLs from position `start` to `stop` (excluded)."""
        chosen = list(self.pages[start:stop])
        chosen += [Loc(self.urls.release(r.id), r.modified) for r in self._releases(start, stop)]
        return chosen

    def lastmod(self, start: int, stop: int) -> datetime:
        """Return when the newest page from `start` to `stop` changed."""
        dates = [loc.lastmod for loc in self.pages[start:stop]]
        dates += [r.modified for r in self._releases(start, stop)]
        return max(dates, default=NEVER)


def part_count(total: int, per_file: int) -> int:
    """Return how many sitemap files `total` URLs need (0: the sitemap holds them itself)."""
    return 0 if total <= per_file else -(-total // per_file)


def _w3c(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _xml(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True))


def _listed(root: str, item: str, locs: Sequence[Loc]) -> bytes:
    """Write a sitemap document: one `item` element (loc, lastmod) per entry under `root`."""
    document = etree.Element(f"{{{NS}}}{root}", nsmap={None: NS})
    for loc in locs:
        node = etree.SubElement(document, f"{{{NS}}}{item}")
        etree.SubElement(node, f"{{{NS}}}loc").text = loc.url
        etree.SubElement(node, f"{{{NS}}}lastmod").text = _w3c(loc.lastmod)
    return _xml(document)


def render_urlset(locs: Sequence[Loc]) -> bytes:
    """Write a sitemap of these URLs."""
    return _listed("urlset", "url", locs)


def render_index(parts: Sequence[Loc]) -> bytes:
    """Write a sitemap index naming each part and when its newest page changed."""
    return _listed("sitemapindex", "sitemap", parts)


def robots(urls: Urls) -> bytes:
    """Write robots.txt: everything may be crawled; the sitemap is named."""
    return f"User-agent: *\nAllow: /\n\nSitemap: {urls.sitemap()}\n".encode()
