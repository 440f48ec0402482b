"""Test-only: a fault in the master's reload, imported by a test's own gunicorn config.

While the file RELOAD_FAULT_FILE names exists, the look at the changed files raises, as a bug
would; a test creates and removes the file. Production code has no such switch.
"""
from __future__ import annotations

import os
from typing import Any

from feedsvc.dataset import sync

_look = sync.Looker.look


class InjectedFault(RuntimeError):
    """The failure this module puts into a reload."""


def _faulty(self: sync.Looker, *args: Any, **kwargs: Any) -> Any:
    if os.path.exists(os.environ["RELOAD_FAULT_FILE"]):
        raise InjectedFault("injected into the master's reload")
    return _look(self, *args, **kwargs)


sync.Looker.look = _faulty  # type: ignore[method-assign]  # the look the Reloader makes
