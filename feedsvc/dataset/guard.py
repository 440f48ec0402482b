"""The mass-removal guard: a reload removing too many served releases waits for an operator.

The held reload is noted beside the snapshot (`<source>.held`, JSON); `feedsvc accept-removal`
writes the held version to `<source>.accept`, which the watcher then finds.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

from .statedir import state_file as side_file

log = logging.getLogger("feedsvc.guard")


@dataclass(frozen=True)
class Held:
    """A valid reload held back because it would remove too many of the served releases."""

    version: str
    removed: int
    served: int

    def report(self, limit: str, serving: str) -> str:
        """Say what is held, for /readyz and the log."""
        return (f"mass removal held: {self.removed} of {self.served} releases would be removed "
                f"(more than FEEDSVC_MAX_REMOVAL={limit}); still serving version {serving}; "
                f"new version {self.version}; accept it with `feedsvc accept-removal`")


def write_held(snapshot_dir: str, path: str, held: Held) -> None:
    """Note the held reload for `feedsvc accept-removal`; a failure is logged, not raised."""
    file = side_file(snapshot_dir, path, "held")
    try:
        file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        file.write_text(json.dumps({**asdict(held), "path": path}) + "\n", encoding="utf-8")
    except OSError as error:
        log.warning("cannot write %s: %s", file, error)


def forget(snapshot_dir: str, path: str) -> None:
    """Drop the notes of a hold: it ended (accepted, or the files came back)."""
    side_file(snapshot_dir, path, "held").unlink(missing_ok=True)
    side_file(snapshot_dir, path, "accept").unlink(missing_ok=True)


def accepted(snapshot_dir: str, path: str, version: str) -> bool:
    """Whether an operator accepted the removal that makes dataset `version`."""
    try:
        return side_file(snapshot_dir, path, "accept").read_text(encoding="utf-8").strip() == version
    except OSError:
        return False


def accept_removal(path: str, snapshot_dir: str) -> str:
    """Accept the mass removal held for `path`; return what it removes. Raise LookupError if none."""
    try:
        held = json.loads(side_file(snapshot_dir, path, "held").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise LookupError(f"{path}: no mass removal is held") from None
    side_file(snapshot_dir, path, "accept").write_text(held["version"] + "\n", encoding="utf-8")
    return (f"{path}: accepted: {held['removed']} of {held['served']} releases removed "
            f"(version {held['version']}); served within FEEDSVC_RELOAD_INTERVAL")
