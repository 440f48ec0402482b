"""The sitemap of the release and listing pages, in files of at most 50,000 URLs.

Up to that many URLs, /sitemap.xml is the sitemap; above it, /sitemap.xml is a sitemap index
naming /sitemaps/1.xml, /sitemaps/2.xml, … Listing pages come first, then releases newest
first, so a part's contents move only when releases are added or removed.

A part is written as text, a line per element (as lxml's pretty print writes it): tens of
thousands of rows become no objects but their lines. The index asks the store for each part's
last change (StoreView.lastmods), never for its rows.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from ..dataset.visible import StoreView
from .catalogue import catalogue
from .feed import NEVER
from .urls import Urls

NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
CONTENT_TYPE = "application/xml; charset=utf-8"
ROBOTS_CONTENT_TYPE = "text/plain; charset=utf-8"
W3C = "%Y-%m-%dT%H:%M:%SZ"


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
    view: StoreView
    urls: Urls

    @classmethod
    def of(cls, view: StoreView, urls: Urls) -> Sitemap:
        """List what readers can see at the view's moment (no draft, scheduled or withdrawn)."""
        listed = catalogue(view)
        pages = [Loc(urls.page(listing.scope), listing.updated) for listing in listed.listings
                 if listing.releases and listing.updated != NEVER]
        return cls(pages, view, urls)

    def __len__(self) -> int:
        return len(self.pages) + self.view.count()

    def _ranks(self, start: int, stop: int) -> tuple[int, int]:
        """Return the release ranks of URL positions `start` to `stop` (the pages come first)."""
        first = len(self.pages)
        return max(start - first, 0), max(stop - first, 0)

    def urlset(self, start: int, stop: int) -> tuple[bytes, datetime]:
        """Write the sitemap of the URLs from position `start` to `stop` (excluded); return it
        and when its newest page changed."""
        pages, rows = self.pages[start:stop], self.view.visible_slice(*self._ranks(start, stop))
        release, plain = self.urls.release, escape(self.urls.release("")) == self.urls.release("")
        lines = [_item("url", escape(loc.url), _w3c(loc.lastmod)) for loc in pages]
        stamps: dict[int, str] = {}  # each second written once: releases share their times
        # Each id is quoted into the URL: only the base may need escaping, once for all.
        lines += [_item("url", release(rid) if plain else escape(release(rid)),
                        stamps.get(second) or stamps.setdefault(
                            second, time.strftime(W3C, time.gmtime(second))))
                  for rid, second in rows]
        newest = max((second for _, second in rows), default=None)
        return _document("urlset", lines), max(
            [loc.lastmod for loc in pages] + ([_utc(newest)] if newest is not None else []),
            default=NEVER)

    def index(self, per_file: int) -> tuple[bytes, datetime]:
        """Write the sitemap index of the parts of `per_file` URLs; return it and when the
        newest page changed."""
        ranks = [self._ranks(n * per_file, (n + 1) * per_file)
                 for n in range(part_count(len(self), per_file))]
        seconds = self.view.lastmods([stop - start for start, stop in ranks])
        lastmods = [max([loc.lastmod for loc in self.pages[n * per_file:(n + 1) * per_file]]
                        + ([_utc(second)] if second is not None else []), default=NEVER)
                    for n, second in enumerate(seconds)]
        lines = [_item("sitemap", escape(self.urls.sitemap(n)), _w3c(lastmod))
                 for n, lastmod in enumerate(lastmods, start=1)]
        return _document("sitemapindex", lines), max(lastmods, default=NEVER)


def part_count(total: int, per_file: int) -> int:
    """Return how many sitemap files `total` URLs need (0: the sitemap holds them itself)."""
    return 0 if total <= per_file else -(-total // per_file)


def _utc(second: int) -> datetime:
    return datetime.fromtimestamp(second, UTC)


def _w3c(when: datetime) -> str:
    return when.astimezone(UTC).strftime(W3C)


def _item(name: str, loc: str, lastmod: str) -> str:
    return (f"  <{name}>\n    <loc>{loc}</loc>\n    <lastmod>{lastmod}</lastmod>\n"
            f"  </{name}>\n")


def _document(root: str, items: Iterable[str]) -> bytes:
    """Write a sitemap document (escaped items), byte for byte as lxml would."""
    body = "".join(items)
    text = (f'<{root} xmlns="{NS}">\n{body}</{root}>\n' if body else
            f'<{root} xmlns="{NS}"/>\n')
    return f"<?xml version='1.0' encoding='UTF-8'?>\n{text}".encode()


def robots(urls: Urls) -> bytes:
    """Write robots.txt: everything may be crawled; the sitemap is named."""
    return f"User-agent: *\nAllow: /\n\nSitemap: {urls.sitemap()}\n".encode()
