"""Static export: every feed, fetched through the app itself, written with a manifest."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from flask import Flask

from .. import state
from ..clock import view_of
from ..dataset.media import local_files
from ..feeds.catalogue import catalogue
from ..feeds.render import RENDERERS
from ..feeds.urls import Scope, Urls
from ..state import Live

OPML = "/feeds.opml"
STYLESHEET = "/feeds/feed.xsl"
MANIFEST = "manifest.json"


class ExportError(RuntimeError):
    """A feed could not be exported (the app did not answer 200)."""


def feed_paths(app: Flask) -> list[str]:
    """Return the path of every feed: all, each country and topic with releases readers can
    see now, every format."""
    view = view_of(app, state.live(app).index)
    listed = catalogue(view)
    scopes = [Scope()]
    scopes += sorted((c.scope for c in listed.countries), key=lambda s: s.path)
    scopes += sorted((t.scope for t in listed.topics if t.releases), key=lambda s: s.path)
    here = Urls("/")
    paths = [here.feed(scope, fmt) for scope in scopes for fmt in sorted(RENDERERS)]
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    # The OPML list, and the XSLT that every RSS and Atom feed names, when the app serves them.
    paths += [path for path in (OPML, STYLESHEET) if path in rules]
    # The pictures and attachments the feeds link to (a static server ignores their ?v=).
    paths += [here.media(src) for src in local_files(view.index.dataset.site, view.visible())]
    return paths


def _write(target: Path, body: bytes) -> None:
    # Replace whole files, so a static server never sends half of one.
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(body)
    os.replace(partial, target)


def export(app: Flask, directory: Path) -> dict[str, Any]:
    """Write every feed below `directory` as served, then manifest.json; return the manifest."""
    client, files = app.test_client(), []
    for path in feed_paths(app):
        response = client.get(path)
        if response.status_code != 200:
            raise ExportError(f"{path}: the app answered {response.status_code}")
        body = response.get_data()
        _write(directory / path.lstrip("/"), body)
        files.append({"path": path.lstrip("/"), "content_type": response.content_type,
                      "sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body),
                      "etag": response.headers.get("ETag")})
    live: Live = state.live(app)
    manifest = {"base_url": app.config["FEEDSVC_BASE_URL"], "dataset_version": live.index.version,
                "files": files}
    _write(directory / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n")
    return manifest
