"""Per-request observation: the request id, one access log line, and the request metrics."""
from __future__ import annotations

import logging
import re
import secrets
import time

from flask import Flask, Response, g, has_request_context, request

from .. import state
from ..operations import logs, metrics

access_log = logging.getLogger("feedsvc.access")

# A caller's id is echoed into headers and logs: only short, plain tokens are taken.
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+=@/-]{0,127}")
UNMATCHED = "(unmatched)"


def request_id(given: str) -> str:
    """Return the caller's X-Request-ID when it is a plain short token, else a new id."""
    return given if REQUEST_ID.fullmatch(given) else secrets.token_hex(16)


def record(*, route: str, method: str, path: str, query: str, status: int, size: int | None,
           seconds: float, cache: str, cache_errors: int, remote: str | None,
           request_id: str) -> None:
    """Count one answered request in the metrics and write its access line."""
    metrics.observe_request(route, method, status, seconds)
    if access_log.isEnabledFor(logging.INFO):
        logs.log_fields(access_log, "request", {
            "method": method, "path": path, "query": query, "status": status, "bytes": size,
            "duration_ms": round(seconds * 1000, 2), "cache": cache, "cache_errors": cache_errors,
            "remote": remote, "request_id": request_id})


def _start() -> None:
    g.started = time.perf_counter()
    g.request_id = request_id(request.headers.get("X-Request-ID", ""))


def _cache_event(event: str) -> None:
    metrics.cache_event(event)
    if not has_request_context():
        return
    if event == "error":
        g.cache_errors = g.get("cache_errors", 0) + 1
    else:
        g.setdefault("cache", event)


def _finish(response: Response) -> Response:
    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    given_id = g.get("request_id") or secrets.token_hex(16)
    response.headers["X-Request-ID"] = given_id
    record(route=request.url_rule.rule if request.url_rule is not None else UNMATCHED,
           method=request.method, path=request.path,
           query=request.query_string.decode("latin-1"), status=response.status_code,
           size=None if response.is_streamed else response.calculate_content_length() or 0,
           seconds=seconds, cache=g.get("cache", "-"), cache_errors=g.get("cache_errors", 0),
           remote=request.remote_addr, request_id=given_id)
    return response


def init_app(app: Flask) -> None:
    """Register first, so that the timing covers every other hook."""
    app.before_request(_start)
    app.after_request(_finish)
    feed_cache = state.feed_cache(app)
    feed_cache.on_event = _cache_event
    feed_cache.on_render = metrics.RENDER.observe
