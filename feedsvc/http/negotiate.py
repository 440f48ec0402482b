"""Whether a page's request asks for ActivityStreams JSON instead of HTML (the fediverse).

Pages that are also ActivityPub objects (a release, a country, a topic) answer either, by the
Accept header alone; both answers say `Vary: Accept`, and the choice is part of the cache key
(the `fmt` of views.common.key: "html" or "activity").
"""
from __future__ import annotations

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from .conditional import VARY

AS_JSON = "application/activity+json"
AS_CONTENT_TYPE = "application/activity+json; charset=utf-8"
AS_PROFILE = "https://www.w3.org/ns/activitystreams"
PAGE_VARY = f"{VARY}, Accept"


def _is_activity(media: str) -> bool:
    kind, _, params = media.partition(";")
    kind = kind.strip().lower()
    return kind == AS_JSON or (kind == "application/ld+json" and AS_PROFILE in params)


def wants_activity(accept: str | None) -> bool:
    """Tell whether an Accept header prefers ActivityStreams (activity+json, or ld+json with
    the ActivityStreams profile) to HTML: a browser's `text/html, */*` never does."""
    if not accept or "json" not in accept:
        return False
    best_activity = best_html = 0.0
    for media, quality in parse_accept_header(accept, MIMEAccept):
        if _is_activity(media):
            best_activity = max(best_activity, quality)
        elif media.partition(";")[0].strip().lower() == "text/html":
            best_html = max(best_html, quality)
    return best_activity > 0 and best_activity >= best_html
