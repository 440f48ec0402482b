"""/media/…: the pictures and attachments of releases, from the dataset's media/ folder, and
/favicon.ico."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib.resources import files
from pathlib import Path

from flask import Blueprint, Response, abort, request

from ..clock import current_view
from ..dataset.lifecycle import View
from ..dataset.media import content_type, file_facts, local_files, locate, media_root
from ..feeds.urls import MEDIA_HASH
from ..http.conditional import Conditions, Rendered, Validators, media_answer
from ..state import current_index
from .common import to_response

bp = Blueprint("media", __name__)
# Files up to this size stay in memory (at most _KEPT of them); larger ones are read for
# each 200, so that a folder of big PDFs cannot fill a worker's memory.
_KEEP_BYTES, _KEPT = 1 << 20, 64
# The files the visible releases name, by src: built once per dataset version and moment
# (a scheduled release going live, a notice ending), not per request.
_named: tuple[tuple[str, str], frozenset[str]] = (("", ""), frozenset())


def named_files(view: View) -> frozenset[str]:
    """Return the src of every local file the releases readers can see name (only these are
    served: a picture of a draft or of a release not yet published must not be found by
    guessing its name)."""
    global _named
    moment, found = _named
    if moment != (view.index.version, view.token):
        found = frozenset(local_files(view.index.dataset.site, view.visible()))
        _named = ((view.index.version, view.token), found)  # one assignment: thread-safe
    return found


@dataclass(frozen=True, slots=True)
class _File:
    """A file as it is now: keyed by size and time of change, so a replaced one is read afresh."""

    path: Path
    size: int
    mtime_ns: int

    @classmethod
    def at(cls, path: Path) -> _File:
        status = os.stat(path)
        return cls(path, status.st_size, status.st_mtime_ns)


@lru_cache(maxsize=4096)
def _validators(file: _File) -> Validators:
    _, digest = file_facts(file.path)  # read in chunks: no whole copy in memory
    return Validators(digest[:32], file.mtime_ns // 1_000_000_000)


def _read(file: _File) -> Rendered:
    validators = _validators(file)
    return Rendered(validators, content_type(file.path.name), file.path.read_bytes(), b"")


_kept = lru_cache(maxsize=_KEPT)(_read)


def _fetch(file: _File) -> Rendered:
    return _kept(file) if file.size <= _KEEP_BYTES else _read(file)


def _serve(file: _File, hashed_as: str | None) -> Response:
    validators = _validators(file)
    hashed = hashed_as == validators.etag[:MEDIA_HASH]
    return to_response(media_answer(Conditions.of(request.environ), hashed,
                                    lambda: _fetch(file), validators))


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
        if found is not None:
            return _serve(_File.at(found), None)
    except OSError:
        pass  # gone since the dataset was loaded: the default is better than an error
    default = _default_icon()
    return to_response(media_answer(Conditions.of(request.environ), False, lambda: default,
                                    default.validators))


@bp.get("/media/<path:name>")
def media(name: str) -> Response:
    view = current_view()
    found = (locate(media_root(view.index.dataset.source), name) if name in named_files(view)
             else None)
    try:
        if found is not None:
            return _serve(_File.at(found), request.args.get("v"))
    except OSError:
        pass
    abort(404, description=f"No media file {name[:100]!r}.")
