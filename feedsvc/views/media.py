"""/media/…: the pictures and attachments of releases, from the dataset's media/ folder, and
/favicon.ico."""
from __future__ import annotations

import hashlib
import io
import os
import stat
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib.resources import files
from pathlib import Path
from typing import IO

from flask import Blueprint, abort, request
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.utils import send_file
from werkzeug.wrappers import Response

from ..clock import current_view
from ..dataset.media import content_type, file_facts, locate, media_root
from ..dataset.visible import StoreView
from ..feeds.urls import MEDIA_HASH
from ..http.conditional import Validators, media_cache_control, shown_inline

bp = Blueprint("media", __name__)
# The files the visible releases name, by src: built once per dataset version and moment
# (a scheduled release going live, a notice ending), not per request.
_named: tuple[tuple[str, str], frozenset[str]] = (("", ""), frozenset())


def named_files(view: StoreView) -> frozenset[str]:
    """Return the src of every local file the releases readers can see name (only these are
    served: a picture of a draft or of a release not yet published must not be found by
    guessing its name)."""
    global _named
    moment, found = _named
    if moment != (view.index.version, view.token):
        found = frozenset(view.media_files())
        _named = ((view.index.version, view.token), found)  # one assignment: thread-safe
    return found


@dataclass(frozen=True, slots=True)
class _File:
    """A file as it is now: keyed by size and time of change, so a replaced one is hashed afresh."""

    path: Path
    size: int
    mtime_ns: int


@lru_cache(maxsize=4096)
def _validators(file: _File) -> Validators:
    _, digest = file_facts(file.path)  # read in chunks: no whole copy in memory
    return Validators(digest[:32], file.mtime_ns // 1_000_000_000)


def send(stream: IO[bytes], name: str, size: int, validators: Validators, hashed: bool
         ) -> Response:
    """Answer with an open file (closed with the response), by Werkzeug's rules: 200, 206 for
    a satisfiable Range (If-Range checked), 304, or RequestedRangeNotSatisfiable (a 416).
    conditional.py decides the caching headers and which types are shown inline."""
    mimetype = content_type(name)
    environ = request.environ
    # gunicorn's file wrapper sends a whole file with sendfile(2) but cannot seek: a range far
    # into a large file would be read from its start. Werkzeug's own wrapper seeks.
    wrapping = {} if "HTTP_RANGE" in environ else environ
    response = send_file(stream, wrapping, mimetype=mimetype, download_name=Path(name).name,
                         as_attachment=not shown_inline(mimetype), conditional=False,
                         etag=validators.etag,
                         # None: no date for feedsvc's own icon (conditional.py says why)
                         last_modified=validators.last_modified or None)
    response.content_length = size
    response.headers["Cache-Control"] = media_cache_control(hashed)
    try:
        return response.make_conditional(environ, accept_ranges=True, complete_length=size)
    except RequestedRangeNotSatisfiable:
        response.close()
        raise


def _serve(path: Path, hashed_as: str | None) -> Response:
    """Send the file at `path` (OSError when it cannot be opened)."""
    stream = path.open("rb")
    try:
        status = os.fstat(stream.fileno())  # the file opened, even if replaced meanwhile
        if not stat.S_ISREG(status.st_mode):
            raise IsADirectoryError(f"{path} is not a regular file")
        validators = _validators(_File(path, status.st_size, status.st_mtime_ns))
    except OSError:
        stream.close()
        raise
    hashed = hashed_as == validators.etag[:MEDIA_HASH]
    return send(stream, path.name, status.st_size, validators, hashed)


@cache
def _default_icon() -> tuple[bytes, Validators]:
    body = files("feedsvc").joinpath("static/favicon.ico").read_bytes()
    return body, Validators(hashlib.sha256(body).hexdigest()[:32], 0)


@bp.get("/favicon.ico")
def favicon() -> Response:
    """Serve the site's icon (a file below media/), else feedsvc's: never a 404."""
    index = current_view().index
    icon = index.site.icon
    found = locate(media_root(index.source), icon.src) if icon and not icon.remote else None
    try:
        if found is not None:
            return _serve(found, None)
    except OSError:
        pass  # gone since the dataset was loaded: the default is better than an error
    body, validators = _default_icon()
    return send(io.BytesIO(body), "favicon.ico", len(body), validators, False)


@bp.get("/media/<path:name>")
def media(name: str) -> Response:
    view = current_view()
    found = (locate(media_root(view.index.source), name) if name in named_files(view)
             else None)
    try:
        if found is not None:
            return _serve(found, request.args.get("v"))
    except OSError:
        pass
    abort(404, description=f"No media file {name[:100]!r}.")
