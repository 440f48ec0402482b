"""WebSub publishing: tell the hub which feeds a new dataset changed, off the request path."""
from __future__ import annotations

import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode
from urllib.request import Request, urlopen

from flask import Flask

from .feed import FeedDoc, build_feed
from .index import Index
from .query import FORMATS, FeedQuery
from .state import Live
from .urls import Scope, Urls

log = logging.getLogger(__name__)


def _first_page(index: Index, scope: Scope, urls: Urls) -> FeedDoc | None:
    """Describe what a subscriber of the feed gets, or None where the feed does not exist."""
    if scope.kind == "topics" and scope.key not in index.dataset.topics:
        return None
    query = FeedQuery()
    page = index.select(query.filters(scope), query.limit)
    return build_feed(index, scope, query, "json", urls, page)


def changed_feeds(old: Index, new: Index, urls: Urls) -> list[str]:
    """Return the subscription URL, in every format, of each feed the new index changes."""
    scopes = [Scope(), *(Scope("topics", slug) for slug in new.dataset.topics)]
    scopes += [Scope("countries", code.lower())
               for code in sorted(set(old.by_country) | set(new.by_country))]
    changed = [s for s in scopes if _first_page(old, s, urls) != _first_page(new, s, urls)]
    return [urls.feed(scope, fmt) for scope in changed for fmt in FORMATS]


@dataclass(frozen=True)
class Publisher:
    """Pings a WebSub hub (hub.mode=publish) for every feed a dataset swap changed."""

    hub: str
    urls: Urls
    timeout: float = 10.0
    # Where the once-per-version markers go: made when the app is built, so the workers
    # forked from a preloading gunicorn master share it and nothing else does.
    claims_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="feedsvc-websub-"))

    def __call__(self, old: Index, new: Index) -> threading.Thread | None:
        """Start publishing in a background thread and return it; serving never waits.

        Every worker of a box swaps in the same new version; only the first to claim it
        publishes (None for the others), so the hub is told once per box, not once per worker.
        """
        if not self.claim(new.version):
            return None
        thread = threading.Thread(target=self.publish, args=(old, new), name="websub-publish",
                                  daemon=True)
        thread.start()
        return thread

    def claim(self, version: str) -> bool:
        """Claim publishing of one dataset version for this box (a marker file made once)."""
        marker = Path(self.claims_dir) / version
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return False
        except OSError as exc:  # an unwritable temp dir: publishing twice beats never
            log.warning("websub: cannot claim %s (%s); publishing anyway", marker, exc)
        return True

    def publish(self, old: Index, new: Index) -> None:
        feeds = changed_feeds(old, new, self.urls)
        log.info("websub: %d feed URLs changed from %s to %s", len(feeds), old.version, new.version)
        for url in feeds:
            self.ping(url)

    def ping(self, feed_url: str) -> bool:
        """Tell the hub one feed changed; log and return False when the hub fails."""
        body = urlencode({"hub.mode": "publish", "hub.url": feed_url}).encode()
        request = Request(self.hub, data=body, method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded", "User-Agent": "feedsvc-websub"})
        try:
            with urlopen(request, timeout=self.timeout) as response:
                response.read()
        except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
            log.warning("websub: hub %s refused or failed publish of %s: %s",
                        self.hub, feed_url, exc)
            return False
        return True


def init_app(app: Flask, live: Live) -> None:
    """With FEEDSVC_WEBSUB_HUB set, publish to the hub whenever a new index is swapped in.

    config.check has made sure that FEEDSVC_BASE_URL is set with it.
    """
    hub: str | None = app.config["FEEDSVC_WEBSUB_HUB"]
    if hub:
        live.on_swap(Publisher(hub, Urls(app.config["FEEDSVC_BASE_URL"])))
