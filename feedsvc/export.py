"""Static export: every feed, fetched through the app itself, written with a manifest."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from flask import Flask

from . import state
from .render import RENDERERS
from .state import Live
from .urls import Scope, Urls

OPML = "/feeds.opml"
STYLESHEET = "/feeds/feed.xsl"
MANIFEST = "manifest.json"


class ExportError(RuntimeError):
    """A feed could not be exported (the app did not answer 200)."""


def feed_paths(app: Flask) -> list[str]:
    """Return the path of every feed: all, each country and topic with releases, every format."""
    live: Live = state.live(app)
    index = live.index
    scopes = [Scope()]
    scopes += [Scope("countries", code.lower()) for code in sorted(index.by_country)]
    scopes += [Scope("topics", slug) for slug in sorted(index.by_topic)]
    here = Urls("/")
    paths = [here.feed(scope, fmt) for scope in scopes for fmt in sorted(RENDERERS)]
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    # The OPML list, and the XSLT that every RSS and Atom feed names, when the app serves them.
    paths += [path for path in (OPML, STYLESHEET) if path in rules]
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
