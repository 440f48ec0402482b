"""The loggers operators filter on are the ones docs/operations.md names, whatever module holds them."""
from __future__ import annotations

import importlib
import logging
import pkgutil
import re
from pathlib import Path

import feedsvc

OPERATIONS = Path(__file__).resolve().parent.parent / "docs" / "operations.md"


def documented() -> set[str]:
    """Return the logger names of the Logs and Loggers sections of docs/operations.md."""
    text = OPERATIONS.read_text(encoding="utf-8")
    sections = re.findall(r"^## (?:Logs|Loggers)\n(.*?)(?=^## )", text, flags=re.S | re.M)
    assert len(sections) == 2, "docs/operations.md has a Logs and a Loggers section"
    return set(re.findall(r"`(feedsvc\.[a-z_.]+)`", "\n".join(sections)))


def defined() -> set[str]:
    """Import every module of feedsvc; return the names of the loggers they keep."""
    names: set[str] = set()
    for info in pkgutil.walk_packages(feedsvc.__path__, "feedsvc."):
        if info.name.endswith("__main__"):  # running it runs the command
            continue
        if info.name == "feedsvc.serving.gunicorn_conf":  # gunicorn's config file, never imported
            continue
        module = importlib.import_module(info.name)
        names.update(value.name for value in vars(module).values() if isinstance(value, logging.Logger))
    return names


def test_every_logger_is_documented_under_its_name() -> None:
    names = defined()
    assert "feedsvc.access" in names and "feedsvc.reload" in names
    assert names == documented()
