"""Which host a request is for: proxy headers only when trusted, and only allowed host names."""
from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def init_app(app: Flask) -> None:
    """Believe X-Forwarded-* from FEEDSVC_TRUST_PROXY proxies; answer 400 to other Hosts.

    Without a trusted proxy X-Forwarded-Host is ignored: a client could otherwise choose the
    host of every link in its response. FEEDSVC_ALLOWED_HOSTS is checked (by Flask's
    TRUSTED_HOSTS) on the host after the proxy's headers are applied.
    """
    hops = app.config["FEEDSVC_TRUST_PROXY"]
    if hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops)
    if app.config["FEEDSVC_ALLOWED_HOSTS"]:
        app.config["TRUSTED_HOSTS"] = app.config["FEEDSVC_ALLOWED_HOSTS"]
