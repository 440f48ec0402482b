"""Static export: every feed, fetched through the app itself, written with a manifest."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote

from flask import Flask

from .. import state
from ..clock import view_of
from ..feeds.catalogue import catalogue
from ..feeds.render import RENDERERS
from ..feeds.urls import Scope, Urls

OPML = "/feeds.opml"
STYLESHEET = "/feeds/feed.xsl"
MANIFEST = "manifest.json"


class ExportError(RuntimeError):
    """A feed could not be exported (the app did not answer 200)."""


def feed_paths(app: Flask) -> list[str]:
    """Return the path of every feed: all, each country with releases readers can see now,
    each topic (the OPML list names them all), every format."""
    with state.live(app).reader.read() as snapshot:
        view = view_of(app, snapshot)
        listed = catalogue(view)
        media = sorted(view.media_files())
    scopes = [Scope()]
    scopes += sorted((c.scope for c in listed.countries), key=lambda s: s.path)
    scopes += sorted((t.scope for t in listed.topics), key=lambda s: s.path)
    here = Urls("/")
    paths = [here.feed(scope, fmt) for scope in scopes for fmt in sorted(RENDERERS)]
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    # The OPML list, and the XSLT that every RSS and Atom feed names, when the app serves them.
    paths += [path for path in (OPML, STYLESHEET) if path in rules]
    # The pictures and attachments the feeds link to (a static server ignores their ?v=).
    paths += [here.media(src) for src in media]
    return paths


def _write(target: Path, body: bytes) -> None:
    # Only ever below a directory this process made (mode 700): nothing planted there to
    # follow. "x" creates the file or fails, never opening what is already there.
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "xb") as out:
        out.write(body)


def disk_path(url_path: str) -> str:
    """Return where a URL path's file lives in the export: its real name, not %-escaped (a
    static server decodes the URL), and never outside the export."""
    name = unquote(url_path).lstrip("/")
    if not name or any(part in ("", ".", "..") for part in PurePosixPath(name).parts) or \
            "\0" in name:
        raise ExportError(f"{url_path}: not a file name inside the export")
    return name


def export(app: Flask, directory: Path) -> dict[str, Any]:
    """Write every feed as served, then manifest.json, into a new directory that then
    replaces `directory` whole; return the manifest.

    Nothing is written through the old directory: whoever can write there could have planted
    links in it (to any file this user can write). A static server sees the old export or the
    new one, never a mix of the two.
    """
    target = directory.resolve()  # a link that names the folder itself is the operator's
    _check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        manifest = _fill(app, fresh)
        fresh.chmod(0o777 & ~_umask())  # as a directory made by mkdir would be
        _swap(fresh, target)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)  # gone already when the swap succeeded
    return manifest


def _fill(app: Flask, directory: Path) -> dict[str, Any]:
    client, files = app.test_client(), []
    for path in feed_paths(app):
        response = client.get(path)
        if response.status_code != 200:
            raise ExportError(f"{path}: the app answered {response.status_code}")
        body, name = response.get_data(), disk_path(path)
        _write(directory / name, body)
        files.append({"path": name, "content_type": response.content_type,
                      "sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body),
                      "etag": response.headers.get("ETag")})
    manifest = {"base_url": app.config["FEEDSVC_BASE_URL"],
                "dataset_version": state.live(app).index.version,
                "files": files}
    _write(directory / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n")
    return manifest


def _check_replaceable(target: Path) -> None:
    # The export replaces its folder whole: never a folder that holds something else.
    if target.exists() and any(target.iterdir()) and not (target / MANIFEST).is_file():
        raise ExportError(f"{target} is not empty and holds no {MANIFEST}: not an earlier "
                          "export, so it is not replaced")


def _swap(fresh: Path, target: Path) -> None:
    if not target.exists():
        os.rename(fresh, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    os.rename(target, old / "export")  # a rename moves links as links, following none
    os.rename(fresh, target)
    shutil.rmtree(old)  # removes links, never what they point to


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
