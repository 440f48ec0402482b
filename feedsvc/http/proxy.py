"""Which host a request is for: proxy headers only when trusted, and only allowed hosts and ports."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, current_app, redirect, request
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import RequestRedirect
from werkzeug.wrappers import Response as BaseResponse

from ..feeds.urls import Urls
from .conditional import IgnoreInvalidDates
from .errors import HostRefused

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
DEFAULT_PORTS = {"http": ":80", "https": ":443"}


class CanonicalHost:
    """WSGI middleware: the Host header in lowercase, without the scheme's default port.

    Host names are case-insensitive (RFC 9110 4.2.3); werkzeug accepts only lowercase ones, and
    links, cache keys and replays then see one spelling of each host.
    """

    def __init__(self, wsgi_app: WSGIApp) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST")
        if host:
            default = DEFAULT_PORTS.get(environ.get("wsgi.url_scheme", ""), "")
            host = host.lower()
            environ["HTTP_HOST"] = host.removesuffix(default) if default else host
        return self.wsgi_app(environ, start_response)


def split_host(host: str) -> tuple[str, str | None]:
    """Return a host's name and its port (None when it has none): `[::1]:80` -> `[::1]`, `80`."""
    name, colon, port = host.rpartition(":")
    if not colon or name.endswith(":") or (port.endswith("]")):  # no port, or a bare IPv6
        return host, None
    return name, port


def _matches(name: str, allowed: str) -> bool:
    return name == allowed or (allowed.startswith(".") and
                               (name.endswith(allowed) or name == allowed[1:]))


def host_allowed(host: str, allowed: list[str]) -> bool:
    """Whether an allowed entry names the host's name and its port (or, without one, none)."""
    name, port = split_host(host)
    return bool(host) and any(_matches(name, entry_name) and entry_port == port
                              for entry_name, entry_port in map(split_host, allowed))


def _check_host() -> None:
    # Here rather than Flask's TRUSTED_HOSTS: werkzeug ignores the port and cannot match an
    # IPv6 literal ("[::1]" is cut at its first colon).
    if not host_allowed(request.host, current_app.config["FEEDSVC_ALLOWED_HOSTS"]):
        raise HostRefused(description=f"The host {request.host[:80]!r} is not trusted here.")


def _redirect_to_base() -> BaseResponse | None:
    # werkzeug's own redirects (`/feeds` -> `/feeds/`, merged slashes) name the request's host;
    # with a base URL configured, every absolute URL the service gives names that instead.
    moved, base = request.routing_exception, current_app.config["FEEDSVC_BASE_URL"]
    if not isinstance(moved, RequestRedirect) or not base:
        return None
    target = urlsplit(moved.new_url)
    path = target.path.removeprefix(request.script_root)
    return redirect(Urls(base).at(path, target.query), code=moved.code)


def init_app(app: Flask) -> None:
    """Believe X-Forwarded-* from FEEDSVC_TRUST_PROXY proxies; answer 400 to other hosts.

    Without a trusted proxy X-Forwarded-Host is ignored: a client could otherwise choose the
    host of every link in its response. FEEDSVC_ALLOWED_HOSTS is checked on the host after the
    proxy's headers are applied, name and port (an entry without a port allows none, or the
    scheme's default), before any view runs.
    """
    app.wsgi_app = CanonicalHost(IgnoreInvalidDates(app.wsgi_app))  # type: ignore[method-assign]
    hops = app.config["FEEDSVC_TRUST_PROXY"]
    if hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops)
    if app.config["FEEDSVC_ALLOWED_HOSTS"]:
        app.before_request(_check_host)
    app.before_request(_redirect_to_base)
