"""`feedsvc export DIR`: every feed, byte-identical to what the HTTP endpoints return."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from flask import Flask

from feedsvc import create_app, state
from feedsvc.operations.cli import main
from feedsvc.operations.export import export, feed_paths

BASE_URL = "https://feeds.example.org/"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, dataset_dir: Path) -> Path:
    monkeypatch.setenv("FEEDSVC_DATA", str(dataset_dir))
    monkeypatch.setenv("FEEDSVC_BASE_URL", BASE_URL)
    return dataset_dir


def test_export_equals_what_http_returns(env: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "site"
    assert main(["export", str(out)]) == 0
    assert "44 files" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    client = create_app().test_client()  # a separate app, as a server process would be
    assert manifest["base_url"] == BASE_URL
    assert len(manifest["files"]) == 3 * (1 + 6 + 7) + 2  # and /feeds.opml, /feeds/feed.xsl
    for entry in manifest["files"]:
        response = client.get(f"/{entry['path']}")
        body = (out / entry["path"]).read_bytes()
        assert response.status_code == 200
        assert body == response.get_data(), entry["path"]
        assert entry == {"path": entry["path"], "content_type": response.content_type,
                         "sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body),
                         "etag": response.headers["ETag"]}
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        sorted([e["path"] for e in manifest["files"]] + ["manifest.json"])


def test_only_countries_and_topics_with_releases(app: Flask) -> None:
    index = state.live(app).index
    paths = feed_paths(app)
    assert "/feeds/all.rss" in paths and "/feeds/countries/th.atom" in paths
    unused = set(index.dataset.topics) - set(index.by_topic)
    assert all(f"/feeds/topics/{slug}.rss" not in paths for slug in unused)
    assert len(paths) == len(set(paths))


def test_the_opml_list_and_feed_stylesheet_are_exported(dataset_dir: Path, tmp_path: Path) -> None:
    app = create_app({"FEEDSVC_DATA": str(dataset_dir), "FEEDSVC_BASE_URL": BASE_URL})
    manifest = export(app, tmp_path / "out")
    assert [f["path"] for f in manifest["files"][-2:]] == ["feeds.opml", "feeds/feed.xsl"]
    client = app.test_client()
    for path in ("feeds.opml", "feeds/feed.xsl"):
        assert (tmp_path / "out" / path).read_bytes() == client.get(f"/{path}").data


def test_export_needs_a_base_url(env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("FEEDSVC_BASE_URL")
    assert main(["export", str(tmp_path / "out")]) == 1
    assert "FEEDSVC_BASE_URL must be set" in capsys.readouterr().err


def test_export_refuses_invalid_data(env: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    (env / "topics.yaml").unlink()
    assert main(["export", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.startswith("dataset invalid:")
    assert not (tmp_path / "out").exists()
