"""Samples of every kind of ActivityStreams document activitypub/objects.py builds."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from feedsvc.activitypub import objects
from feedsvc.dataset.media import Media
from feedsvc.dataset.records import Correction, Release
from feedsvc.feeds.urls import Urls

BASE = "https://feeds.example.org/"

PUBLIC_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
PUBLISHED = datetime(2024, 3, 5, 9, 0, tzinfo=UTC)
# Every optional field an Article or activity may carry: a picture, a correction, a second
# country, a topic and country whose hashtags are CamelCased.
FULL = Release(
    id="pr-2024-7", type="press-release", title="Decent work for domestic workers",
    published=PUBLISHED, updated=datetime(2024, 3, 6, tzinfo=UTC), dateline="BANGKOK",
    countries=("TH", "LA"), topics=("social-security",), summary="A new study.", body="Text.",
    url=None, language="en", corrections=(Correction(datetime(2024, 3, 6, tzinfo=UTC), "Fixed."),),
    image=Media("photos/a.jpg", "Workers in Bangkok", "image/jpeg", 1234, "ab" * 32))
FOLLOW = {"@context": "https://www.w3.org/ns/activitystreams",
          "id": "https://fedify.example/follows/1", "type": "Follow",
          "actor": "https://fedify.example/users/alice", "object": f"{BASE}ap/actors/th"}


def built_documents() -> dict[str, dict[str, Any]]:
    """Every kind of document objects.py builds, by name."""
    urls = Urls(BASE)
    article = objects.article(FULL, urls)
    announce = objects.announce("th", article)
    withdrawn = Release(**{**{f: getattr(FULL, f) for f in FULL.__slots__},
                           "withdrawn": datetime(2024, 3, 7, tzinfo=UTC), "withdrawn_note": "No."})
    profile = objects.Profile("Thailand", "Releases about Thailand.", f"{BASE}countries/th",
                              f"{BASE}feeds/countries/th.rss", f"{BASE}feeds/countries/th.atom",
                              f"{BASE}ap/icon.png", "image/png")
    pem = PUBLIC_KEY.public_bytes(serialization.Encoding.PEM,
                                  serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return {
        "Article": article, "Tombstone": objects.tombstone(withdrawn, urls),
        "Service": objects.actor("th", profile, urls, pem),
        "Create": objects.create(article), "Update": objects.update(article),
        "Announce": announce, "Delete": objects.delete(article["id"]),
        "Undo": objects.undo(announce), "Accept": objects.accept(f"{BASE}ap/actors/th", FOLLOW),
    }
