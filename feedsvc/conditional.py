"""Validators (ETag, Last-Modified), 304s, Cache-Control and compression of rendered bytes."""
from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Request, Response


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


def _etag(validators: Validators, gzipped: bool) -> str:
    # Each content coding is its own representation and needs its own strong ETag.
    return f"{validators.etag}-gz" if gzipped else validators.etag


def wants_gzip(request: Request) -> bool:
    return request.accept_encodings["gzip"] > 0


def not_modified(request: Request, validators: Validators) -> bool:
    """Tell whether the client's copy is current (If-None-Match wins over If-Modified-Since)."""
    if request.if_none_match:
        return any(request.if_none_match.contains_weak(_etag(validators, z)) for z in (False, True))
    since = request.if_modified_since
    return since is not None and validators.last_modified <= since.timestamp()


def _headers(response: Response, validators: Validators, gzipped: bool, cache_control: str) -> None:
    response.set_etag(_etag(validators, gzipped))
    response.last_modified = datetime.fromtimestamp(validators.last_modified, UTC)
    response.headers["Cache-Control"] = cache_control
    response.vary.add("Accept-Encoding")


def respond_not_modified(request: Request, validators: Validators, cache_control: str) -> Response:
    response = Response(status=304)
    _headers(response, validators, wants_gzip(request), cache_control)
    return response


def respond(request: Request, rendered: Rendered, cache_control: str) -> Response:
    """Answer with the body (gzip where accepted) or a 304 when the client's copy is current."""
    if not_modified(request, rendered.validators):
        return respond_not_modified(request, rendered.validators, cache_control)
    gz = wants_gzip(request)
    response = Response(rendered.gzipped if gz else rendered.body, content_type=rendered.content_type)
    if gz:
        response.headers["Content-Encoding"] = "gzip"
    _headers(response, rendered.validators, gz, cache_control)
    return response
