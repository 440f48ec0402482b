"""Loading and validating the dataset: every problem, each with its file, line, release, field."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from feedsvc import create_app
from feedsvc.config import BUNDLED_DATA
from feedsvc.dataset import DatasetError, load_dataset

from .seed import SEED

ROOT = Path(__file__).resolve().parent.parent
Write = Callable[[str, str], Path]

SITE_AND_TOPICS = """
site:
  title: Test office
  subtitle: Test releases
  publisher: Test publisher
  language: en
  timezone: Asia/Bangkok
  tag_authority: example.org,2020
  types: {press-release: Press release}
topics:
  - {slug: safety, label: Safety, description: Safe work.}
  - {slug: wages, label: Wages, description: Pay.}
"""

GOOD = """
  - id: r-1
    type: press-release
    title: A release
    published: 2020-03-01
    countries: [TH]
    topics: [safety]
    summary: Something happened.
"""


def problems(path: Path) -> list[str]:
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    return [str(p) for p in caught.value.problems]


def test_bundled_dataset_holds_the_ten_seed_releases() -> None:
    dataset = load_dataset(BUNDLED_DATA)
    assert [r.id for r in dataset.releases] == list(SEED)
    assert dataset.site.timezone == "Asia/Bangkok"
    for release in dataset.releases:
        title, day, countries, topics, dateline = SEED[release.id]
        assert release.title.startswith(title)
        assert release.published.isoformat() == f"{day}T00:00:00+07:00"
        assert [c.lower() for c in release.countries] == countries
        assert list(release.topics) == topics
        assert release.dateline == dateline
        assert release.language == "en"


def test_single_bundle_file_loads(write_yaml: Write) -> None:
    path = write_yaml("one.yaml", SITE_AND_TOPICS + "releases:" + GOOD)
    dataset = load_dataset(path)
    assert [r.id for r in dataset.releases] == ["r-1"]
    assert dataset.releases[0].published.isoformat() == "2020-03-01T00:00:00+07:00"


def test_directory_of_files_loads_recursively_and_skips_hidden(write_yaml: Write) -> None:
    write_yaml("d/site.yaml", SITE_AND_TOPICS)
    write_yaml("d/2020/r-1.yaml", GOOD.replace("  - ", "").replace("\n    ", "\n"))
    write_yaml("d/.editor-swap.yaml", "not: [valid")
    write_yaml("d/2020/r-1.yaml~", "not: [valid")  # an editor's backup (docs/dataset.md)
    write_yaml("d/2020/R-2.YAML", "not: [valid")
    write_yaml("d/2021/r-3.yml", GOOD.replace("  - ", "").replace("\n    ", "\n")
               .replace("r-1", "r-3"))
    dataset = load_dataset(write_yaml("d/notes.txt", "ignored").parent)
    assert sorted(r.id for r in dataset.releases) == ["r-1", "r-3"]


def test_every_problem_is_reported_at_once_with_file_line_release_field(write_yaml: Write) -> None:
    path = write_yaml("bad.yaml", SITE_AND_TOPICS + """
releases:
  - id: r-1
    type: press-release
    title: ""
    published: 2021-02-29
    countries: [ZZ]
    topics: [cooking]
    summary: x
    colour: red
  - id: r-1
    type: memo
    title: Second
    published: 2021-01-01T09:00:00
    countries: []
    topics: [wages]
  - type: press-release
    title: No id
    published: 2021-01-01
    updated: 2020-12-31
    countries: []
    topics: [wages]
    summary: y
    url: not a url
""")
    found = problems(path)
    name = str(path)
    expected = [
        f"{name}:16: release r-1: field title: is empty",
        f"{name}:17: release r-1: field published: '2021-02-29' is not a valid date",
        f"{name}:18: release r-1: field countries: 'ZZ' is not an ISO 3166-1 alpha-2",
        f"{name}:19: release r-1: field topics: 'cooking' is not a topic",
        f"{name}:21: release r-1: field colour: unknown field",
        f"{name}:22: release r-1: field id: duplicate id, first used at {name}:14",
        f"{name}:22: release r-1: missing required field 'summary'",
        f"{name}:23: release r-1: field type: 'memo' is not a type",
        f"{name}:25: release r-1: field published: '2021-01-01T09:00:00' is not a valid date",
        f"{name}:28: release #3 (no id): missing required field 'id'",
        f"{name}:31: release #3 (no id): field updated: is earlier than published",
        f"{name}:35: release #3 (no id): field url: 'not a url' is not an absolute http(s) URL",
    ]
    for line in expected:
        assert any(p.startswith(line) for p in found), f"{line!r} not in {found}"
    assert len(found) == len(expected)


@pytest.mark.parametrize(("text", "line", "message"), [
    ("releases:\n  - id: [unclosed\n", 3, "malformed YAML"),
    ("releases: {id: x}\n", 1, "must be a list of mappings"),
    ("- just\n- a list\n", 1, "expected a release"),
    ("", 1, "found an empty file"),
    ("releases:\n  - !!python/object/apply:os.system [echo owned]\n", 2, "malformed YAML"),
])
def test_malformed_files_are_reported_not_executed(write_yaml: Write, text: str, line: int,
                                                   message: str) -> None:
    write_yaml("d/site.yaml", SITE_AND_TOPICS)
    bad = write_yaml("d/bad.yaml", text)
    found = problems(bad.parent)
    assert any(p.startswith(f"{bad}:{line}: ") and message in p for p in found), found


def test_bytes_that_are_not_utf8_are_located(tmp_path: Path, write_yaml: Write) -> None:
    write_yaml("d/site.yaml", SITE_AND_TOPICS)
    (tmp_path / "d" / "latin1.yaml").write_bytes(b"id: x\ntitle: caf\xe9\n")
    assert any(p.startswith(f"{tmp_path / 'd' / 'latin1.yaml'}:2: not UTF-8")
               for p in problems(tmp_path / "d"))


def test_norway_stays_a_country_and_dates_stay_text(write_yaml: Write) -> None:
    release = GOOD.replace("[TH]", "[NO, th]").replace("2020-03-01", "2020-03-01T08:30:00-05:00")
    dataset = load_dataset(write_yaml("one.yaml", SITE_AND_TOPICS + "releases:" + release))
    assert dataset.releases[0].countries == ("NO", "TH")
    assert dataset.releases[0].published.isoformat() == "2020-03-01T08:30:00-05:00"


def test_site_and_vocabulary_are_validated_too(write_yaml: Write) -> None:
    text = SITE_AND_TOPICS.replace("Asia/Bangkok", "Mars/Olympus").replace("slug: wages", "slug: Wages!")
    found = problems(write_yaml("one.yaml", text + "releases:" + GOOD))
    assert any("field timezone: 'Mars/Olympus' is not an IANA timezone" in p for p in found)
    assert any("field slug: 'Wages!' is not a lowercase slug" in p for p in found)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "feedsvc", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **(env or {})}, timeout=60)


def test_check_data_command(write_yaml: Write) -> None:
    ok = run_cli("check-data", str(BUNDLED_DATA))
    assert ok.returncode == 0 and "10 releases" in ok.stdout
    bad = write_yaml("bad.yaml", SITE_AND_TOPICS + "releases:" + GOOD.replace("[safety]", "[nope]"))
    result = run_cli("check-data", str(bad))
    assert result.returncode == 1
    assert f"{bad}:18: release r-1: field topics: 'nope' is not a topic" in result.stderr


def test_service_refuses_to_start_on_invalid_data(write_yaml: Write) -> None:
    bad = write_yaml("bad.yaml", SITE_AND_TOPICS + "releases:" + GOOD.replace("2020-03-01", "2020-13-01"))
    with pytest.raises(DatasetError):
        create_app({"FEEDSVC_DATA": str(bad)})
    started = subprocess.run([sys.executable, "-c", "import wsgi"], capture_output=True, text=True,
                             cwd=ROOT, env={**os.environ, "FEEDSVC_DATA": str(bad)}, timeout=60)
    assert started.returncode != 0
    assert f"{bad}:16: release r-1: field published: '2020-13-01'" in started.stderr
