"""Write feeds as RSS 2.0, Atom 1.0, JSON Feed 1.1 (the only feedgen code), and OPML lists."""
from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedEntry, FeedGenerator
from lxml import etree

from .feed import Entry, FeedDoc, Tombstone

ATOM_NS = "http://www.w3.org/2005/Atom"
TOMBSTONES_NS = "http://purl.org/atompub/tombstones/1.0"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
GENERATOR = "feedsvc"
OPML_DOCS = "http://opml.org/spec2.opml"


class _FeedLinks(BaseExtension):  # type: ignore[misc]
    """Add atom:link rel=next/hub to the RSS channel (feedgen writes only rel=self there)."""

    def __init__(self) -> None:
        self.links: tuple[tuple[str, str], ...] = ()

    def extend_rss(self, feed: Any) -> Any:
        channel = feed[0]
        for rel, href in self.links:
            etree.SubElement(channel, f"{{{ATOM_NS}}}link", href=href, rel=rel)
        return feed


class _EntryLinkAttrs(BaseEntryExtension):  # type: ignore[misc]
    """Restore the attributes of Atom entry links, which feedgen 1.0.0 drops (it writes each
    <link> with its href only): `links` are the entry's links, in the order they were added."""

    def __init__(self) -> None:
        self.links: list[dict[str, str]] = []
        self.language: str | None = None  # the entry's, when not the feed's

    def extend_atom(self, entry: Any) -> Any:
        # feedgen builds Atom elements unqualified, under the root's default namespace, and
        # writes the links in the order they were added: the n-th element is the n-th link.
        for element, link in zip(entry.findall("link"), self.links, strict=True):
            for name, value in link.items():
                element.set(name, value)
        if self.language:  # Atom's own way (RFC 4287 2): xml:lang on the entry
            entry.set(XML_LANG, self.language)
        return entry


class _Tombstones(BaseExtension):  # type: ignore[misc]
    """Add RFC 6721 at:deleted-entry elements to an Atom feed (feedgen knows none)."""

    def __init__(self) -> None:
        self.tombstones: tuple[Tombstone, ...] = ()

    def extend_ns(self) -> dict[str, str]:
        return {"at": TOMBSTONES_NS}

    def extend_atom(self, feed: Any) -> Any:
        for gone in self.tombstones:
            node = etree.SubElement(feed, f"{{{TOMBSTONES_NS}}}deleted-entry", ref=gone.ref,
                                    when=gone.when.isoformat())
            if gone.comment:
                etree.SubElement(node, f"{{{TOMBSTONES_NS}}}comment").text = gone.comment
        return feed


def _add_links(fe: FeedEntry, entry: Entry, language: str) -> None:
    """Add the entry's page, attachments and picture: rel=enclosure links in Atom; in RSS,
    the last enclosure (the picture, which readers show) becomes <enclosure>, and every file
    is a Media RSS media:content (the picture also a media:thumbnail). In Atom, an entry in
    another language than the feed's (`language`) says so."""
    links = [{"href": entry.link, "rel": "alternate", "type": "text/html"}]
    files = [*entry.attachments, *((entry.image,) if entry.image else ())]
    links += [{"href": f.url, "rel": "enclosure", "type": f.type, "length": str(f.length),
               "title": f.title} for f in files]
    for link in links:
        fe.link(**link)
    fe.feedsvc.links = links
    fe.feedsvc.language = entry.language if entry.language != language else None
    for f in files:
        fe.media.content(url=f.url, type=f.type, fileSize=str(f.length), medium=f.medium,
                         group=None)
    if entry.image:
        fe.media.thumbnail(url=entry.image.url, group=None)


def _as_html(text: str) -> str:
    """Return plain text as the HTML that RSS <description> and <content:encoded> hold."""
    return "".join(f"<p>{html.escape(p, quote=False)}</p>" for p in text.split("\n\n"))


def _add_entry(fg: FeedGenerator, entry: Entry, rss: bool, language: str) -> None:
    # Atom says its summary and content are text; RSS readers render them as HTML, so there
    # the text is escaped once more: "<script>" in a summary is shown, never run.
    text: Callable[[str], str] = _as_html if rss else str
    fe: FeedEntry = fg.add_entry(order="append")
    fe.id(entry.id)
    fe.title(entry.title)
    _add_links(fe, entry, language)
    fe.published(entry.published)
    fe.updated(entry.updated)
    fe.summary(text(entry.summary))
    if entry.content:
        fe.content(text(entry.content), type="text")
    fe.category([{"term": c.term, "scheme": c.scheme, "label": c.label} for c in entry.categories])


def _generator(doc: FeedDoc, rss: bool) -> FeedGenerator:
    fg = FeedGenerator()
    fg.register_extension("feedsvc", _FeedLinks, _EntryLinkAttrs, atom=True, rss=True)
    if doc.tombstones and not rss:
        fg.register_extension("tombstones", _Tombstones, atom=True, rss=False)
        fg.tombstones.tombstones = doc.tombstones
    fg.load_extension("media", atom=True, rss=True)
    fg.id(doc.id)
    fg.title(doc.title)
    fg.subtitle(doc.subtitle)
    fg.language(doc.language)
    fg.author({"name": doc.publisher})
    fg.generator(GENERATOR)
    fg.link(href=doc.self_url, rel="self")
    for rel, href in doc.extra_links:
        fg.link(href=href, rel=rel)
    # RSS <channel><link> is the last link added: the HTML page must come last.
    fg.link(href=doc.html_url, rel="alternate", type="text/html")
    if doc.logo or doc.icon:  # RSS <image> (and Atom <logo>): the logo, else the icon
        fg.image(url=doc.logo or doc.icon, title=doc.title, link=doc.html_url)
    if doc.icon:
        fg.icon(doc.icon)
    fg.feedsvc.links = doc.extra_links
    # Never the time of rendering: feedgen stamps "now" unless told.
    fg.updated(doc.updated)
    for entry in doc.entries:
        _add_entry(fg, entry, rss, doc.language)
    return fg


def _with_stylesheet(xml: bytes, href: str | None) -> bytes:
    """Put an xml-stylesheet instruction before the root, so browsers show a readable page.

    On its own line after feedgen's XML declaration, where lxml would write it: the same bytes
    as parsing the feed again to add it, without the second parse and serialization.
    """
    if href is None:
        return xml
    declaration, newline, root = xml.partition(b"\n")
    assert declaration.startswith(b"<?xml ") and newline, "feedgen wrote no XML declaration"
    pi = f'<?xml-stylesheet type="text/xsl" href="{_attr(href)}"?>'.encode()
    return b"\n".join((declaration, pi, root))


def _attr(value: str) -> str:
    """Escape a value for a pseudo-attribute of a processing instruction."""
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


# RSS titles and categories are plain text (RSS Best Practices Profile, "Character data"); a
# publisher should write "&", "<" and ">" in them as hexadecimal character references, the
# form the widest range of readers shows literally (some unescape "&lt;" once more, as HTML).
_PLAIN_TEXT = re.compile(rb"(<(title|category)\b[^>]*>)([^<]*)(</\2>)")
_ENTITY = re.compile(rb"&(lt|amp|gt);")
_HEX = {b"lt": b"&#x3C;", b"amp": b"&#x26;", b"gt": b"&#x3E;"}


def _hex_references(xml: bytes) -> bytes:
    return _PLAIN_TEXT.sub(lambda m: m[1] + _ENTITY.sub(lambda e: _HEX[e[1]], m[3]) + m[4], xml)


def render_rss(doc: FeedDoc) -> bytes:
    rss = bytes(_generator(doc, rss=True).rss_str(pretty=True))
    return _hex_references(_with_stylesheet(rss, doc.stylesheet))  # after lxml's last pass


def render_atom(doc: FeedDoc) -> bytes:
    return _with_stylesheet(bytes(_generator(doc, rss=False).atom_str(pretty=True)), doc.stylesheet)


def _json_item(entry: Entry) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": entry.id,
        "url": entry.link,
        "title": entry.title,
        "summary": entry.summary,
        "content_text": entry.content or entry.summary,
        "date_published": entry.published.isoformat(),
        "date_modified": entry.updated.isoformat(),
        "language": entry.language,
        "tags": [c.label for c in entry.categories],
        **_json_media(entry),
        "_feedsvc": {"countries": [c.lower() for c in entry.countries],
                     "topics": list(entry.topics), "dateline": entry.dateline},
    }
    return item


def _json_media(entry: Entry) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if entry.image:
        found["image"] = entry.image.url
    files = [*entry.attachments, *((entry.image,) if entry.image else ())]
    if files:
        found["attachments"] = [{"url": f.url, "mime_type": f.type, "title": f.title,
                                 "size_in_bytes": f.length} for f in files]
    return found


def render_json(doc: FeedDoc) -> bytes:
    feed: dict[str, Any] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": doc.title,
        "home_page_url": doc.html_url,
        "feed_url": doc.self_url,
        "description": doc.subtitle,
        "language": doc.language,
        "authors": [{"name": doc.publisher}],
    }
    if doc.logo or doc.icon:
        feed["icon"] = doc.logo or doc.icon
    if doc.icon:
        feed["favicon"] = doc.icon
    links = dict(doc.extra_links)
    if "next" in links:
        feed["next_url"] = links["next"]
    if "hub" in links:
        feed["hubs"] = [{"type": "WebSub", "url": links["hub"]}]
    feed["items"] = [_json_item(e) for e in doc.entries]
    return json.dumps(feed, ensure_ascii=False, indent=2).encode() + b"\n"


RENDERERS: dict[str, Callable[[FeedDoc], bytes]] = {
    "rss": render_rss, "atom": render_atom, "json": render_json,
}


@dataclass(frozen=True)
class Outline:
    """One feed of an OPML subscription list, or a folder of them (children, no xml_url)."""

    text: str
    xml_url: str | None = None
    html_url: str | None = None
    children: tuple[Outline, ...] = ()


def _outline(parent: Any, outline: Outline) -> None:
    node = etree.SubElement(parent, "outline", text=outline.text)
    if outline.xml_url:
        node.set("type", "rss")
        node.set("title", outline.text)
        node.set("xmlUrl", outline.xml_url)
    if outline.html_url:
        node.set("htmlUrl", outline.html_url)
    for child in outline.children:
        _outline(node, child)


def render_opml(title: str, owner: str, modified: datetime,
                outlines: Sequence[Outline]) -> bytes:
    """Write an OPML 2.0 subscription list; dated by its data, never by the clock."""
    opml = etree.Element("opml", version="2.0")
    head = etree.SubElement(opml, "head")
    modified = modified.astimezone(UTC)
    for tag, text in (("title", title), ("dateModified", format_datetime(modified, usegmt=True)),
                      ("ownerName", owner), ("docs", OPML_DOCS)):
        etree.SubElement(head, tag).text = text
    body = etree.SubElement(opml, "body")
    for outline in outlines:
        _outline(body, outline)
    return bytes(etree.tostring(opml, encoding="UTF-8", xml_declaration=True, pretty_print=True))


CONTENT_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}
OPML_CONTENT_TYPE = "text/x-opml; charset=utf-8"
XSLT_CONTENT_TYPE = "text/xsl; charset=utf-8"
