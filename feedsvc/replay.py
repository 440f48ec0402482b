"""Replay: a worker answers a feed request it has answered before, without entering Flask.

A feed's bytes are a function of the dataset version and the request (path, query string,
host, scheme, content coding). So the first 200 a worker sends for such a request is
recorded exactly as sent — every header the app's hooks set, except the per-request id — and
the next identical request gets the recording, or a 304 against its validators. Each replay
still gets its own request id, access line and metrics; everything else goes to Flask.
The key holds the dataset version, so a reload never replays an old body.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from flask import Flask

from . import observe
from .conditional import Validators, accepts_gzip, current
from .feedcache import FeedCache, Memo
from .state import Live

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Key = tuple[str, ...]
# Set by the feed view on a response that may be recorded: its URL rule and validators.
MARK = "feedsvc.replay"
FEED_SUFFIXES = (".rss", ".atom", ".json")
_NOT_IN_304 = frozenset({"content-type", "content-length", "content-encoding"})


@dataclass(frozen=True, slots=True)
class Recording:
    """One feed response as a worker sent it, ready to send again."""

    route: str
    validators: Validators
    headers: list[tuple[str, str]]
    not_modified: list[tuple[str, str]]
    body: bytes


class Replay:
    """WSGI middleware in front of Flask; bounded LRU of recordings per worker."""

    def __init__(self, app: Flask, wsgi_app: WSGIApp, entries: int) -> None:
        self.app, self.wsgi_app = app, wsgi_app
        self.recordings: Memo[Key, Recording] = Memo(entries)

    def __len__(self) -> int:
        return len(self.recordings)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        key = self._key(environ)
        found = None if key is None else self.recordings.get(key)
        if found is not None:
            return self._replay(found, environ, start_response)
        if key is None or environ["REQUEST_METHOD"] != "GET":
            return self.wsgi_app(environ, start_response)
        return self._record(key, environ, start_response)

    def _key(self, environ: dict[str, Any]) -> Key | None:
        path: str = environ.get("PATH_INFO", "")
        if (not self.recordings.entries or environ["REQUEST_METHOD"] not in ("GET", "HEAD")
                or not path.startswith("/feeds/") or not path.endswith(FEED_SUFFIXES)):
            return None
        live: Live = self.app.extensions["feedsvc.live"]
        gzip = "gzip" if accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING", "")) else "identity"
        return (live.index.version, environ.get("wsgi.url_scheme", ""),
                environ.get("HTTP_HOST", ""), environ.get("SCRIPT_NAME", ""), path,
                environ.get("QUERY_STRING", ""), gzip)

    def _record(self, key: Key, environ: dict[str, Any],
                start_response: StartResponse) -> Iterable[bytes]:
        sent: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            sent[:] = [status, headers]
            return start_response(status, headers, exc_info)

        body = self.wsgi_app(environ, capture)
        mark = environ.get(MARK)
        if mark is None or not sent or not sent[0].startswith("200 "):
            return body
        chunks = list(body)
        if hasattr(body, "close"):
            body.close()
        headers = [(k, v) for k, v in sent[1] if k.lower() != "x-request-id"]
        self.recordings.put(key, Recording(mark[0], mark[1], headers,
                                 [(k, v) for k, v in headers if k.lower() not in _NOT_IN_304],
                                 b"".join(chunks)))
        return chunks

    def _replay(self, found: Recording, environ: dict[str, Any],
                start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        request_id = observe.request_id(environ.get("HTTP_X_REQUEST_ID", ""))
        if current(environ.get("HTTP_IF_NONE_MATCH"), environ.get("HTTP_IF_MODIFIED_SINCE"),
                   found.validators):
            status, code, headers, body = "304 Not Modified", 304, found.not_modified, b""
        else:
            status, code, headers, body = "200 OK", 200, found.headers, found.body
        start_response(status, [*headers, ("X-Request-ID", request_id)])
        if code == 200:  # as in the app: a 304 from validators alone is no cache lookup
            feed_cache: FeedCache = self.app.extensions["feedsvc.cache"]
            feed_cache.count_hit()
        observe.record(route=found.route, method=environ["REQUEST_METHOD"],
                       path=environ.get("PATH_INFO", ""), query=environ.get("QUERY_STRING", ""),
                       status=code, size=len(body), seconds=time.perf_counter() - started,
                       cache="hit" if code == 200 else "-", cache_errors=0, remote=environ.get("REMOTE_ADDR"),
                       request_id=request_id)
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]


def init_app(app: Flask) -> None:
    """Put the replay in front of the app (inside any proxy fix installed later)."""
    app.wsgi_app = Replay(app, app.wsgi_app, app.config["FEEDSVC_MEMO_ENTRIES"])  # type: ignore[method-assign]
