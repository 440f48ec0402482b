"""Fixtures: the app built from the bundled dataset or from small YAML datasets, and its clients."""
from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from feedsvc import create_app
from feedsvc.config import BUNDLED_DATA

BASE_URL = "https://feeds.example.org/"


@pytest.fixture
def app() -> Flask:
    return create_app({"FEEDSVC_DATA": str(BUNDLED_DATA), "FEEDSVC_BASE_URL": BASE_URL})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def dataset_dir(tmp_path: Path) -> Path:
    """A copy of the bundled dataset that a test may edit."""
    target = tmp_path / "data"
    shutil.copytree(BUNDLED_DATA, target)
    return target


@pytest.fixture
def write_yaml(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write dedented YAML text to a file below tmp_path and return its path."""
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path
    return write


@pytest.fixture(autouse=True, scope="session")
def _snapshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep start-up snapshots in the session's temporary directory, not the user's cache."""
    directory = tmp_path_factory.mktemp("snapshots")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEEDSVC_SNAPSHOT_DIR", str(directory))
        yield directory


@pytest.fixture(scope="session")
def archive_1k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic 1,000-release archive in one bundle file (generated once per session)."""
    from feedsvc.synth import write_archive

    return write_archive(1000, tmp_path_factory.mktemp("archive") / "archive.yaml")
