"""Pictures and attachments of releases: read from the YAML, checked against the media/ folder.

A `src` is either a path below the dataset root's `media/` folder (its length, type and
content hash are taken from the file) or an absolute https:// URL (then `type` and `length`
are given in the YAML). Local files are addressed by their content hash in feed URLs, so a
changed file gets a new URL: media files are part of the dataset (see docs/dataset.md).
"""
from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .fields import Fields
from .problems import Problem
from .yamlsource import LocatedMap

if TYPE_CHECKING:
    from .records import Release, Site

MEDIA_DIR = "media"
UNKNOWN_TYPE = "application/octet-stream"
# Python's own table only, not the host's /etc/mime.types: every instance says the same type.
_TYPES = mimetypes.MimeTypes()
_OFFICE = "application/vnd.openxmlformats-officedocument."
for _ext, _type in ((".webp", "image/webp"), (".avif", "image/avif"),
                    (".docx", _OFFICE + "wordprocessingml.document"),
                    (".xlsx", _OFFICE + "spreadsheetml.sheet"),
                    (".pptx", _OFFICE + "presentationml.presentation"),
                    (".odt", "application/vnd.oasis.opendocument.text")):
    _TYPES.add_type(_type, _ext)
_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")


@dataclass(frozen=True, slots=True)
class Media:
    """One picture or attachment of a release; `digest` is set for files below media/."""

    src: str  # a path below media/ (POSIX, no ..), or an https:// URL
    text: str  # the picture's alt text, or the attachment's title
    type: str  # MIME type
    length: int  # bytes
    digest: str | None = None  # sha256 of a local file, hex (None for a remote URL)
    # Where it was written, for problems found when the files are checked (not compared).
    file: str = field(default="", compare=False)
    line: int | None = field(default=None, compare=False)
    owner: str | None = field(default=None, compare=False)
    name: str = field(default="", compare=False)

    @property
    def remote(self) -> bool:
        return self.src.startswith("https://")

    @property
    def medium(self) -> str:
        """Return the Media RSS medium: image, audio, video or document."""
        major = self.type.partition("/")[0]
        return major if major in ("image", "audio", "video") else "document"


def media_root(dataset_root: str | Path) -> Path:
    """Return the media folder of a dataset (a folder, or the folder of a one-file dataset)."""
    root = Path(dataset_root)
    return (root if root.is_dir() else root.parent) / MEDIA_DIR


def content_type(path: str) -> str:
    """Return the MIME type a file name says (application/octet-stream when unknown)."""
    return _TYPES.guess_type(path, strict=False)[0] or UNKNOWN_TYPE


def _parts(src: str) -> list[str]:
    """Return the names of a relative POSIX path, as PurePosixPath(src).parts gives them
    (empty names and "." left out), without building the object."""
    return [name for name in src.split("/") if name and name != "."]


def local_path_problem(src: str) -> str | None:
    """Say what is wrong with a path below media/, or None: relative, POSIX, no `..`."""
    if src.startswith(("/", "\\")) or "\\" in src or ":" in src.split("/")[0]:
        return f"{src!r} must be a path below media/ (e.g. photos/a.jpg) or an https:// URL"
    parts = _parts(src)
    if any(p.startswith(".") for p in parts) or not parts:  # "..", and hidden names
        return f"{src!r} must not contain '..', '.' or hidden names: a path below media/"
    return None


def _src_problem(f: Fields, name: str, src: str, what: str) -> bool:
    """Record what is wrong with a src (an https:// URL or a path below media/); True if any."""
    if not src.startswith(("http://", "https://")):
        message = local_path_problem(src)
    elif f.url(name) is None:
        return True
    else:
        message = None if src.startswith("https://") else f"{src!r}: a remote {what} must be an https:// URL"
    if message is not None:
        f.problem(name, message)
    return message is not None


def _given_facts(sub: Fields, mapping: LocatedMap, remote: bool) -> None:
    """Record a remote src's missing type or length, or either given for a file below media/."""
    if not remote:
        for key in ("type", "length"):
            if key in mapping:
                sub.problem(key, "is taken from the file for a src below media/: leave it out")
        return
    if "type" not in mapping:
        sub.problem("type", "is required for an https:// src (e.g. image/jpeg)")
    length = mapping.get("length")
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
        sub.problem("length", "is required for an https:// src: its size in bytes, a positive "
                              "whole number")


def _read_one(f: Fields, name: str, mapping: object, text_key: str, image: bool) -> Media | None:
    if not isinstance(mapping, LocatedMap):
        f.problem(name, f"must be a mapping with src and {text_key}, e.g. "
                        f"{{src: photos/a.jpg, {text_key}: …}}")
        return None
    sub, before = Fields(f.file, mapping, f.owner, f.problems, f"{name}."), len(f.problems)
    sub.check_keys(frozenset(("src", text_key, "type", "length")), ("src", text_key))
    src, text = sub.text("src", limit=1000), sub.text(text_key, limit=500)
    given = sub.match("type", _MIME, "a MIME type such as image/jpeg") if "type" in mapping else None
    if src is not None:
        _src_problem(sub, "src", src, "file")
        _given_facts(sub, mapping, remote=src.startswith(("http://", "https://")))
    if len(f.problems) > before or src is None or text is None:
        return None
    kind = given or content_type(src)
    if image and not kind.startswith("image/"):
        sub.problem("src", f"{src!r} is not a picture ({kind})")
        return None
    length = mapping.get("length")
    return Media(src, text, kind, length if isinstance(length, int) else 0, None,
                 f.file, sub.line("src"), f.owner, f"{name}.src")


def read_image(f: Fields) -> Media | None:
    """Read a release's `image: {src, alt}`; None when absent or bad (problem recorded)."""
    if "image" not in f.mapping:
        return None
    return _read_one(f, "image", f.mapping["image"], "alt", image=True)


def read_picture(f: Fields, name: str, text: str) -> Media | None:
    """Read a site picture given as a plain src (icon, logo); None when absent or bad."""
    if name not in f.mapping:
        return None
    src = f.text(name, limit=1000)
    if src is None or _src_problem(f, name, src, "picture"):
        return None
    kind = content_type(urlsplit(src).path)
    if not kind.startswith("image/"):
        f.problem(name, f"{src!r} is not a picture ({kind}): name it .ico, .png, .svg, .jpg …")
        return None
    return Media(src, text, kind, 0, None, f.file, f.line(name), None, name)


def read_attachments(f: Fields) -> tuple[Media, ...]:
    """Read a release's `attachments: [{src, title}, …]`."""
    if "attachments" not in f.mapping:
        return ()
    raw = f.mapping["attachments"]
    if not isinstance(raw, list) or not raw:
        f.problem("attachments", "must be a list of {src, title} mappings")
        return ()
    found = [_read_one(f, f"attachments[{n}]", item, "title", image=False)
             for n, item in enumerate(raw, 1)]
    return tuple(m for m in found if m is not None)


def release_media(release: Release) -> tuple[Media, ...]:
    """Return a release's picture (if any) and attachments."""
    return ((release.image,) if release.image else ()) + release.attachments


def file_facts(path: Path) -> tuple[int, str]:
    """Return a regular file's length and sha256 (hex); OSError when it cannot be read."""
    with path.open("rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            raise IsADirectoryError(f"{path} is not a regular file")
        digest = hashlib.file_digest(stream, "sha256")
        return stream.tell(), digest.hexdigest()


def locate(root: Path, src: str) -> Path | None:
    """Return the file `src` names below the media folder `root`, or None if it would leave it
    (through `..` or a symbolic link) or is not a regular file."""
    if local_path_problem(src) is not None:
        return None
    top = os.path.realpath(root)
    real = os.path.realpath(os.path.join(top, *_parts(src)))
    if os.path.commonpath([top, real]) != top or not os.path.isfile(real):
        return None
    return Path(real)


def _resolve(root: Path, media: Media, problems: list[Problem]) -> Media | None:
    if media.remote:
        return media
    path = locate(root, media.src)
    if path is None:
        outside = os.path.lexists(root / media.src)
        problems.append(Problem(media.file, media.line, media.owner, media.name,
                                f"{media.src!r} " + ("leaves media/ through a link, or is not "
                                                     "a regular file" if outside else
                                                     f"is not a file in {root}")))
        return None
    try:
        length, digest = file_facts(path)
    except OSError as exc:
        problems.append(Problem(media.file, media.line, media.owner, media.name,
                                f"{media.src!r} cannot be read: {exc}"))
        return None
    return replace(media, length=length, digest=digest)


def resolve(root: Path, site: Site | None, releases: list[Release],
            problems: list[Problem]) -> tuple[Site | None, list[Release]]:
    """Check the site's and each release's local media files; fill in their length and hash."""
    if not (site is not None and (site.icon or site.logo)) \
            and not any(r.image or r.attachments for r in releases):
        return site, list(releases)  # nothing to look up: not even the media folder's stat
    folder = media_root(root)
    if site is not None and (site.icon or site.logo):
        site = replace(site, icon=site.icon and _resolve(folder, site.icon, problems),
                       logo=site.logo and _resolve(folder, site.logo, problems))
    done: list[Release] = []
    for release in releases:
        if release.image or release.attachments:
            attachments = (_resolve(folder, m, problems) for m in release.attachments)
            release = replace(release, image=release.image and _resolve(folder, release.image, problems),
                              attachments=tuple(a for a in attachments if a is not None))
        done.append(release)
    return site, done
