"""One place that turns errors into uniform responses: text for feeds, HTML for pages."""
from __future__ import annotations

from flask import Flask, Response, render_template, request
from werkzeug.exceptions import BadRequest, Forbidden, HTTPException, ServiceUnavailable

from ..clock import current_view
from ..dataset.db import Unusable
from ..feeds.query import QueryError


class NotStored(HTTPException):
    """An error decided by who asks: never stored by a shared cache (`no-store`).

    A cache's key need not hold what the answer depended on (a header, the client's address),
    and one client's refusal would otherwise be everyone's.
    """


class HostRefused(NotStored, BadRequest):
    """A 400 decided by the Host or X-Forwarded-* headers of the request."""


class ClientRefused(NotStored, Forbidden):
    """A 403 decided by the client's address."""


def _is_page() -> bool:
    return not request.path.startswith("/feeds/")


def _http_error(error: HTTPException) -> Response:
    code, name = error.code or 500, error.name
    if _is_page() and request.accept_mimetypes.accept_html:
        body = render_template("error.html", code=code, name=name, description=error.description)
        response = Response(body, status=code, content_type="text/html; charset=utf-8")
    else:
        response = Response(f"{code} {name}: {error.description}\n", status=code,
                            content_type="text/plain; charset=utf-8")
    # A 416 answers the request's Range header, which no shared cache keys on.
    refused = code >= 500 or code == 416 or isinstance(error, NotStored)
    response.headers["Cache-Control"] = "no-store" if refused else _error_control()
    # Its own headers (405: Allow, 416: Content-Range), not its Content-Type: werkzeug's are for
    # its own body.
    response.headers.update((k, v) for k, v in error.get_headers()
                            if k.lower() != "content-type")
    return response


def _error_control() -> str:
    # A 404 for a release scheduled a few seconds from now must not outlive its publication.
    until = current_view().seconds_to_change()
    return f"public, max-age={60 if until is None else min(60, int(until))}"


def _query_error(error: QueryError) -> Response:
    return _http_error(BadRequest(description=f"{error}."))


def _unusable(error: Unusable) -> Response:
    # A worker that cannot open the state file: deleted while serving, until the writer writes
    # it again (within FEEDSVC_RELOAD_INTERVAL: reload.Reloader._keep). A reader retries.
    return _http_error(ServiceUnavailable(
        description="the state file cannot be read at the moment; retry shortly", retry_after=5))


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(QueryError, _query_error)
    app.register_error_handler(Unusable, _unusable)
