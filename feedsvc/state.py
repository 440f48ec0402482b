"""The live dataset index of this process, swapped atomically when new data is accepted."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone

from flask import Flask, current_app

from .dataset import load_dataset
from .index import Index, build_index


@dataclass
class Live:
    """What a worker serves from: one valid index, replaced whole, never edited."""

    index: Index
    loaded_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    last_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def swap(self, index: Index) -> None:
        """Serve `index` from now on; requests in flight keep the one they started with."""
        with self.lock:
            self.index, self.loaded_at, self.last_error = index, datetime.now(timezone.utc), None


def init_app(app: Flask) -> None:
    """Load and validate the configured dataset; DatasetError stops the start."""
    index = build_index(load_dataset(app.config["FEEDSVC_DATA"],
                                     app.config["FEEDSVC_MAX_FILE_BYTES"]))
    app.extensions["feedsvc.live"] = Live(index)


def live() -> Live:
    live_state: Live = current_app.extensions["feedsvc.live"]
    return live_state


def current_index() -> Index:
    """Return the index this request is served from."""
    return live().index
