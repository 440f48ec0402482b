"""/media/…: the pictures and attachments of releases, from the dataset's media/ folder."""
from __future__ import annotations

import hashlib
import os
from functools import cache, lru_cache
from importlib.resources import files
from pathlib import Path

from flask import Blueprint, Response, abort, request

from ..conditional import Conditions, Rendered, media_answer
from ..index import Index
from ..media import content_type, local_files, locate, media_root
from ..state import current_index
from ..urls import MEDIA_HASH
from .common import to_response

bp = Blueprint("media", __name__)
# The files the live dataset names, by src: built once per dataset version, not per request.
_named: tuple[str, frozenset[str]] = ("", frozenset())


def named_files(index: Index) -> frozenset[str]:
    """Return the src of every local file the releases of `index` name (only these are served:
    a picture of a release not yet published must not be found by guessing its name)."""
    global _named
    version, found = _named
    if version != index.version:
        found = frozenset(local_files(index.dataset.site, index.releases))
        _named = (index.version, found)  # one assignment: safe for the other threads
    return found


@lru_cache(maxsize=64)
def _read(path: Path, size: int, mtime_ns: int) -> Rendered:
    # Keyed by size and time of change too: a replaced file is read afresh.
    body = path.read_bytes()
    return Rendered.file(body, content_type(path.name), hashlib.sha256(body).hexdigest(),
                         mtime_ns / 1e9)


def _rendered(path: Path) -> Rendered:
    status = os.stat(path)
    return _read(path, status.st_size, status.st_mtime_ns)


@cache
def _default_icon() -> Rendered:
    body = files("feedsvc").joinpath("static/favicon.ico").read_bytes()
    return Rendered.file(body, "image/vnd.microsoft.icon", hashlib.sha256(body).hexdigest(), 0)


@bp.get("/favicon.ico")
def favicon() -> Response:
    """Serve the site's icon (a file below media/), else feedsvc's: never a 404."""
    index = current_index()
    icon = index.dataset.site.icon
    found = locate(media_root(index.dataset.source), icon.src) if icon and not icon.remote else None
    try:
        rendered = _rendered(found) if found else _default_icon()
    except OSError:
        rendered = _default_icon()
    return to_response(media_answer(rendered, Conditions.of(request.environ), hashed=False))


@bp.get("/media/<path:name>")
def media(name: str) -> Response:
    index = current_index()
    found = locate(media_root(index.dataset.source), name) if name in named_files(index) else None
    if found is None:
        abort(404, description=f"No media file {name[:100]!r}.")
    try:
        rendered = _rendered(found)
    except OSError:
        abort(404, description=f"No media file {name[:100]!r}.")
    hashed = request.args.get("v") == rendered.validators.etag[:MEDIA_HASH]
    return to_response(media_answer(rendered, Conditions.of(request.environ), hashed))
