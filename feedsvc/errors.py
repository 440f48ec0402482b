"""One place that turns errors into uniform responses: text for feeds, HTML for pages."""
from __future__ import annotations

from flask import Flask, Response, render_template, request
from werkzeug.exceptions import BadRequest, HTTPException

from .query import QueryError


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
    response.headers["Cache-Control"] = "no-store" if code >= 500 else "public, max-age=60"
    if error.code == 405:  # only its Allow: werkzeug's headers also say text/html, for its own body
        response.headers.update((k, v) for k, v in error.get_headers() if k.lower() == "allow")
    return response


def _query_error(error: QueryError) -> Response:
    return _http_error(BadRequest(description=f"{error}."))


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(QueryError, _query_error)
