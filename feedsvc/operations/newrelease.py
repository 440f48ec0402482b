"""`feedsvc new`: write a new release file with a fresh id, checked with the dataset first.

Ids are `pr-<year>-<number>`, numbered after every id the dataset holds and every id ever
issued, which the ledger `issued-ids.txt` in the dataset folder remembers (keep it with the
data, e.g. in the same git repository): a deleted release's id is never given again, so a
feed reader that saw it never confuses a new release with the old one. The ledger holds only
the ids this command issued (never one read from a title or a body). The dataset folder is
locked while the file is checked, its id settled and the file written, so two writers at once
get two ids; never while an editor is open (a colleague's `feedsvc new` would wait on it).

With --edit, the text is edited in a draft file: if the release fails the check, the draft is
kept and its path printed, and `--edit --resume PATH` opens it again. Dates are written in the
site's timezone (`site.timezone`): a release written in Bangkok is dated as Bangkok sees it.
"""
from __future__ import annotations

import fcntl
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import yaml

from ..dataset.loader import check_with_file, raw_files
from ..dataset.problems import DatasetError, Problem
from ..dataset.records import zone_named

LEDGER = "issued-ids.txt"
LEDGER_HEAD = ("# Every release id `feedsvc new` has issued, one a line: never reused, even when\n"
               "# a release is deleted. Keep this file with the data.\n")
_ID = re.compile(r"^pr-(\d{4})-(\d+)$")
RELEASES_DIR = "releases"
# Shown above the release in the editor, and removed again if left as it is.
EDITOR_HEAD = (
    b"# A new release: fill in what is null, save and quit. The whole dataset is then checked,\n"
    b"# and the release saved only if it is valid (else this draft is kept, to --resume). Keep the id.\n"
    b"# published: 2024-03-05 or 2024-03-05T09:00:00+07:00 (later than now: scheduled)\n"
    b"# countries: [TH, KH]   topics: [slug, ...]   optional: dateline, body, url, language,\n"
    b"# image: {src, alt}, attachments: [{src, title}] (src below media/, or an https:// URL)\n")


class NewReleaseError(Exception):
    """The release cannot be written (not a dataset folder, editor failed, file exists)."""


class DraftKept(Exception):
    """The edited release was not saved; the writer's text is kept in the draft `path`."""

    def __init__(self, cause: Exception, path: Path) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.path = path


def now() -> datetime:
    """Return the time of day (the command's one clock: tests replace it)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Written:
    id: str
    path: Path


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on the dataset folder (not on the ledger: a failed attempt must
    leave no file behind) until the id is recorded; say so when another writer holds it."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"feedsvc new: waiting for another writer's lock on {root}", file=sys.stderr)
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


def _record(root: Path, rid: str) -> None:
    first = not (root / LEDGER).exists()
    with (root / LEDGER).open("a", encoding="utf-8") as ledger:
        ledger.write((LEDGER_HEAD if first else "") + f"{rid}\n")
        ledger.flush()
        os.fsync(ledger.fileno())


def _known_ids(raw_files: list[tuple[str, bytes]]) -> set[str]:
    # Cheaper than a full load, and works on a dataset with problems: ids are `id: …` lines.
    # An id-like line of a body may count too: that only skips a number, it is never recorded.
    found: set[str] = set()
    for _, raw in raw_files:
        found.update(m.decode() for m in re.findall(rb"(?m)^\s*-?\s*id:\s*['\"]?([a-z0-9._-]+)",
                                                    raw))
    return found


def next_id(year: int, taken: set[str]) -> str:
    """Return pr-<year>-<n> with n one more than the highest number of that year taken."""
    numbers = [int(m.group(2)) for m in map(_ID.match, taken) if m and int(m.group(1)) == year]
    return f"pr-{year}-{max(numbers, default=0) + 1:03d}"


def site_zone(raw_files: list[tuple[str, bytes]]) -> tzinfo:
    """Return the timezone of the file that holds `site:` (UTC if none names a valid one: the
    check then says what is wrong with the site)."""
    for _, raw in raw_files:
        if re.search(rb"(?m)^site:", raw):
            try:
                site: Any = (yaml.safe_load(raw) or {}).get("site")
                return zone_named(str(site["timezone"]))
            except (yaml.YAMLError, AttributeError, KeyError, TypeError, ValueError):
                return UTC
    return UTC


def release_mapping(rid: str, options: Mapping[str, Any], zone: tzinfo = UTC) -> dict[str, Any]:
    """Return the new release as the YAML mapping it is saved as, from the command's options
    (published: now, as a date-time in the site's timezone `zone`, unless given)."""
    published = in_zone(options.get("published"), zone) \
        or now().astimezone(zone).replace(microsecond=0).isoformat()
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


def new_draft(text: bytes) -> Path:
    """Write `text` to a fresh draft file (in the temporary folder) and return its path."""
    fd, name = tempfile.mkstemp(prefix="feedsvc-new-", suffix=".yaml")
    with os.fdopen(fd, "wb") as draft:
        draft.write(text)
    return Path(name)


def edit(draft: Path, editor: str) -> bytes:
    """Open the draft in the editor (a command line, e.g. "code --wait"); return what is saved."""
    done = subprocess.run([*shlex.split(editor), str(draft)], check=False)
    if done.returncode != 0:
        raise NewReleaseError(f"the editor {editor!r} exited with status {done.returncode}")
    return draft.read_bytes().removeprefix(EDITOR_HEAD)


def _edited_id(text: bytes, target_name: str) -> str:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        document = None
    rid = document.get("id") if isinstance(document, dict) else None
    return rid if isinstance(rid, str) and re.match(r"^[a-z0-9._-]+$", rid) else target_name


def write_release(root: Path, options: Mapping[str, Any], editor: str | None,
                  max_file_bytes: int, resume: Path | None = None) -> Written:
    """Choose a fresh id, build (and maybe edit, or resume editing) the file, check the whole
    dataset with it, and save it below releases/; raise DatasetError (nothing saved) when the
    dataset would be bad, or DraftKept when an edited release is not saved."""
    if not root.is_dir():
        raise NewReleaseError(f"{root}: the dataset must be a folder to add a release file to")
    files = raw_files(root, max_file_bytes)  # for the ids in use, even in broken files
    zone = site_zone(files)
    year = _year(options.get("published"), zone)
    known = _known_ids(files)
    proposed = next_id(year, _issued(root) | known)  # settled under the lock, when saving
    if resume is not None:
        try:
            proposed = _edited_id(resume.read_bytes().removeprefix(EDITOR_HEAD), proposed)
        except OSError as error:
            raise NewReleaseError(f"cannot resume {resume}: {error.strerror}") from None
    text = _dump(release_mapping(proposed, options, zone))
    if editor is None:
        return _save(root, text, proposed, year, known, max_file_bytes, None)
    draft = resume or new_draft(EDITOR_HEAD + text)
    try:
        written = _save(root, edit(draft, editor), proposed, year, known, max_file_bytes, draft)
    except (DatasetError, NewReleaseError, OSError) as error:
        if not draft.is_file():  # the editor removed or moved it: no text to point at
            raise NewReleaseError(f"the draft {draft} is gone; nothing saved") from error
        raise DraftKept(error, draft) from error
    draft.unlink(missing_ok=True)
    return written


def _save(root: Path, text: bytes, proposed: str, year: int, known: set[str],
          max_file_bytes: int, draft: Path | None) -> Written:
    """Under the dataset lock: settle the id, check the dataset with the file, write it (the
    problems of an edited release name the draft, the file the writer has, not the one that
    was never written)."""
    with _locked(root):
        issued = _issued(root)
        rid = _edited_id(text, proposed)
        if rid == proposed and rid in issued:  # another writer took it while this one wrote
            rid = next_id(year, issued | known)
            text = re.sub(rb"(?m)^id:[ \t]*['\"]?" + re.escape(proposed.encode()) + rb"['\"]?[ \t]*$",
                          b"id: " + rid.encode(), text, count=1)
        path = root / RELEASES_DIR / f"{rid}.yaml"
        problems: list[Problem] = []
        if rid in issued:
            problems.append(Problem(str(path), None, rid, "id", "was issued before (see "
                                    f"{LEDGER}): ids are never reused"))
        try:
            check_with_file(root, max_file_bytes, str(path), text, problems)
        except DatasetError as error:
            raise error if draft is None else _in_draft(error, str(path), draft) from None
        path.parent.mkdir(exist_ok=True)
        with path.open("xb") as out:  # never overwrite
            out.write(text)
        _record(root, rid)
    return Written(rid, path)


def _in_draft(error: DatasetError, name: str, draft: Path) -> DatasetError:
    """Return the error with the release's problems located in the draft (below its help)."""
    offset = EDITOR_HEAD.count(b"\n") if draft.read_bytes().startswith(EDITOR_HEAD) else 0
    return DatasetError([replace(p, file=str(draft), line=None if p.line is None else p.line + offset)
                         if p.file == name else p for p in error.problems])


def in_zone(published: str | None, zone: tzinfo) -> str | None:
    """Return a --published date-time in the site's timezone `zone` (the same instant: given
    in another offset, it is dated as the office's other releases are); a date, or text that
    is no date-time with an offset, as given (the check says what is wrong with it)."""
    if not published or len(published) <= 10:
        return published
    try:
        when = datetime.fromisoformat(published)
    except ValueError:
        return published
    return published if when.tzinfo is None else when.astimezone(zone).isoformat()


def _year(published: str | None, zone: tzinfo) -> int:
    published = in_zone(published, zone)
    if published and re.match(r"^\d{4}-", published):
        return int(published[:4])
    return now().astimezone(zone).year


__all__ = ["DatasetError", "DraftKept", "LEDGER", "NewReleaseError", "Written", "next_id", "now",
           "write_release"]
