"""POST to an inbox: capped, rate-limited per sender, verified, then one short transaction.

Every refusal is decided before anything is written: a body over the cap (413), too many posts
from one client address (429, before any work), no signature or a bad one (401), a body that is
no JSON object (400), too many verified posts from one sender host (429: counted only once the
signature holds, so that a forged key id cannot spend a real server's allowance). The first is
counted in each worker's memory, the second in the durable file for the whole instance
(activitypub/ratelimit.py: fixed one-minute windows).
"""
from __future__ import annotations

import json
import logging
import math
import re
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, has_app_context, request
from werkzeug.exceptions import RequestEntityTooLarge

from ..activitypub import handles
from ..activitypub.durable import Durable
from ..activitypub.fetch import ActorKeys, Client, FetchError
from ..activitypub.inbox import Inbox, Refused
from ..activitypub.ratelimit import Counts, SharedCounts
from ..activitypub.signatures import SignatureError, Signer, verify
from ..clock import current_view
from ..feeds.urls import Urls

log = logging.getLogger("feedsvc.activitypub")
MAX_BODY = 256 * 1024  # Mastodon's own inbox cap is 1 MiB; our activities of interest are < 4 KiB
# Per client address (before verifying: in each worker) and per sender host (the verified key
# id's: for the instance): a server that delivers much more is told to come back later
# (senders retry a 429).
PER_SENDER, PER_CLIENT = 300, 600  # a minute
_KEY_ID = re.compile(r'keyid="([^"]{1,2000})"', re.IGNORECASE)
_CLIENT, _FETCHED = "feedsvc.activitypub.client", "feedsvc_activitypub_fetched"
COUNTS = "feedsvc.activitypub.counts"  # app.extensions: _counts()


def _answer(status: int, text: str) -> Response:
    response = Response(f"{text}\n", status=status, content_type="text/plain; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"
    return response


class _Remembering(Client):
    """The inbox's client: it remembers, for the rest of the request, the documents it fetched,
    so that a first Follow reads its sender's actor once (for its key, then for its inbox)."""

    def get_json(self, url: str, signer: Signer | None) -> dict[str, Any]:
        fetched: dict[str, dict[str, Any]] = g.setdefault(_FETCHED, {}) if has_app_context() else {}
        if url not in fetched:
            fetched[url] = super().get_json(url, signer)
        return fetched[url]


def _client(app: Flask, durable: Durable, links: Urls) -> ActorKeys:
    """Return the app's fetcher of remote actors' keys (and documents), made once."""
    found: ActorKeys | None = app.extensions.get(_CLIENT)
    if found is None:
        signer = Signer(f"{links.actor('all')}#main-key", durable.site_key().private_pem)
        client = _Remembering(allow=app.config["FEEDSVC_ACTIVITYPUB_ALLOW_PRIVATE"])
        found = app.extensions[_CLIENT] = ActorKeys(durable, client, signer)
    return found


def _key_id(signature: str) -> str | None:
    """Return the key id a signature claims (checked later, by verify)."""
    found = _KEY_ID.search(signature)
    return found[1] if found and urlsplit(found[1]).hostname else None


def _unknown_leaving(activity: dict[str, object], key_id: str, durable: Durable) -> bool:
    """Tell whether this is a Delete of an actor by itself that we never heard from: servers
    send one to every inbox they know when an account goes, signed by a key that is gone too.
    Nothing of it is stored here (a follower's key is), so there is nothing to forget."""
    gone = activity.get("object")
    gone = gone.get("id") if isinstance(gone, dict) else gone
    return (activity.get("type") == "Delete" and gone == activity.get("actor")
            and durable.cached_actor_key(key_id, math.inf) is None)


def _too_many(counts: Counts | SharedCounts, most: int, who: str) -> Response | None:
    """Count one post from `who`; answer 429 once it has sent more than `most` this minute."""
    if counts.hit(who, most):
        return None
    return _answer(429, f"too many posts from {who}; try again later")


def _counts(durable: Durable) -> tuple[Counts, SharedCounts]:
    """Return the worker's counts per client address and the instance's per sender host."""
    found: tuple[Counts, SharedCounts] | None = current_app.extensions.get(COUNTS)
    if found is None:
        found = current_app.extensions[COUNTS] = (Counts(), SharedCounts(durable))
    return found


def receive(durable: Durable, links: Urls) -> Response:
    """Answer a POST to an inbox: 202 once verified (what it changes is recorded), else why not."""
    request.max_content_length = MAX_BODY
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        return _answer(413, f"an inbox takes at most {MAX_BODY} bytes")
    refused = _too_many(_counts(durable)[0], PER_CLIENT, request.remote_addr or "")
    if refused is not None:
        return refused
    key_id = _key_id(request.headers.get("Signature-Input") or
                     request.headers.get("Signature") or "")
    if key_id is None:
        return _answer(401, "the request is not signed (HTTP signatures with a keyId)")
    try:
        activity = json.loads(body)
    except ValueError:
        return _answer(400, "the body is not JSON")
    if not isinstance(activity, dict):
        return _answer(400, "the body is not a JSON object")
    if _unknown_leaving(activity, key_id, durable):
        return _answer(202, "accepted")  # no key fetched for an actor that is gone
    return _verified(activity, body, durable, links)


def _verified(activity: dict[str, object], body: bytes, durable: Durable, links: Urls) -> Response:
    """Verify the signature, count the post against its (now proven) sender host, act."""
    keys = _client(current_app, durable, links)
    base = urlsplit(links.base)
    target = request.path + (f"?{request.query_string.decode('latin-1')}"
                             if request.query_string else "")
    try:
        key = verify(request.method, target, dict(request.headers.items()), body, keys,
                     authority=base.netloc, scheme=base.scheme, refresh=keys.fetch)
    except SignatureError as error:
        return _answer(401, f"signature refused: {error}")
    refused = _too_many(_counts(durable)[1], PER_SENDER, urlsplit(key.key_id).hostname or "")
    if refused is not None:
        return refused
    signer = key.owner
    view = current_view()
    inbox = Inbox(durable, links, lambda h: handles.scope_of(view, h) is not None,
                  lambda ident: keys.client.get_json(ident, keys.signer))
    try:
        done = inbox.receive(activity, signer)
    except Refused as error:
        return _answer(401, str(error))
    except FetchError as error:
        return _answer(502, f"could not read the sender: {error}")
    log.info("inbox: %s: %s", activity.get("type"), done)
    return _answer(202, "accepted")
