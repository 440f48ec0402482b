"""Validators (ETag, Last-Modified), 304s, Cache-Control and compression of rendered bytes."""
from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from datetime import datetime

from flask import Request, Response
from werkzeug.http import http_date, parse_accept_header, parse_date, parse_etags, quote_etag


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


def prepare(body: bytes, content_type: str, last_modified: datetime) -> Rendered:
    """Compute the strong ETag and the gzip form of a body, once."""
    etag = hashlib.sha256(body).hexdigest()[:32]
    # mtime=0: the same bytes compress to the same bytes on every worker.
    gzipped = gzip.compress(body, compresslevel=6, mtime=0)
    return Rendered(Validators(etag, int(last_modified.timestamp())), content_type, body, gzipped)


Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Variant:
    """One content coding of a feed, with its response headers computed once."""

    body: bytes
    headers: Headers  # of a 200
    not_modified: Headers  # of a 304


@dataclass(frozen=True, slots=True)
class Prepared:
    """A rendered feed as this process sends it: both codings, headers ready."""

    rendered: Rendered
    identity: Variant
    gzip: Variant

    @property
    def validators(self) -> Validators:
        return self.rendered.validators


def _etag(validators: Validators, gzipped: bool) -> str:
    # Each content coding is its own representation and needs its own strong ETag.
    return f"{validators.etag}-gz" if gzipped else validators.etag


def _validator_headers(validators: Validators, gzipped: bool, cache_control: str) -> Headers:
    return (("ETag", quote_etag(_etag(validators, gzipped))),
            ("Last-Modified", http_date(validators.last_modified)),
            ("Cache-Control", cache_control),
            ("Vary", "Accept-Encoding"))


def ready(rendered: Rendered, cache_control: str) -> Prepared:
    """Compute the headers of both codings once, so serving a cached feed only sends bytes."""
    def variant(body: bytes, gzipped: bool) -> Variant:
        common = _validator_headers(rendered.validators, gzipped, cache_control)
        coding = (("Content-Encoding", "gzip"),) if gzipped else ()
        return Variant(body, (("Content-Type", rendered.content_type), *coding, *common), common)
    return Prepared(rendered, variant(rendered.body, False), variant(rendered.gzipped, True))


def accepts_gzip(header: str) -> bool:
    """Tell whether an Accept-Encoding header value accepts gzip."""
    # Most pollers send no header, or one without gzip: skip parsing it on every request.
    if "gzip" not in header and "*" not in header:
        return False
    return parse_accept_header(header)["gzip"] > 0


def wants_gzip(request: Request) -> bool:
    return accepts_gzip(request.headers.get("Accept-Encoding", ""))


def is_conditional(request: Request) -> bool:
    """Tell whether the request carries validators (checked without parsing them)."""
    return "HTTP_IF_NONE_MATCH" in request.environ or "HTTP_IF_MODIFIED_SINCE" in request.environ


def current(if_none_match: str | None, if_modified_since: str | None,
            validators: Validators) -> bool:
    """Tell whether a client's copy is current, from the raw header values (RFC 9110 13.2.2:
    If-None-Match, when given, decides; else If-Modified-Since)."""
    if if_none_match:
        etags = parse_etags(if_none_match)
        return any(etags.contains_weak(_etag(validators, z)) for z in (False, True))
    since = parse_date(if_modified_since) if if_modified_since else None
    return since is not None and validators.last_modified <= since.timestamp()


def not_modified(request: Request, validators: Validators) -> bool:
    """Tell whether the client's copy is current (If-None-Match wins over If-Modified-Since)."""
    environ = request.environ
    return current(environ.get("HTTP_IF_NONE_MATCH"), environ.get("HTTP_IF_MODIFIED_SINCE"),
                   validators)


def respond_not_modified(request: Request, validators: Validators, cache_control: str) -> Response:
    """Answer 304 from validators alone, when the body is not at hand."""
    return Response(status=304, headers=_validator_headers(
        validators, wants_gzip(request), cache_control))


def send(request: Request, prepared: Prepared) -> Response:
    """Answer with the body (gzip where accepted) or a 304 when the client's copy is current."""
    variant = prepared.gzip if wants_gzip(request) else prepared.identity
    if is_conditional(request) and not_modified(request, prepared.validators):
        return Response(status=304, headers=variant.not_modified)
    return Response(variant.body, headers=variant.headers)


def respond(request: Request, rendered: Rendered, cache_control: str) -> Response:
    """Answer with a rendered body that is not kept prepared (see `send`)."""
    return send(request, ready(rendered, cache_control))
