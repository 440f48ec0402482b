"""The mass-removal guard: a reload removing too many served releases waits for an operator.

The writer notes the held reload in the store's status table (`held`, JSON, beside the report
/readyz gives); `feedsvc accept-removal` writes the held version there (`accept`), which the
writer's next look finds. A commit forgets both.
"""
from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass

from .db import Unusable, connect
from .statedir import state_file


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


def accepted(db: sqlite3.Connection, version: str) -> bool:
    """Whether an operator accepted the removal that makes dataset `version`."""
    found = db.execute("SELECT value FROM status WHERE name = 'accept'").fetchone()
    return found is not None and found[0] == version


def accept_removal(path: str, snapshot_dir: str) -> str:
    """Accept the mass removal held for `path`; return what it removes. Raise LookupError if none."""
    store = state_file(snapshot_dir, path, "sqlite")
    try:  # read-only first: a missing store is not created
        with closing(connect(store, write=False)) as db:
            found = db.execute("SELECT value FROM status WHERE name = 'held'").fetchone()
    except (Unusable, sqlite3.Error):
        found = None
    if found is None:
        raise LookupError(f"{path}: no mass removal is held")
    held = json.loads(found[0])
    with closing(connect(store, write=True)) as db:
        db.execute("INSERT OR REPLACE INTO status VALUES ('accept', ?)", (held["version"],))
    return (f"{path}: accepted: {held['removed']} of {held['served']} releases removed "
            f"(version {held['version']}); served within FEEDSVC_RELOAD_INTERVAL")
