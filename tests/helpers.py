"""Parsing helpers for tests: feeds as a user's feed reader sees them."""
from __future__ import annotations

import json
from typing import Any

import feedparser
from werkzeug.test import TestResponse

FORMATS = ("rss", "atom", "json")


def parse_feed(response: TestResponse) -> Any:
    """Parse an RSS/Atom response with feedparser, insisting it is well-formed."""
    assert response.status_code == 200, response.get_data(as_text=True)
    parsed = feedparser.parse(response.data)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


def entry_ids(response: TestResponse, fmt: str) -> list[str]:
    """Return the release ids of a feed's entries, in order, from any of the three formats."""
    if fmt == "json":
        assert response.status_code == 200, response.get_data(as_text=True)
        items = json.loads(response.data)["items"]
        return [item["id"].rsplit(":", 1)[1] for item in items]
    return [e.id.rsplit(":", 1)[1] for e in parse_feed(response).entries]


def record_parses(monkeypatch: Any) -> list[str]:
    """Record the name of every file the dataset loader parses from now on."""
    from feedsvc import dataset
    from feedsvc.dataset import ingest, loader

    parsed: list[str] = []

    def parse(name: str, raw: bytes, problems: list[dataset.Problem]) -> dataset.Parts:
        parsed.append(name)
        return dataset.parse_file(name, raw, problems)

    monkeypatch.setattr(loader, "parse_file", parse)  # a full read (coldstart.py: loader's)
    monkeypatch.setattr(ingest, "parse_file", parse)  # the changed files of a look
    return parsed


def publish(app: Any, releases: list[dict[str, object]]) -> None:
    """Make the app's dataset folder hold exactly these releases (as the fixtures write them,
    one file each) and reload it the way the watcher does (Reloader.check); it must swap."""
    from pathlib import Path

    import yaml

    from feedsvc.operations.reload import reloader

    folder = Path(app.config["FEEDSVC_DATA"]) / "releases"
    wanted = {f"{release['id']}.yaml": release for release in releases}
    for path in folder.glob("*.yaml"):
        if path.name not in wanted:
            path.unlink()
    for name, release in wanted.items():
        text = yaml.safe_dump(release, allow_unicode=True, sort_keys=False)
        if not (folder / name).exists() or (folder / name).read_text(encoding="utf-8") != text:
            (folder / name).write_text(text, encoding="utf-8")
    result = reloader(app).check()
    assert result == "reloaded", (result, reloader(app).error)
