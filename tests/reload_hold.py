"""Test-only: holds the master's look after it read the files, imported by a test's own
gunicorn config.

While the file RELOAD_HOLD_FILE names exists, a look that has read the files waits (it
says so by creating that name + ".reached"), so a test can change the files and send SIGHUP
during a check. Production code has no such switch.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from feedsvc.dataset import sync

_look = sync.Looker.look


def _held(self: sync.Looker, *args: Any, **kwargs: Any) -> Any:
    found = _look(self, *args, **kwargs)
    hold = os.environ["RELOAD_HOLD_FILE"]
    if os.path.exists(hold):
        Path(hold + ".reached").touch()
        while os.path.exists(hold):
            time.sleep(0.05)  # the look's own thread: the master's loop runs meanwhile
    return found


sync.Looker.look = _held  # type: ignore[method-assign]  # the look the Reloader makes
