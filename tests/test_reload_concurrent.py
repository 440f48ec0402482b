"""A look asked for while a check runs (SIGHUP, a notification) is run after it, never dropped."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import feedparser
import pytest
from flask import Flask

from feedsvc import create_app
from feedsvc.operations.reload import Reloader, reloader

from .test_reload import BASE_URL, RELEASE, age, edit_title

FIRST, SECOND = "First edit of the release", "Second edit, written while the first loads"


@pytest.fixture
def live_app(dataset_dir: Path) -> Flask:
    age(dataset_dir)  # no file racy: only what a look is asked to read is read
    return create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE_URL})


def titles(app: Flask) -> set[str]:
    response = app.test_client().get("/feeds/all.rss")
    assert response.status_code == 200
    return {entry.title for entry in feedparser.parse(response.get_data()).entries}


class Blocked:
    """Holds the first commit of a check until released: the check is then mid-way."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reached, self.release = threading.Event(), threading.Event()
        commit = Reloader._commit

        def held(reload: Reloader, *args: Any) -> None:
            if not self.reached.is_set():
                self.reached.set()
                assert self.release.wait(10), "the test never released the check"
            commit(reload, *args)

        monkeypatch.setattr(Reloader, "_commit", held)


@pytest.mark.parametrize("asked", ["sighup", "notification"])
def test_a_change_made_during_a_check_is_loaded_after_it(
        live_app: Flask, dataset_dir: Path, monkeypatch: pytest.MonkeyPatch, asked: str) -> None:
    watch, blocked = reloader(live_app), Blocked(monkeypatch)
    edit_title(dataset_dir, FIRST)
    results: list[str] = []
    first = threading.Thread(target=lambda: results.append(
        watch.check(paths=[str(dataset_dir / RELEASE)])))
    first.start()
    assert blocked.reached.wait(10)  # the first edit read, not yet swapped in
    edit_title(dataset_dir, SECOND)
    if asked == "sighup":
        assert watch.check(force=True) == "busy"
    else:  # the notification of the second write names its file
        assert watch.check(paths=[str(dataset_dir / RELEASE)]) == "busy"
    blocked.release.set()
    first.join(10)
    assert results == ["reloaded"]  # news: the workers are re-forked with the second edit
    served = titles(live_app)
    assert SECOND in served and FIRST not in served
    assert watch.check() == "unchanged"  # nothing left over: the next look finds nothing


def test_looks_asked_during_a_check_are_merged_into_one(
        live_app: Flask, dataset_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    watch, blocked = reloader(live_app), Blocked(monkeypatch)
    looks: list[tuple[bool, Any]] = []
    once = Reloader._once

    def counted(reload: Reloader, force: bool, strict: bool, paths: Any) -> str:
        looks.append((force, None if paths is None else sorted(paths)))
        return once(reload, force, strict, paths)

    monkeypatch.setattr(Reloader, "_once", counted)
    edit_title(dataset_dir, FIRST)
    first = threading.Thread(target=watch.check)
    first.start()
    assert blocked.reached.wait(10)
    edit_title(dataset_dir, SECOND)
    other = str(dataset_dir / "releases" / "elsewhere.yaml")
    assert watch.check(paths=[str(dataset_dir / RELEASE)]) == "busy"
    assert watch.check(paths=[other]) == "busy"
    assert watch.check(force=True) == "busy"
    blocked.release.set()
    first.join(10)
    # One look after the first, forced (a SIGHUP was among them), every file (it said so).
    assert looks == [(False, None), (True, None)]
    assert SECOND in titles(live_app)
