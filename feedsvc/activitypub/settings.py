"""FEEDSVC_ACTIVITYPUB: whether this instance federates, and why it does not when it cannot."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Read by config.py (FEEDSVC_ACTIVITYPUB, default owner): see docs/fediverse.md.
MODES = ("owner", "off", "elsewhere")
DURABLE_FILE = "activitypub.sqlite3"


@dataclass(frozen=True)
class Federation:
    """What this instance does on the fediverse, once its other settings are known.

    `mode` is what was asked; `reason` says in one line why an asked-for mode is off
    (no FEEDSVC_BASE_URL, no state directory), for /readyz.
    """

    mode: str
    base: str | None = None
    durable: Path | None = None
    reason: str | None = None

    @property
    def owner(self) -> bool:
        """Tell whether this instance answers actors, inboxes, WebFinger and NodeInfo."""
        return self.mode == "owner" and self.reason is None

    @property
    def objects(self) -> bool:
        """Tell whether pages answer ActivityStreams JSON (an owner's, or another instance's)."""
        return self.mode in ("owner", "elsewhere") and self.reason is None


def federation(config: Mapping[str, Any]) -> Federation:
    """Return what the app's settings allow: federation needs a public base URL (the ids of
    actors and objects must not change with the Host a request names), and an owner needs a
    state directory for its keys and followers."""
    mode: str = config.get("FEEDSVC_ACTIVITYPUB", "owner")
    base: str | None = config.get("FEEDSVC_BASE_URL")
    if mode == "off":
        return Federation("off", reason="FEEDSVC_ACTIVITYPUB=off")
    if base is None:
        return Federation(mode, reason="federation needs FEEDSVC_BASE_URL (the public https URL)")
    if mode == "elsewhere":
        return Federation(mode, base)
    state_dir: str | None = config.get("FEEDSVC_SNAPSHOT_DIR")
    if state_dir is None:
        return Federation(mode, base, reason="federation needs a state directory "
                                             "(FEEDSVC_STATE_DIR is off)")
    return Federation(mode, base, Path(state_dir) / DURABLE_FILE)
