"""`feedsvc new`: write a new release file with a fresh id, checked with the dataset first.

Ids are `pr-<year>-<number>`, numbered after every id the dataset holds and every id ever
issued, which the ledger `issued-ids.txt` in the dataset folder remembers (keep it with the
data, e.g. in the same git repository): a deleted release's id is never given again, so a
feed reader that saw it never confuses a new release with the old one. The first run also
records the ids already in the dataset. The dataset folder is locked while an id is chosen and
the file written, so two writers at once get two ids.
"""
from __future__ import annotations

import fcntl
import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ..dataset import read_files
from ..dataset.assemble import check_with_file
from ..dataset.problems import DatasetError, Problem

LEDGER = "issued-ids.txt"
LEDGER_HEAD = ("# Every release id `feedsvc new` has issued, one a line: never reused, even when\n"
               "# a release is deleted. Keep this file with the data.\n")
_ID = re.compile(r"^pr-(\d{4})-(\d+)$")
RELEASES_DIR = "releases"
# Shown above the release in the editor, and removed again if left as it is.
EDITOR_HEAD = (
    b"# A new release: fill in what is null, save and quit. The whole dataset is then checked,\n"
    b"# and the file saved only if it is valid (nothing is saved otherwise). Keep the id.\n"
    b"# published: 2024-03-05 or 2024-03-05T09:00:00+07:00 (later than now: scheduled)\n"
    b"# countries: [TH, KH]   topics: [slug, ...]   optional: dateline, body, url, language,\n"
    b"# image: {src, alt}, attachments: [{src, title}] (src below media/, or an https:// URL)\n")


class NewReleaseError(Exception):
    """The release cannot be written (not a dataset folder, editor failed, file exists)."""


@dataclass(frozen=True)
class Written:
    id: str
    path: Path


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on the dataset folder (not on the ledger: a failed attempt must
    leave no file behind) until the id is recorded."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _issued(root: Path) -> set[str]:
    try:
        lines = (root / LEDGER).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return set()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def _record(root: Path, ids: list[str], first: bool) -> None:
    with (root / LEDGER).open("a", encoding="utf-8") as ledger:
        ledger.write((LEDGER_HEAD if first else "") + "".join(f"{i}\n" for i in ids))
        ledger.flush()
        os.fsync(ledger.fileno())


def _known_ids(raw_files: list[tuple[str, bytes]]) -> set[str]:
    # Cheaper than a full load, and works on a dataset with problems: ids are `id: …` lines.
    found: set[str] = set()
    for _, raw in raw_files:
        found.update(m.decode() for m in re.findall(rb"(?m)^\s*-?\s*id:\s*['\"]?([a-z0-9._-]+)",
                                                    raw))
    return found


def next_id(year: int, taken: set[str]) -> str:
    """Return pr-<year>-<n> with n one more than the highest number of that year taken."""
    numbers = [int(m.group(2)) for m in map(_ID.match, taken) if m and int(m.group(1)) == year]
    return f"pr-{year}-{max(numbers, default=0) + 1:03d}"


def release_mapping(rid: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Return the new release as the YAML mapping it is saved as, from the command's options."""
    published = options.get("published") or datetime.now(UTC).replace(microsecond=0).isoformat()
    release: dict[str, Any] = {"id": rid, "type": options["type"], "title": options.get("title"),
                               "published": published}
    for key in ("dateline",):
        if options.get(key):
            release[key] = options[key]
    release["countries"] = [c.upper() for c in options.get("countries") or []]
    release["topics"] = list(options.get("topics") or [])
    release["summary"] = options.get("summary")
    for key in ("body", "url"):
        if options.get(key):
            release[key] = options[key]
    if options.get("image"):
        release["image"] = {"src": options["image"], "alt": options.get("alt")}
    if options.get("attachments"):
        release["attachments"] = [{"src": src, "title": title}
                                  for src, title in options["attachments"]]
    if options.get("draft"):
        release["draft"] = True
    return release


def _dump(release: Mapping[str, Any]) -> bytes:
    return yaml.safe_dump(dict(release), allow_unicode=True, sort_keys=False,
                          width=100).encode("utf-8")


def edit(text: bytes, editor: str) -> bytes:
    """Open `text` in the editor (a command line, e.g. "code --wait") and return what is saved."""
    with tempfile.NamedTemporaryFile("wb", suffix=".yaml", prefix="feedsvc-new-",
                                     delete=False) as draft:
        draft.write(text)
    try:
        done = subprocess.run([*shlex.split(editor), draft.name], check=False)
        if done.returncode != 0:
            raise NewReleaseError(f"the editor {editor!r} exited with status {done.returncode}; "
                                  "nothing saved")
        return Path(draft.name).read_bytes()
    finally:
        os.unlink(draft.name)


def _edited_id(text: bytes, target_name: str) -> str:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        document = None
    rid = document.get("id") if isinstance(document, dict) else None
    return rid if isinstance(rid, str) and re.match(r"^[a-z0-9._-]+$", rid) else target_name


def write_release(root: Path, options: Mapping[str, Any], editor: str | None,
                  max_file_bytes: int) -> Written:
    """Choose a fresh id, build (and maybe edit) the file, check the whole dataset with it, and
    save it below releases/; raise DatasetError (nothing saved) when the dataset would be bad."""
    if not root.is_dir():
        raise NewReleaseError(f"{root}: the dataset must be a folder to add a release file to")
    problems: list[Problem] = []
    raw_files = read_files(root, max_file_bytes)  # for the ids in use, even in broken files
    with _locked(root):
        issued = _issued(root)
        year = _year(options.get("published"))
        known = _known_ids(raw_files)
        rid = next_id(year, issued | known)
        text = _dump(release_mapping(rid, options))
        if editor is not None:
            text = edit(EDITOR_HEAD + text, editor).removeprefix(EDITOR_HEAD)
            rid = _edited_id(text, rid)
        path = root / RELEASES_DIR / f"{rid}.yaml"
        if rid in issued:
            problems.append(Problem(str(path), None, rid, "id", "was issued before (see "
                                    f"{LEDGER}): ids are never reused"))
        check_with_file(root, max_file_bytes, str(path), text, problems)  # DatasetError
        path.parent.mkdir(exist_ok=True)
        with path.open("xb") as out:  # never overwrite
            out.write(text)
        _record(root, sorted((known | {rid}) - issued), first=not (root / LEDGER).exists())
    return Written(rid, path)


def _year(published: str | None) -> int:
    if published and re.match(r"^\d{4}-", published):
        return int(published[:4])
    return datetime.now(UTC).year


__all__ = ["DatasetError", "LEDGER", "NewReleaseError", "Written", "next_id", "write_release"]
