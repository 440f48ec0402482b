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

from feedsvc.dataset import loader
from feedsvc.operations import reload

_update = loader.update


def _held(*args: Any, **kwargs: Any) -> Any:
    change = _update(*args, **kwargs)
    hold = os.environ["RELOAD_HOLD_FILE"]
    if os.path.exists(hold):
        Path(hold + ".reached").touch()
        while os.path.exists(hold):
            time.sleep(0.05)  # gevent's: the master's loop runs meanwhile (SIGHUP)
    return change


reload.update = _held  # type: ignore[attr-defined]  # the name the Reloader calls
