"""WebSub publishing: tell the hub which feeds a new dataset, or a scheduled release going
live, changed, off the request path."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode
from urllib.request import Request, urlopen

from flask import Flask

from ..clock import now, system_now
from ..dataset.visible import StoreView
from ..feeds.feed import FeedDoc, build_feed
from ..feeds.query import FORMATS, FeedQuery
from ..feeds.urls import Scope, Urls
from ..http.offload import gevent_patched
from ..state import Served
from .claims import Claims

log = logging.getLogger("feedsvc.websub")


def _start_os_thread(run: Callable[[], None]) -> bool:
    """Run `run` in a new OS thread if this process is gevent's (a gunicorn master, whose
    looks run in a thread of their own, where a greenlet, even one of threading.Thread, would
    never run); return whether it did."""
    if not gevent_patched():
        return False
    from gevent.monkey import get_original

    get_original("_thread", "start_new_thread")(run, ())
    return True


def _first_page(view: StoreView, scope: Scope, urls: Urls) -> FeedDoc | None:
    """Describe what a subscriber of the feed gets, or None where the feed does not exist."""
    index = view.index
    if scope.kind == "topics" and scope.key not in index.topics:
        return None
    query = FeedQuery()
    filters = query.filters(scope)
    page = view.select(filters, query.limit)
    return build_feed(index, scope, query, "json", urls, page, None, view.tombstones(filters))


def changed_feeds(old: StoreView, new: StoreView, urls: Urls) -> list[str]:
    """Return the subscription URL, in every format, of each feed that changed from what
    readers saw of the old index to what they see of the new one (or of the same, later)."""
    scopes = [Scope(), *(Scope("topics", slug) for slug in new.index.topics)]
    scopes += [Scope("countries", code.lower())
               for code in sorted(set(old.countries()) | set(new.countries()))]
    changed = [s for s in scopes if _first_page(old, s, urls) != _first_page(new, s, urls)]
    return [urls.feed(scope, fmt) for scope in changed for fmt in FORMATS]


@dataclass(frozen=True)
class Publisher:
    """Pings a WebSub hub (hub.mode=publish) for every feed a dataset swap changed."""

    hub: str
    urls: Urls
    timeout: float = 10.0
    clock: Callable[[], datetime] = field(default=system_now, repr=False)
    # Who publishes each version once per box: named when the app is built, so the workers
    # forked from a preloading gunicorn master share the claims and nothing else does.
    claims: Claims = field(default_factory=Claims.temporary, repr=False)

    def __call__(self, old: StoreView, new: StoreView) -> threading.Thread | None:
        """Tell the hub of a commit: what readers saw just before it and see after (views
        of two read transactions the writer holds while this runs).

        Only the first process of the box to claim the version publishes (None for the
        others), so the hub is told once per box.
        """
        return self.start(new.index.version, old, new)

    def start(self, claim: str, old: StoreView, new: StoreView) -> threading.Thread | None:
        """Work out the feeds that differ from `old` to `new` now (the views last as long as
        their transactions), and ping the hub for them in a thread, if this process is the
        first of the box to claim `claim`; return the thread."""
        if not self.claims.claim(claim):
            return None
        feeds = changed_feeds(old, new, self.urls)
        log.info("websub: %d feed URLs changed from %s/%s to %s/%s", len(feeds),
                 old.index.version, old.token, new.index.version, new.token)
        if _start_os_thread(lambda: self.publish(feeds)):
            return None  # nobody waits for it
        thread = threading.Thread(target=self.publish, args=(feeds,), name="websub-publish",
                                  daemon=True)
        thread.start()
        return thread

    def publish(self, feeds: list[str]) -> None:
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


def init_app(app: Flask, live: Served) -> None:
    """With FEEDSVC_WEBSUB_HUB set, publish to the hub whenever a new index is swapped in.

    config.check has made sure that FEEDSVC_BASE_URL is set with it.
    """
    hub: str | None = app.config["FEEDSVC_WEBSUB_HUB"]
    app.extensions[_SCHEDULE] = None
    if hub:
        publisher = Publisher(hub, Urls(app.config["FEEDSVC_BASE_URL"]), clock=lambda: now(app))
        app.extensions[_SCHEDULE] = schedule = Schedule(publisher, live)
        live.on_swap(schedule.on_swap)
        live.on_swap(publisher)


_SCHEDULE = "feedsvc.websub.schedule"
MAX_WAIT = 3600.0  # seconds: the longest a schedule's timer waits before looking again


def schedule(app: Flask) -> Schedule | None:
    """Return the app's schedule of publications (None: no hub configured)."""
    found: Schedule | None = app.extensions[_SCHEDULE]
    return found


def start_schedule(app: Flask) -> Schedule | None:
    """Arm this process's timer for the next scheduled publication (after fork: timers do
    not survive it)."""
    found = schedule(app)
    if found is not None:
        found.arm()
    return found


@dataclass
class Schedule:
    """Tells the hub when a scheduled release goes live: a timer in each process, set for the
    next publication; the first process of the box to claim the moment publishes it."""

    publisher: Publisher
    live: Served
    # What readers saw when last looked at: the version, the moment and its token.
    seen: tuple[str, datetime, str] | None = None
    timer: threading.Timer | None = field(default=None, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def arm(self) -> None:
        """Remember what readers see now, and set the timer for its next publication."""
        with self.lock, self.live.reader.read() as snapshot:
            view = snapshot.view_at(self.publisher.clock())
            self.seen = (snapshot.meta.version, view.now, view.token)
            self._set(view)

    def _set(self, view: StoreView) -> None:
        if self.timer is not None:
            self.timer.cancel()
        due = view.next_publication
        if due is None:
            self.timer = None
            return
        # A little late rather than early: the clock and the timer's clock may differ. Far
        # ones are looked at again hourly (a timer cannot wait centuries, and clocks step).
        delay = min(MAX_WAIT, max(0.0, (due - view.now).total_seconds()) + 0.05)
        self.timer = threading.Timer(delay, self.tick)
        self.timer.daemon = True
        self.timer.start()

    def on_swap(self, old: StoreView, new: StoreView) -> None:
        """New data: the Publisher tells the hub of it; only re-arm the timer here."""
        if self.timer is not None or self.seen is not None:
            self.arm()

    def tick(self) -> threading.Thread | None:
        """Publish what became visible since the last look, and re-arm; return the thread."""
        with self.lock, self.live.reader.read() as snapshot:
            before, after = self.seen, snapshot.view_at(self.publisher.clock())
            self.seen = (snapshot.meta.version, after.now, after.token)
            self._set(after)
            if before is None or before[0] != snapshot.meta.version or before[2] == after.token:
                return None
            # Both moments of the one version, in one transaction.
            return self.publisher.start(f"{snapshot.meta.version}.{after.token}",
                                        snapshot.view_at(before[1]), after)
