"""The one place that builds absolute URLs and tag: URIs."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

FEED_KINDS = ("all", "countries", "topics")
MEDIA_HASH = 16  # hex digits of a media file's sha256 in its URL


@dataclass(frozen=True)
class Scope:
    """Which feed a URL names: all releases, one country or one topic."""

    kind: str = "all"
    key: str | None = None

    @property
    def path(self) -> str:
        """Return the path below /feeds/ and the pages, e.g. countries/th."""
        return "all" if self.kind == "all" else f"{self.kind}/{self.key}"


@dataclass(frozen=True)
class Urls:
    """Absolute URLs below one public base URL (which ends with a slash)."""

    base: str

    def _with_query(self, path: str, query: str) -> str:
        return f"{self.base}{path}" + (f"?{query}" if query else "")

    def at(self, path: str, query: str = "") -> str:
        """Return the URL of any path below the base, e.g. a redirect's target."""
        return self._with_query(path.lstrip("/"), query)

    def feed(self, scope: Scope, fmt: str, query: str = "") -> str:
        return self._with_query(f"feeds/{scope.path}.{fmt}", query)

    def page(self, scope: Scope, query: str = "") -> str:
        """Return the HTML page that lists what a feed holds."""
        return self._with_query("" if scope.kind == "all" else scope.path, query)

    def release(self, release_id: str) -> str:
        return f"{self.base}releases/{quote(release_id)}"

    def directory(self, query: str = "") -> str:
        """Return the page that lists every feed."""
        return self._with_query("feeds/", query)

    def opml(self) -> str:
        return f"{self.base}feeds.opml"

    def stylesheet(self) -> str:
        """Return the XSLT that shows a feed opened in a browser as a readable page."""
        return f"{self.base}feeds/feed.xsl"

    def embed(self, scope: Scope, query: str = "") -> str:
        """Return the widget page of a country or topic, made to sit in an iframe."""
        return self._with_query(f"embed/{scope.path}", query)

    def embed_script(self) -> str:
        return f"{self.base}embed.js"

    def static(self, name: str) -> str:
        return f"{self.base}static/{quote(name)}"

    def media(self, src: str, digest: str | None = None) -> str:
        """Return a media file's URL: an https:// src as given; a file below media/ with its
        content hash, so that the URL changes whenever the file does (and may be cached for
        good)."""
        if src.startswith("https://"):
            return src
        return f"{self.base}media/{quote(src)}" + (f"?v={digest[:MEDIA_HASH]}" if digest else "")

    def favicon(self) -> str:
        return f"{self.base}favicon.ico"

    def sitemap(self, part: int | None = None) -> str:
        """Return the sitemap (or its index), or one of its numbered parts."""
        return f"{self.base}sitemap.xml" if part is None else f"{self.base}sitemaps/{part}.xml"

    def actor(self, handle: str) -> str:
        """Return a fediverse actor's id: `all`, a lowercase country code or a topic slug."""
        return f"{self.base}ap/actors/{quote(handle)}"

    def shared_inbox(self) -> str:
        return f"{self.base}ap/inbox"

    def activity(self, kind: str, handle: str, release_id: str, version: str) -> str:
        """Return the id of an activity about a release (stable: the same on every instance)."""
        return f"{self.base}ap/activities/{kind}/{quote(handle)}/{quote(release_id)}/{version}"

    def ap_icon(self) -> str:
        """Return the actors' picture drawn from the site's name (when the site has no logo)."""
        return f"{self.base}ap/icon.png"

    def scheme(self, kind: str) -> str:
        """Return the category scheme of countries or topics (their feeds' folder)."""
        return f"{self.base}feeds/{kind}/"


def tag_uri(authority: str, specific: str) -> str:
    """Return a stable RFC 4151 tag: URI; it never depends on the base URL."""
    return f"tag:{authority}:{specific}"
