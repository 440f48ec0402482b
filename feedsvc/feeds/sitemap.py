"""The sitemap of the release and listing pages, in files of FEEDSVC_SITEMAP_URLS URLs.

Up to that many URLs, /sitemap.xml is the sitemap; above it, /sitemap.xml is a sitemap index
naming /sitemaps/1.xml, /sitemaps/2.xml, … Listing pages come first, then releases newest
first, so a part's contents move only when releases are added or removed.

The store cuts the visible releases into the parts' runs once (StoreView.runs: the key each
starts at); the index asks for each run's last change (StoreView.lastmod) and reads no release
row, and a part reads its own run's rows as an index range from its first key, whatever its
number. A part is written as text, a line per element
(as lxml's pretty print writes it): its rows become no objects but their lines.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from ..dataset.served import Run
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
    """Every page of the site: the listings with releases, then each release, newest first,
    in files of `per_file` URLs (one file when all fit).

    URLs are built, and releases read, only for the run of releases a file holds, not for the
    whole archive.
    """

    pages: Sequence[Loc]
    view: StoreView
    urls: Urls
    per_file: int

    @classmethod
    def of(cls, view: StoreView, urls: Urls, per_file: int) -> Sitemap:
        """List what readers can see at the view's moment (no draft, scheduled or withdrawn)."""
        listed = catalogue(view)
        pages = [Loc(urls.page(listing.scope), listing.updated) for listing in listed.listings
                 if listing.releases and listing.updated != NEVER]
        return cls(pages, view, urls, per_file)

    def __len__(self) -> int:
        return len(self.pages) + self.view.count()

    @property
    def parts(self) -> int:
        """Return how many files the sitemap index names (0: /sitemap.xml holds every URL)."""
        return part_count(len(self), self.per_file)

    def sizes(self) -> list[int]:
        """Return how many releases each file holds, the pages coming first: the runs to ask
        the view for (StoreView.runs), the index and every part cut at the same keys."""
        if not self.parts:
            return [self.view.count()]
        per, first = self.per_file, len(self.pages)
        return [max((n + 1) * per - first, 0) - max(n * per - first, 0)
                for n in range(self.parts)]

    def _pages(self, part: int) -> Sequence[Loc]:
        return self.pages[part * self.per_file:(part + 1) * self.per_file] if self.parts \
            else self.pages

    def urlset(self, part: int, runs: Sequence[Run]) -> tuple[bytes, datetime]:
        """Write file `part` (0: the first, or the only one) of the runs cut by `sizes`; return
        it and when its newest page changed."""
        pages, rows = self._pages(part), self.view.listed(runs[part])
        release, plain = self.urls.release, escape(self.urls.release("")) == self.urls.release("")
        lines = [_item("url", escape(loc.url), _w3c(loc.lastmod)) for loc in pages]
        stamps: dict[int, str] = {}  # each second written once: releases share their times
        # Each id is quoted into the URL: only the base may need escaping, once for all.
        lines += [_item("url", release(rid) if plain else escape(release(rid)),
                        stamps.get(second) or stamps.setdefault(
                            second, time.strftime(W3C, time.gmtime(second))))
                  for rid, second in rows]
        return _document("urlset", lines), self._lastmod(
            part, max((second for _, second in rows), default=None))

    def index(self, runs: Sequence[Run]) -> tuple[bytes, datetime]:
        """Write the sitemap index of the parts (the runs cut by `sizes`); return it and when
        the newest page changed."""
        lastmods = [self._lastmod(n, self.view.lastmod(run)) for n, run in enumerate(runs)]
        lines = [_item("sitemap", escape(self.urls.sitemap(n)), _w3c(lastmod))
                 for n, lastmod in enumerate(lastmods, start=1)]
        return _document("sitemapindex", lines), max(lastmods, default=NEVER)

    def _lastmod(self, part: int, newest: int | None) -> datetime:
        """Return when the newest page of a file changed: a listing, or its run's newest
        release (`newest`, UTC second)."""
        return max([loc.lastmod for loc in self._pages(part)]
                   + ([_utc(newest)] if newest is not None else []), default=NEVER)


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
