"""Test-only: a fault in the master's reload, imported by a test's own gunicorn config.

While the file RELOAD_FAULT_FILE names exists, assembling changed data raises, as a bug
would; a test creates and removes the file. Production code has no such switch.
"""
from __future__ import annotations

import os
from typing import Any

from feedsvc.dataset import assemble
from feedsvc.operations import reload

_assemble_changed = assemble.assemble_changed


class InjectedFault(RuntimeError):
    """The failure this module puts into a reload."""


def _faulty(*args: Any, **kwargs: Any) -> Any:
    if os.path.exists(os.environ["RELOAD_FAULT_FILE"]):
        raise InjectedFault("injected into the master's reload")
    return _assemble_changed(*args, **kwargs)


reload.assemble_changed = _faulty  # type: ignore[attr-defined]  # the name the Reloader calls
