"""The live dataset index of this process, swapped atomically when new data is accepted."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import Flask, current_app

from .dataset import load_dataset
from .index import Index, build_index

log = logging.getLogger(__name__)
# Told (old index, new index) after each swap; must return quickly (start a thread if not).
SwapListener = Callable[[Index, Index], object]


@dataclass
class Live:
    """What a worker serves from: one valid index, replaced whole, never edited."""

    index: Index
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    listeners: list[SwapListener] = field(default_factory=list, repr=False)

    def on_swap(self, listener: SwapListener) -> None:
        """Call `listener(old, new)` after every swap to a different dataset version."""
        self.listeners.append(listener)

    def swap(self, index: Index) -> None:
        """Serve `index` from now on; requests in flight keep the one they started with."""
        with self.lock:
            old = self.index
            self.index, self.loaded_at, self.last_error = index, datetime.now(UTC), None
        if old.version == index.version:
            return
        for listener in self.listeners:
            try:
                listener(old, index)
            # A listener's failure must never undo or fail the swap.
            except Exception:  # noqa: BLE001
                log.exception("swap listener %r failed", listener)


def init_app(app: Flask) -> None:
    """Load and validate the configured dataset; DatasetError stops the start."""
    index = build_index(load_dataset(app.config["FEEDSVC_DATA"]))
    app.extensions["feedsvc.live"] = Live(index)


def live() -> Live:
    live_state: Live = current_app.extensions["feedsvc.live"]
    return live_state


def current_index() -> Index:
    """Return the index this request is served from."""
    return live().index
