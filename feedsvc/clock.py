"""The app's clock, and what a request sees through it: one moment for the whole request.

Tests swap the clock (`set_clock`) to move time; nothing else reads the time of day to
decide what is visible.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from flask import Flask, current_app, g

from .dataset.facts import facts
from .dataset.index import Index
from .dataset.lifecycle import view_at
from .dataset.served import View
from .state import Live, current_index

Clock = Callable[[], datetime]
_CLOCK = "feedsvc.clock"


def system_now() -> datetime:
    return datetime.now(UTC)


def init_app(app: Flask, live: Live) -> None:
    """Read the system clock; work out what each new index hides when it goes live, off
    the request path (in the master before workers fork, then in the reloading thread)."""
    app.extensions[_CLOCK] = system_now
    facts(live.index)
    live.on_swap(lambda old, new: facts(new))


def set_clock(app: Flask, clock: Clock) -> None:
    """Read the time from `clock` from now on (tests move time with it)."""
    app.extensions[_CLOCK] = clock


def now(app: Flask | None = None) -> datetime:
    clock: Clock = (app or current_app).extensions[_CLOCK]
    return clock()


def view_of(app: Flask, index: Index) -> View:
    """Return what readers of `app` see of `index` now."""
    return view_at(index, now(app))


def current_view() -> View:
    """Return what this request sees: the request's index at one moment, for the whole request."""
    if "feedsvc_view" not in g:
        g.feedsvc_view = view_at(current_index(), now())
    view: View = g.feedsvc_view
    return view
