"""The app's clock, and what a request sees through it: one moment for the whole request.

Tests swap the clock (`set_clock`) to move time; nothing else reads the time of day to
decide what is visible.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from flask import Flask, current_app, g

from .dataset.reader import Snapshot
from .dataset.visible import StoreView
from .state import current_snapshot

Clock = Callable[[], datetime]
_CLOCK = "feedsvc.clock"


def system_now() -> datetime:
    return datetime.now(UTC)


def init_app(app: Flask) -> None:
    """Read the system clock."""
    app.extensions[_CLOCK] = system_now


def set_clock(app: Flask, clock: Clock) -> None:
    """Read the time from `clock` from now on (tests move time with it)."""
    app.extensions[_CLOCK] = clock


def now(app: Flask | None = None) -> datetime:
    clock: Clock = (app or current_app).extensions[_CLOCK]
    return clock()


def view_of(app: Flask, snapshot: Snapshot) -> StoreView:
    """Return what readers of `app` see of the store's version in `snapshot` now (while its
    transaction lasts)."""
    return snapshot.view_at(now(app))


def current_view() -> StoreView:
    """Return what this request sees: the request's version at one moment, for the whole
    request."""
    if "feedsvc_view" not in g:
        g.feedsvc_view = current_snapshot().view_at(now())
    view: StoreView = g.feedsvc_view
    return view
