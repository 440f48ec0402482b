"""Security headers of every response, decided in one place: per route, by a policy table."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from flask import Flask, Response, request

# HTML: no script, no plugin, no foreign style; images from this site or over https (a
# release's picture may be an https:// URL); links and forms stay on this site.
# Inline style is allowed because the templates carry their own small <style> block.
_HTML = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https:; base-uri 'none'; "
         "form-action 'self'")
# Anything else (feeds, text errors, scripts): nothing may run or load if a browser renders it.
DATA_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; sandbox"
# Files of releases (/media/): nothing runs or loads but the file itself; Chromium shows audio
# and video in a <video> of its own that fetches the file again (media-src), from the opaque
# origin the sandbox gives it, hence CORS. An HTML or SVG attachment runs nothing either.
MEDIA_CSP = ("default-src 'none'; media-src 'self'; base-uri 'none'; form-action 'none'; "
             "frame-ancestors 'none'; sandbox")
REFERRER_POLICY = "strict-origin-when-cross-origin"


@dataclass(frozen=True)
class Policy:
    """How one route's responses may be used by other sites."""

    html_csp: str  # the Content-Security-Policy of its text/html responses
    cors: bool  # GET and HEAD answers may be read by scripts of any origin (never with credentials)
    data_csp: str = DATA_CSP  # that of its other responses


PAGE = Policy(f"{_HTML}; frame-ancestors 'none'", cors=False)
FEED = Policy(PAGE.html_csp, cors=True)
# The feed directory: its own script and stylesheet from /static/ (copy buttons), no inline script.
DIRECTORY = Policy(PAGE.html_csp.replace("style-src 'unsafe-inline'",
                                         "style-src 'self' 'unsafe-inline'; script-src 'self'"),
                   cors=False)
# Files of releases: never run as the site's own page, whatever their type (an HTML attachment
# is downloaded, but a browser may still be led to open it); public, like the feeds naming them.
MEDIA = Policy(MEDIA_CSP, cors=True, data_csp=MEDIA_CSP)
# Pages made to be shown in an iframe on other sites: framing allowed, nothing else relaxed.
EMBED = Policy(f"{_HTML}; frame-ancestors *", cors=True)

# Blueprint or endpoint name -> policy (an endpoint's entry wins); anything else is a PAGE.
# A view may set a stricter Content-Security-Policy of its own (embed: hashed script and style).
POLICIES: dict[str, Policy] = {"feeds": FEED, "embed": EMBED, "directory.opml": FEED,
                               "directory.directory": DIRECTORY,
                               "directory.stylesheet": FEED, "media": MEDIA,
                               # WebFinger (RFC 7033 asks for CORS), NodeInfo, actors: public data.
                               "activitypub": FEED}


def policy_for(endpoint: str | None) -> Policy:
    """Return the policy of an endpoint (`blueprint.view`), by its own entry or its blueprint's."""
    if endpoint is None:
        return PAGE
    blueprint = endpoint.rpartition(".")[0]
    return POLICIES.get(endpoint) or POLICIES.get(blueprint) or PAGE


@lru_cache(maxsize=256)
def security_headers(endpoint: str | None, content_type: str | None,
                     method: str) -> tuple[tuple[str, str], ...]:
    """Return the security headers of a response of `endpoint` (the fast path's too)."""
    policy = policy_for(endpoint)
    html = (content_type or "").partition(";")[0].strip() == "text/html"
    found: tuple[tuple[str, str], ...] = (
        ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", REFERRER_POLICY),
        ("Content-Security-Policy", policy.html_csp if html else policy.data_csp))
    if policy.cors and method in ("GET", "HEAD"):
        found += (("Access-Control-Allow-Origin", "*"),)
    return found


def _secure(response: Response) -> Response:
    headers = response.headers
    headers.pop("Access-Control-Allow-Origin", None)
    headers.pop("Access-Control-Allow-Credentials", None)
    for name, value in security_headers(request.endpoint, response.mimetype, request.method):
        if name == "Content-Security-Policy":  # a view may have set a stricter one (embed)
            headers.setdefault(name, value)
        else:
            headers[name] = value
    return response


def init_app(app: Flask) -> None:
    app.after_request(_secure)
