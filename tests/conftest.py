"""Fixtures: the app built from the bundled dataset or from small YAML datasets, and its clients."""
from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
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


# Property-based tests: reproducible (the same examples on every run) and few enough for CI.
settings.register_profile("feedsvc", max_examples=60, deadline=None, derandomize=True,
                          database=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("feedsvc")
