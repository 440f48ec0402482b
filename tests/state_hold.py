"""Test-only: holds the master's write transaction open, imported by a test's own gunicorn
config.

While the file STATE_HOLD_FILE names exists, a publish that has put its rows in the store
waits just before COMMIT (it says so by creating that name + ".reached"), so that a test can
kill the master inside the transaction. Production code has no such switch.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from feedsvc.dataset import write

_mark_written = write._mark_written


def _held(*args: Any, **kwargs: Any) -> None:
    _mark_written(*args, **kwargs)  # the last statement of the transaction before COMMIT
    hold = os.environ["STATE_HOLD_FILE"]
    if os.path.exists(hold):
        Path(hold + ".reached").touch()
        while os.path.exists(hold):
            time.sleep(0.05)


write._mark_written = _held  # the name write.apply calls
