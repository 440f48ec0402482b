"""Test-only: holds the master's set-up of the dataset watch, imported by a test's own gunicorn
config.

While the file WATCH_HOLD_FILE names exists, the watcher waits just before it watches the
releases/ folder (it says so by creating that name + ".reached"), so that a test can serve
and write files while the watch is being set up. Production code has no such switch.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from inotify_simple import INotify

from feedsvc.operations import watcher


class _Held(INotify):  # type: ignore[misc]
    def add_watch(self, path: str | bytes, mask: int) -> int:
        hold = os.environ["WATCH_HOLD_FILE"]
        if os.fsdecode(path).endswith(f"{os.sep}releases") and os.path.exists(hold):
            Path(hold + ".reached").touch()
            while os.path.exists(hold):
                time.sleep(0.05)  # the set-up's own thread: the master's loop runs meanwhile
        found: int = super().add_watch(path, mask)
        return found


watcher.INotify = _Held  # type: ignore[attr-defined]  # the class Watcher opens
