"""What goes into a feed: its title, links and entries, declared once for every format."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

import pycountry

from ..dataset import Release
from ..dataset.media import Media
from ..dataset.served import Cursor, Meta, Page
from .query import FeedQuery
from .urls import Scope, Urls, tag_uri

# An empty feed's date: deterministic, and older than anything it could later hold.
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Category:
    term: str
    scheme: str
    label: str


@dataclass(frozen=True)
class Enclosure:
    """A picture or attachment of an entry, at its absolute URL."""

    url: str
    type: str
    length: int
    title: str
    medium: str  # image, audio, video or document (Media RSS)


@dataclass(frozen=True)
class Entry:
    id: str
    title: str
    link: str
    published: datetime
    updated: datetime
    summary: str
    content: str | None
    dateline: str | None
    language: str
    categories: tuple[Category, ...]
    countries: tuple[str, ...]
    topics: tuple[str, ...]
    image: Enclosure | None = None
    attachments: tuple[Enclosure, ...] = ()


@dataclass(frozen=True)
class Tombstone:
    """A withdrawn entry's notice (RFC 6721 at:deleted-entry): readers that honour it drop it."""

    ref: str  # the entry's id
    when: datetime
    comment: str | None


@dataclass(frozen=True)
class FeedDoc:
    """A feed, independent of its format."""

    id: str
    title: str
    subtitle: str
    language: str
    publisher: str
    updated: datetime
    self_url: str
    html_url: str
    entries: Sequence[Entry]
    extra_links: tuple[tuple[str, str], ...] = field(default=())  # (rel, href): next, hub
    stylesheet: str | None = None  # XSLT that shows the XML feed to a person as a web page
    tombstones: tuple[Tombstone, ...] = ()  # written in Atom only: RSS and JSON Feed have none
    icon: str | None = None  # square, small (favicon)
    logo: str | None = None  # wider picture of the publisher


@lru_cache(maxsize=512)  # asked for every category of every entry rendered; ~250 codes
def country_name(code: str) -> str:
    """Return a country's everyday English name (Thailand, not Kingdom of Thailand)."""
    country = pycountry.countries.get(alpha_2=code.upper())
    if country is None:
        return code.upper()
    return str(getattr(country, "common_name", None) or country.name)


def feed_title(index: Meta, scope: Scope, query: FeedQuery) -> str:
    """Say in the title what was filtered: "… — Thailand — Social security"."""
    topics = index.topics
    filters = query.filters(scope)
    parts = [index.site.title]
    if filters.countries:
        parts.append(", ".join(sorted(country_name(c) for c in filters.countries)))
    if filters.topics:
        parts.append(", ".join(sorted(topics[t].label for t in filters.topics)))
    if query.words:
        parts.append(f"“{' '.join(query.words)}”")
    if query.since:
        parts.append(f"since {query.since.isoformat()}")
    return " — ".join(parts)


def build_entry(index: Meta, release: Release, urls: Urls) -> Entry:
    """Describe one release as a feed entry."""
    site, topics = index.site, index.topics
    lede = f"{release.dateline} — {release.summary}" if release.dateline else release.summary
    categories = tuple(Category(t, urls.scheme("topics"), topics[t].label) for t in release.topics)
    categories += tuple(Category(c.lower(), urls.scheme("countries"), country_name(c))
                        for c in release.countries)
    return Entry(
        id=tag_uri(site.tag_authority, f"release:{release.id}"),
        title=release.title,
        link=release.url or urls.release(release.id),
        published=release.published,
        updated=release.modified,
        summary=lede,
        content=_content(lede, release),
        dateline=release.dateline,
        language=release.language,
        categories=categories,
        countries=release.countries,
        topics=release.topics,
        image=enclosure(release.image, urls) if release.image else None,
        attachments=tuple(enclosure(m, urls) for m in release.attachments),
    )


def correction_text(release: Release) -> list[str]:
    """Return a release's corrections as readers are told them, newest first."""
    return [f"Correction ({c.date.date().isoformat()}): {c.note}" for c in reversed(release.corrections)]


def _content(lede: str, release: Release) -> str | None:
    """Return the entry's full text: corrections first (a reader must see them), then body."""
    parts = [*correction_text(release), *([release.body] if release.body else [])]
    return "\n\n".join([lede, *parts]) if parts else None


def tombstone(index: Meta, release: Release) -> Tombstone:
    """Describe a withdrawn release's notice."""
    assert release.withdrawn is not None
    return Tombstone(tag_uri(index.site.tag_authority, f"release:{release.id}"),
                     release.withdrawn, release.withdrawn_note)


def enclosure(media: Media, urls: Urls) -> Enclosure:
    """Describe a release's picture or attachment at its public URL."""
    return Enclosure(urls.media(media.src, media.digest), media.type, media.length, media.text,
                     media.medium)


def _links(scope: Scope, query: FeedQuery, fmt: str, urls: Urls, page: Page,
           hub: str | None) -> tuple[tuple[str, str], ...]:
    """Return the RFC 5005 next page (older releases) and the WebSub hub, where there are."""
    links: list[tuple[str, str]] = []
    if page.more and page.releases:
        links.append(("next", urls.feed(scope, fmt, query.after(Cursor.of(page.releases[-1]))
                                        .link_query())))
    if hub:
        links.append(("hub", hub))
    return tuple(links)


def build_feed(index: Meta, scope: Scope, query: FeedQuery, fmt: str, urls: Urls,
               page: Page, hub: str | None = None,
               withdrawn: Sequence[Release] = ()) -> FeedDoc:
    """Describe one page of the feed a scope and query select, for one format."""
    site = index.site
    # Every page of a feed is the same feed: the cursor is not part of its identity.
    identity = query.link_query(limit=False, before=False)
    entries = [build_entry(index, r, urls) for r in page.releases]
    return FeedDoc(
        id=tag_uri(site.tag_authority, f"feed:{scope.path}" + (f"?{identity}" if identity else "")),
        title=feed_title(index, scope, query),
        subtitle=site.subtitle,
        language=site.language,
        publisher=site.publisher,
        # A withdrawal changes the feed too (in every format: the entry is gone).
        updated=max([e.updated for e in entries] + [r.withdrawn for r in withdrawn if r.withdrawn],
                    default=NEVER),
        self_url=urls.feed(scope, fmt, query.link_query()),
        html_url=urls.page(scope, query.link_query()),
        entries=entries,
        extra_links=_links(scope, query, fmt, urls, page, hub),
        stylesheet=urls.stylesheet() if fmt in ("rss", "atom") else None,
        tombstones=tuple(tombstone(index, r) for r in withdrawn),
        icon=urls.media(site.icon.src, site.icon.digest) if site.icon else None,
        logo=urls.media(site.logo.src, site.logo.digest) if site.logo else None,
    )
