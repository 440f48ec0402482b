"""The one home of HTTP caching decisions: validators, 200 or 304, and the caching headers.

Every cacheable route (feeds, OPML, the XSLT, embed.js, embed frames, the directory, the HTML
listings) and the pre-Flask fast path answer through `respond` or `answer`: a `Rendered` body
(or only its validators) and the request's `Conditions` in, an `Answer` out. Caches store
`Rendered` values; only this module turns them into status and headers.
"""
from __future__ import annotations

import email.utils
import gzip
import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from werkzeug.http import http_date, parse_accept_header, parse_etags, quote_etag

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


def cache_control(config: Mapping[str, Any], until_change: float | None = None) -> str:
    """Return the Cache-Control of every cacheable response, as configured, but never
    outliving the next change of what is visible (`until_change` seconds from now: a
    scheduled release going live), stale copies included."""
    max_age, stale = config["FEEDSVC_MAX_AGE"], config["FEEDSVC_STALE_WHILE_REVALIDATE"]
    if until_change is not None:
        left = int(until_change)  # rounded down: a copy expires before the change, not after
        max_age = min(max_age, left)
        stale = min(stale, left - max_age)
    return f"public, max-age={max_age}, stale-while-revalidate={stale}"


# A media file whose URL carries its content hash never changes at that URL; one without
# the hash may be replaced, so caches keep it a day and then revalidate (ETag, Last-Modified).
IMMUTABLE = "public, max-age=31536000, immutable"
MEDIA_MAX_AGE = "public, max-age=86400"


def media_cache_control(hashed: bool) -> str:
    """Return the Cache-Control of a media file; `hashed`: its URL names its current hash."""
    return IMMUTABLE if hashed else MEDIA_MAX_AGE


def shown_inline(mimetype: str) -> bool:
    """Tell whether a media file may be shown in the browser: a raster picture, audio, video
    or a PDF. Anything else (HTML, SVG, office files, unknown types) is only downloaded: shown
    on our origin, its scripts or links would act as the site's own pages."""
    major = mimetype.partition("/")[0]
    return (major in ("audio", "video") or mimetype == "application/pdf"
            or (major == "image" and mimetype != "image/svg+xml"))


def accepts_gzip(header: str) -> bool:
    """Tell whether an Accept-Encoding header value accepts gzip."""
    # Most pollers send no header, or one without gzip: skip parsing it on every request.
    if "gzip" not in header and "*" not in header:
        return False
    return parse_accept_header(header)["gzip"] > 0


def _etag(validators: Validators, gzipped: bool) -> str:
    # Each content coding is its own representation and needs its own strong ETag.
    return f"{validators.etag}-gz" if gzipped else validators.etag


def http_date_seconds(value: str) -> float | None:
    """Return an HTTP-date as Unix seconds, or None when it is not one a clock can hold.

    RFC 9110 13.1.3: an If-Modified-Since that is not a valid HTTP-date is ignored. Besides
    text that is no date, that covers dates no calendar arithmetic can hold (year
    99999999999 overflows a C int on its way to a datetime; year 10000 is out of range).
    """
    # Readers send back the Last-Modified they were given: few distinct values, each parsed
    # twice per conditional request (IgnoreInvalidDates, then is_fresh), fast path included.
    # Only values of a date's length are kept: a client's 8 KB headers are not.
    return _date_seconds(value) if len(value) <= 64 else _date_seconds.__wrapped__(value)


@lru_cache(maxsize=1024)
def _date_seconds(value: str) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed.tzinfo is None:  # asctime form: GMT by definition
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    except (TypeError, ValueError, OverflowError):
        return None


class IgnoreInvalidDates:
    """WSGI middleware: drop an If-Modified-Since or If-Unmodified-Since that is no HTTP-date a
    clock can hold, as RFC 9110 13.1.3 says to ignore it, before any view reads it: werkzeug's
    send_file (static files) lets an absurd year's OverflowError through as a 500. An If-Range
    that is neither an entity-tag nor such a date matches nothing (13.1.5): the whole file is
    sent, so its Range goes with it."""

    HEADERS = ("HTTP_IF_MODIFIED_SINCE", "HTTP_IF_UNMODIFIED_SINCE")

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        for name in self.HEADERS:
            value = environ.get(name)
            if value is not None and http_date_seconds(value) is None:
                del environ[name]
        if_range = environ.get("HTTP_IF_RANGE")
        if if_range is not None and not if_range.lstrip().startswith(('"', 'W/"')) and \
                http_date_seconds(if_range) is None:
            del environ["HTTP_IF_RANGE"]
            environ.pop("HTTP_RANGE", None)
        return self.wsgi_app(environ, start_response)


def is_fresh(conditions: Conditions, validators: Validators) -> bool:
    """Tell whether the client's copy is still valid (RFC 9110 13.2.2: If-None-Match, when
    given, decides; else If-Modified-Since; a validator that does not parse is ignored)."""
    if conditions.if_none_match:
        etags = parse_etags(conditions.if_none_match)
        return any(etags.contains_weak(_etag(validators, z)) for z in (False, True))
    if not validators.last_modified:  # no date: If-Modified-Since is ignored (RFC 9110 13.1.3)
        return False
    since = http_date_seconds(conditions.if_modified_since) if conditions.if_modified_since else None
    return since is not None and validators.last_modified <= since


def dated(validators: Validators, changed_at: int) -> Validators:
    """Return the validators of a body of the dataset version committed at `changed_at` (Unix
    seconds; 0: none): its dates say when its newest entry was published or updated, but an
    edit that moves no date (a title fixed), a release added with an older date, one deleted
    or moved, a new topic label, change the body too, and a poller that sends only
    If-Modified-Since must see them. So a body is never dated before its version."""
    if validators.last_modified >= changed_at:
        return validators
    return Validators(validators.etag, changed_at)


def _sent(validators: Validators) -> Validators:
    """Return the validators as sent: a Last-Modified no later than now (RFC 9110 8.8.2.1),
    which, for a version committed within the second (or a withdrawal dated ahead), then never
    matches the later date is_fresh compares with: the copy is sent again until it does."""
    now = int(time.time())
    return validators if validators.last_modified <= now else Validators(validators.etag, now)


# What every cacheable answer varies on (its gzip form); a feed also on whether a person
# opened it in a browser tab (Sec-Fetch-Dest: document gets a page, views/feeds.py).
VARY = "Accept-Encoding"
FEED_VARY = "Accept-Encoding, Sec-Fetch-Dest"


@lru_cache(maxsize=4096)  # the same few feeds on every request: build their headers once
def _headers(validators: Validators, gzipped: bool, cache_control: str,
             content_type: str | None, vary: str = VARY) -> Headers:
    """Return the headers of a 200 (with its content type) or of a 304 (without)."""
    common = (("ETag", quote_etag(_etag(validators, gzipped))), ("Cache-Control", cache_control),
              ("Vary", vary))
    if content_type is None:  # a 304 carries no representation metadata (RFC 9110 15.4.5)
        return common
    coding = (("Content-Encoding", "gzip"),) if gzipped else ()
    # No date for a body that has none (the code's own assets: they change with an upgrade).
    modified = (("Last-Modified", http_date(validators.last_modified)),) \
        if validators.last_modified else ()
    return (("Content-Type", content_type), *coding, *modified, *common)


def answer(rendered: Rendered, conditions: Conditions, cache_control: str, vary: str = VARY,
           changed_at: int = 0) -> Answer:
    """Answer with the body (gzip where accepted), or 304 when the client's copy is fresh;
    `changed_at`: when the dataset version it was rendered from was committed (see dated)."""
    validators = dated(rendered.validators, changed_at)
    if conditions.conditional and is_fresh(conditions, validators):
        return Answer(304, _headers(validators, conditions.gzip, cache_control, None, vary), b"")
    body = rendered.gzipped if conditions.gzip else rendered.body
    return Answer(200, _headers(_sent(validators), conditions.gzip, cache_control,
                                rendered.content_type, vary), body)


def respond(conditions: Conditions, cache_control: str, fetch: Callable[[], Rendered],
            validators: Callable[[], Validators | None] = lambda: None, vary: str = VARY,
            changed_at: int = 0) -> Answer:
    """Answer a conditional request from `validators()` alone when they say the copy is fresh;
    else `fetch()` the body (from a cache, or rendered) and `answer` with it."""
    if conditions.conditional:
        known = validators()
        if known is not None and is_fresh(conditions, dated(known, changed_at)):
            return Answer(304, _headers(known, conditions.gzip, cache_control, None, vary), b"")
    return answer(fetch(), conditions, cache_control, vary, changed_at)
