"""/media/…: the pictures and attachments of releases, from the dataset's media/ folder."""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

from flask import Blueprint, Response, abort, request

from ..conditional import Conditions, Rendered, media_answer
from ..index import Index
from ..media import content_type, locate, media_root, release_media
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
        found = frozenset(m.src for r in index.releases for m in release_media(r) if not m.remote)
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
