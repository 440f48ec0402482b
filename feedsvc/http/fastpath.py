"""The fast path: a worker answers a feed whose bytes it holds without entering Flask.

It sits in front of Flask (inside proxy.py's layers, which settle the host first). A GET or HEAD
of a feed URL is routed by the app's own URL map and resolved to its cache key by
`views.feeds.feed_request`, the code the view uses. When the feed cache's local tier holds
that key, conditional.py decides 200 or 304, and the answer goes out with what every
response gets: the security headers (headers.py), the dataset version, a request id, an
access line and the metrics. Anything else (a miss, a redirect, an error, another route)
goes to Flask, which fills the local tier for the next request.

A hit reads nothing of the store: what a cache key needs of it (the version and the
visibility token) is kept per connection as a `Moment`, true until a writer commits (PRAGMA
data_version moves: the next request, on any worker) or the token's own expiry (a scheduled
release goes live, a notice ends: no commit says so).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException

from .. import state
from ..clock import now
from ..dataset.db import Unusable
from ..dataset.served import Meta
from ..feeds.query import QueryError
from ..feeds.urls import Scope
from ..views.feeds import SCOPES, feed_request
from . import observe
from .conditional import FEED_VARY, Answer, Conditions, Rendered, cache_control, respond
from .headers import security_headers
from .proxy import host_allowed

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
STATUS = {200: "200 OK", 304: "304 Not Modified"}


@dataclass(frozen=True, slots=True)
class Moment:
    """What a cache key needs of the store (feed_request's `view`), true from `since` until
    `until` (None: until a commit) at the commit `stamp` (Reader.stamp)."""

    stamp: tuple[int, int]
    index: Meta
    token: str
    since: datetime
    until: datetime | None
    next_change: datetime | None  # what Cache-Control counts down to (feeds' own changes)
    changed_at: int  # when the version was committed (conditional.dated)

    def holds(self, stamp: tuple[int, int], at: datetime) -> bool:
        return stamp == self.stamp and self.since <= at and (self.until is None
                                                              or at < self.until)


class FastPath:
    """WSGI middleware in front of Flask that answers feeds from the local tier."""

    def __init__(self, app: Flask, wsgi_app: WSGIApp) -> None:
        self.app, self.wsgi_app = app, wsgi_app
        self.live, self.cache = state.live(app), state.feed_cache(app)  # fixed once built
        self.answered = 0  # requests answered here, without Flask
        self.moments: dict[int, Moment] = {}  # by connection (Reader.stamp), so by thread
        # Routing depends on the path alone (no host or subdomain rules): remember it.
        self.route = lru_cache(maxsize=1024)(self._route)

    def _route(self, path: str) -> tuple[str, Scope, str] | None:
        """Return the URL rule, scope and format of a feed path, or None (not a feed, or a
        redirect or an error that Flask answers)."""
        try:
            rule, args = self.app.url_map.bind("localhost").match(path, "GET", return_rule=True)
        except HTTPException:
            return None
        scope = SCOPES.get(rule.endpoint)
        return None if scope is None else (rule.rule, scope(args), args["fmt"])

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        if (environ["REQUEST_METHOD"] in ("GET", "HEAD")
                and environ.get("PATH_INFO", "").startswith("/feeds/")):
            found = self._find(environ)
            if found is not None:
                return self._send(environ, start_response, started, *found)
        return self.wsgi_app(environ, start_response)

    def _find(self, environ: dict[str, Any]) -> tuple[str, Moment, Rendered, str] | None:
        """Return the URL rule, the store's moment, local body and Cache-Control of a feed
        request, or None."""
        app = self.app
        route = self.route(environ["PATH_INFO"])
        if route is None:
            return None
        rule, scope, fmt = route
        request = app.request_class(environ)
        allowed = app.config["FEEDSVC_ALLOWED_HOSTS"]
        if allowed and not host_allowed(request.host, allowed):
            return None  # the same host check as Flask's (proxy.py): the refusal is Flask's
        at = now(app)
        try:
            moment = self._moment(at)
        except Unusable:  # the state file cannot be opened: Flask says so (http/errors.py)
            return None
        try:  # query checks as in Flask: any refusal is Flask's to answer
            feed = feed_request(app, request, moment, scope, fmt)
        except (HTTPException, QueryError):
            return None
        body = None if feed is None else self.cache.local.get(feed.key)
        if body is None:
            return None
        left = None if moment.next_change is None else max(
            0.0, (moment.next_change - at).total_seconds())
        return rule, moment, body, cache_control(app.config, left)

    def _moment(self, at: datetime) -> Moment:
        """Return the version and token at `at`: the one kept, or read again."""
        reader = self.live.reader
        stamp = reader.stamp()
        kept = self.moments.get(stamp[0])
        if kept is not None and kept.holds(stamp, at):
            return kept
        with reader.read() as snapshot:
            view = snapshot.view_at(at)
            kept = Moment(stamp, snapshot.meta, view.token, at, view.token_until,
                          view.next_change, snapshot.changed_at)
        self.moments[stamp[0]] = kept
        return kept

    def _send(self, environ: dict[str, Any], start_response: StartResponse, started: float,
              route: str, moment: Moment, body: Rendered, control: str) -> Iterable[bytes]:
        request_id = observe.request_id(environ.get("HTTP_X_REQUEST_ID", ""))
        method = environ["REQUEST_METHOD"]
        cache = self.cache
        answer: Answer = respond(Conditions.of(environ), control, lambda: cache.hit(body),
                                 lambda: body.validators, FEED_VARY, moment.changed_at)
        headers = list(answer.headers)
        if answer.status == 200:
            headers.append(("Content-Length", str(len(answer.body))))
        headers += security_headers("feeds.feed", body.content_type, method)
        headers += [("X-Dataset-Version", moment.index.version), ("X-Request-ID", request_id)]
        start_response(STATUS[answer.status], headers)
        self.answered += 1
        observe.record(route=route, method=method, path=environ.get("PATH_INFO", ""),
                       query=environ.get("QUERY_STRING", ""), status=answer.status,
                       size=len(answer.body), seconds=time.perf_counter() - started,
                       cache="hit" if answer.status == 200 else "-", cache_errors=0,
                       remote=environ.get("REMOTE_ADDR"), request_id=request_id)
        return [] if method == "HEAD" else [answer.body]


_KEY = "feedsvc.fast_path"


def init_app(app: Flask) -> FastPath | None:
    """Put the fast path in front of the app (FEEDSVC_FAST_PATH=off: not at all)."""
    if not app.config["FEEDSVC_FAST_PATH"]:
        return None
    fast = FastPath(app, app.wsgi_app)
    app.wsgi_app = fast  # type: ignore[method-assign]
    app.extensions[_KEY] = fast
    return fast


def fast_path(app: Flask) -> FastPath | None:
    """Return the app's fast path (other layers may wrap it), or None when it is off."""
    found: FastPath | None = app.extensions.get(_KEY)
    return found
