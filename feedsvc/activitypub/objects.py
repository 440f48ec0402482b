"""What the fediverse is told: a release as an Article, and the activities about it.

Pure functions of records and URLs (no Flask, no storage, no clock): the same release gives the
same JSON, byte for byte, on every worker and instance, so activity ids are stable. The
deliverer (deliver.py) and the views both build from here.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import unquote

from ..dataset import SITE_HANDLE as SITE_HANDLE  # the site actor's handle, re-exported
from ..dataset.records import Release
from ..feeds.feed import country_name
from ..feeds.urls import Scope, Urls

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
# ActivityStreams, the security vocabulary (publicKey), and the terms Mastodon reads that
# neither defines: every property we write expands to an IRI (JSON-LD drops any that do not).
CONTEXT: list[Any] = [
    "https://www.w3.org/ns/activitystreams",
    "https://w3id.org/security/v1",
    {
        "toot": "http://joinmastodon.org/ns#",
        "discoverable": "toot:discoverable",
        "schema": "http://schema.org#",
        "PropertyValue": "schema:PropertyValue",
        "value": "schema:value",
        "Hashtag": "as:Hashtag",
        "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
        "sensitive": "as:sensitive",
    },
]
_WORD = re.compile(r"[^\W_]+")  # letters and digits, any script: what a hashtag may hold
_APOSTROPHES = str.maketrans("", "", "'\u2019")

Json = dict[str, Any]


def timestamp(moment: datetime) -> str:
    """Return a moment as ActivityPub servers parse it: UTC, to the second, with a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def hashtag(text: str) -> str:
    """Return the CamelCase hashtag of a label or slug: "social-security" -> "#SocialSecurity"."""
    words = _WORD.findall(text.translate(_APOSTROPHES))
    return "#" + "".join(word[:1].upper() + word[1:] for word in words)


def _tags(release: Release, urls: Urls) -> list[Json]:
    tags = [{"type": "Hashtag", "name": hashtag(slug), "href": urls.page(Scope("topics", slug))}
            for slug in release.topics]
    tags += [{"type": "Hashtag", "name": hashtag(country_name(code)),
              "href": urls.page(Scope("countries", code.lower()))} for code in release.countries]
    return tags


def _content(release: Release, link: str) -> str:
    return f'<p>{escape(release.summary)}</p><p><a href="{escape(link)}">{escape(link)}</a></p>'


def followers(urls: Urls, handle: str) -> str:
    """Return the id of an actor's followers collection."""
    return f"{urls.actor(handle)}/followers"


def article(release: Release, urls: Urls) -> Json:
    """Describe a release as the Article the site actor publishes (id = url = its page)."""
    link = urls.release(release.id)
    content = _content(release, link)
    found: Json = {
        "@context": CONTEXT, "id": link, "type": "Article", "url": link,
        "attributedTo": urls.actor(SITE_HANDLE),
        "name": release.title, "summary": release.summary,
        "content": content, "contentMap": {release.language: content},
        "published": timestamp(release.published),
        "to": [PUBLIC], "cc": [followers(urls, SITE_HANDLE)],
        "tag": _tags(release, urls), "sensitive": False,
    }
    if release.updated is not None:  # corrections set it too: Mastodon shows the edit
        found["updated"] = timestamp(release.updated)
    if release.image is not None:
        found["attachment"] = [{"type": "Image", "mediaType": release.image.type,
                                "url": urls.media(release.image.src, release.image.digest),
                                "name": release.image.text}]
    return found


def tombstone(release: Release, urls: Urls) -> Json:
    """Describe a withdrawn release: what its page answers, with 410."""
    gone: Json = {"@context": CONTEXT, "id": urls.release(release.id), "type": "Tombstone"}
    if release.withdrawn is not None:
        gone["deleted"] = timestamp(release.withdrawn)
    return gone


def version(document: Json) -> str:
    """Return a short hash of a document: a new one for each version of an article."""
    text = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Origin:
    """Where an article comes from, read back from its ids: the site's URLs and its release."""

    urls: Urls
    release_id: str

    @classmethod
    def of(cls, release_url: str) -> _Origin:
        base, _, quoted = release_url.rpartition("releases/")
        return cls(Urls(base), unquote(quoted))


def _body(document: Json) -> Json:
    """Return a document without its @context, to be embedded in an activity."""
    return {k: v for k, v in document.items() if k != "@context"}


def _activity(kind: str, handle: str, article_: Json, obj: Any, cc: list[str]) -> Json:
    origin = _Origin.of(article_["id"])
    return {"@context": CONTEXT,
            "id": origin.urls.activity(kind, handle, origin.release_id, version(article_)),
            "type": kind.capitalize(), "actor": origin.urls.actor(handle),
            "published": article_.get("updated", article_["published"]),
            "to": [PUBLIC], "cc": cc, "object": obj}


def create(article_: Json) -> Json:
    """Return the site actor's Create of an article, to its followers."""
    return _activity("create", SITE_HANDLE, article_, _body(article_), article_["cc"])


def update(article_: Json) -> Json:
    """Return the site actor's Update of a corrected article (the whole new version)."""
    return _activity("update", SITE_HANDLE, article_, _body(article_), article_["cc"])


def announce(handle: str, article_: Json) -> Json:
    """Return a country or topic actor's boost of an article, to its own followers."""
    urls = _Origin.of(article_["id"]).urls
    return _activity("announce", handle, article_, article_["id"],
                     [followers(urls, handle), article_["attributedTo"]])


def announced(urls: Urls, handle: str, release_id: str, version: str) -> Json:
    """Return an Announce an actor sent of a release's version, as far as its Undo needs and
    its id answers once the version is not the release's current one (servers find a boost
    by its id)."""
    return {"id": urls.activity("announce", handle, release_id, version),
            "type": "Announce", "actor": urls.actor(handle), "to": [PUBLIC],
            "cc": [followers(urls, handle), urls.actor(SITE_HANDLE)],
            "object": urls.release(release_id)}


def delete(release_url: str) -> Json:
    """Return the site actor's Delete of a withdrawn release, its object a Tombstone."""
    origin = _Origin.of(release_url)
    return {"@context": CONTEXT,
            "id": origin.urls.activity("delete", SITE_HANDLE, origin.release_id, "tombstone"),
            "type": "Delete", "actor": origin.urls.actor(SITE_HANDLE),
            "to": [PUBLIC], "cc": [followers(origin.urls, SITE_HANDLE)],
            "object": {"id": release_url, "type": "Tombstone"}}


def undo(activity: Json) -> Json:
    """Return the Undo of one of our activities (an Announce of a withdrawn release)."""
    prefix, _, rest = activity["id"].partition("/ap/activities/")
    return {"@context": CONTEXT, "id": f"{prefix}/ap/activities/undo-{rest}", "type": "Undo",
            "actor": activity["actor"], "to": activity["to"], "cc": activity["cc"],
            "object": _body(activity)}


def accept(actor_id: str, follow: Json) -> Json:
    """Return an actor's Accept of a Follow it received (the Follow embedded, as Mastodon
    matches it by id or by actor and object). Its id is a fragment of the actor's, as
    Mastodon's own Accepts are: it dereferences to the actor, and no Follow is kept for it."""
    digest = hashlib.sha256(str(follow.get("id", "")).encode()).hexdigest()[:16]
    return {"@context": CONTEXT, "id": f"{actor_id}#accepts/{digest}", "type": "Accept",
            "actor": actor_id, "to": [follow["actor"]], "object": _body(follow)}


@dataclass(frozen=True)
class Profile:
    """What an actor says about itself: its name, what it posts, where its page and feeds are."""

    name: str
    summary: str
    page: str
    rss: str
    atom: str
    icon: str
    icon_type: str


def _feed_link(name: str, url: str) -> Json:
    return {"type": "PropertyValue", "name": name,
            "value": f'<a href="{escape(url)}" rel="me nofollow noopener">{escape(url)}</a>'}


def actor(handle: str, profile: Profile, urls: Urls, public_key_pem: str) -> Json:
    """Return an actor's document (a Service: a feed that posts, nobody behind it)."""
    ident = urls.actor(handle)
    return {
        "@context": CONTEXT, "id": ident, "type": "Service", "preferredUsername": handle,
        "name": profile.name, "summary": f"<p>{escape(profile.summary)}</p>", "url": profile.page,
        "inbox": f"{ident}/inbox", "outbox": f"{ident}/outbox",
        "followers": followers(urls, handle),
        "endpoints": {"sharedInbox": urls.shared_inbox()},
        "publicKey": {"id": f"{ident}#main-key", "owner": ident, "publicKeyPem": public_key_pem},
        "icon": {"type": "Image", "mediaType": profile.icon_type, "url": profile.icon},
        "attachment": [_feed_link("RSS", profile.rss), _feed_link("Atom", profile.atom)],
        "discoverable": True, "manuallyApprovesFollowers": False,
    }
