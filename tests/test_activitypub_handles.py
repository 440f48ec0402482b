"""Fediverse handles share one namespace: check-data refuses a topic slug that is a country
code or `all`; a release is announced by the actors of its countries and topics."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from feedsvc.activitypub.handles import handles_of
from feedsvc.config import BUNDLED_DATA
from feedsvc.dataset import load_dataset

from .test_dataset import run_cli


@pytest.mark.parametrize("slug, says", [("th", "a country's fediverse handle"),
                                        ("all", "the whole site's fediverse handle")])
def test_check_data_refuses_a_topic_slug_that_is_another_handle(tmp_path: Path, slug: str,
                                                                 says: str) -> None:
    data = tmp_path / "data"
    shutil.copytree(BUNDLED_DATA, data)
    topics = data / "topics.yaml"
    topics.write_text(topics.read_text() + f"  - slug: {slug}\n    label: Odd\n"
                      "    description: A slug that collides.\n")
    result = run_cli("check-data", str(data))
    assert result.returncode == 1
    assert f"topic slug {slug!r} is {says}" in result.stdout + result.stderr


def test_a_release_is_announced_by_its_countries_and_topics() -> None:
    release = next(r for r in load_dataset(BUNDLED_DATA).releases if r.id == "pr-2005-002")
    assert handles_of(release) == ["kh", "gender-equality"]
