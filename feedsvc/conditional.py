"""The one home of HTTP caching decisions: validators, 200 or 304, and the caching headers.

Every cacheable route (feeds, OPML, the XSLT, embed.js, embed frames, the directory, the HTML
listings) and the pre-Flask fast path answer through `respond` or `answer`: a `Rendered` body
(or only its validators) and the request's `Conditions` in, an `Answer` out. Caches store
`Rendered` values; only this module turns them into status and headers.
"""
from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from werkzeug.http import http_date, parse_accept_header, parse_date, parse_etags, quote_etag

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Validators:
    """What a conditional request is checked against, kept apart so a 304 needs no body."""

    etag: str
    last_modified: int  # Unix seconds


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered body with its validators, compressed once when it is made."""

    validators: Validators
    content_type: str
    body: bytes
    gzipped: bytes

    @classmethod
    def build(cls, body: bytes, content_type: str, last_modified: datetime) -> Rendered:
        """Compute the strong ETag and the gzip form of a body, once."""
        etag = hashlib.sha256(body).hexdigest()[:32]
        # mtime=0: the same bytes compress to the same bytes on every worker.
        zipped = gzip.compress(body, compresslevel=6, mtime=0)
        return cls(Validators(etag, int(last_modified.timestamp())), content_type, body, zipped)


@dataclass(frozen=True, slots=True)
class Conditions:
    """What a request says about the copy it holds and the codings it takes."""

    if_none_match: str | None = None
    if_modified_since: str | None = None
    gzip: bool = False

    @classmethod
    def of(cls, environ: Mapping[str, Any]) -> Conditions:
        """Read the conditions from a WSGI environ (Flask's request.environ, or the raw one)."""
        return cls(environ.get("HTTP_IF_NONE_MATCH"), environ.get("HTTP_IF_MODIFIED_SINCE"),
                   accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING", "")))

    @property
    def conditional(self) -> bool:
        return bool(self.if_none_match or self.if_modified_since)


@dataclass(frozen=True, slots=True)
class Answer:
    """A decided response: status, headers and body (empty for a 304)."""

    status: int
    headers: Headers
    body: bytes


def cache_control(config: Mapping[str, Any]) -> str:
    """Return the Cache-Control of every cacheable response, as configured."""
    return (f"public, max-age={config['FEEDSVC_MAX_AGE']}, "
            f"stale-while-revalidate={config['FEEDSVC_STALE_WHILE_REVALIDATE']}")


def accepts_gzip(header: str) -> bool:
    """Tell whether an Accept-Encoding header value accepts gzip."""
    # Most pollers send no header, or one without gzip: skip parsing it on every request.
    if "gzip" not in header and "*" not in header:
        return False
    return parse_accept_header(header)["gzip"] > 0


def _etag(validators: Validators, gzipped: bool) -> str:
    # Each content coding is its own representation and needs its own strong ETag.
    return f"{validators.etag}-gz" if gzipped else validators.etag


def is_fresh(conditions: Conditions, validators: Validators) -> bool:
    """Tell whether the client's copy is still valid (RFC 9110 13.2.2: If-None-Match, when
    given, decides; else If-Modified-Since)."""
    if conditions.if_none_match:
        etags = parse_etags(conditions.if_none_match)
        return any(etags.contains_weak(_etag(validators, z)) for z in (False, True))
    since = parse_date(conditions.if_modified_since) if conditions.if_modified_since else None
    return since is not None and validators.last_modified <= since.timestamp()


@lru_cache(maxsize=4096)  # the same few feeds on every request: build their headers once
def _headers(validators: Validators, gzipped: bool, cache_control: str,
             content_type: str | None) -> Headers:
    """Return the headers of a 200 (with its content type) or of a 304 (without)."""
    common = (("ETag", quote_etag(_etag(validators, gzipped))), ("Cache-Control", cache_control),
              ("Vary", "Accept-Encoding"))
    if content_type is None:  # a 304 carries no representation metadata (RFC 9110 15.4.5)
        return common
    coding = (("Content-Encoding", "gzip"),) if gzipped else ()
    return (("Content-Type", content_type), *coding,
            ("Last-Modified", http_date(validators.last_modified)), *common)


def answer(rendered: Rendered, conditions: Conditions, cache_control: str) -> Answer:
    """Answer with the body (gzip where accepted), or 304 when the client's copy is fresh."""
    validators = rendered.validators
    if conditions.conditional and is_fresh(conditions, validators):
        return Answer(304, _headers(validators, conditions.gzip, cache_control, None), b"")
    body = rendered.gzipped if conditions.gzip else rendered.body
    return Answer(200, _headers(validators, conditions.gzip, cache_control, rendered.content_type),
                  body)


def respond(conditions: Conditions, cache_control: str, fetch: Callable[[], Rendered],
            validators: Callable[[], Validators | None] = lambda: None) -> Answer:
    """Answer a conditional request from `validators()` alone when they say the copy is fresh;
    else `fetch()` the body (from a cache, or rendered) and `answer` with it."""
    if conditions.conditional:
        known = validators()
        if known is not None and is_fresh(conditions, known):
            return Answer(304, _headers(known, conditions.gzip, cache_control, None), b"")
    return answer(fetch(), conditions, cache_control)
