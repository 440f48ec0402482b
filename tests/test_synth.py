"""`feedsvc synth`: synthetic archives that validate, render and look like the real one."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import feedparser
import pytest

from feedsvc import create_app
from feedsvc.dataset import load_dataset
from feedsvc.operations.cli import main
from feedsvc.operations.synth import write_archive


def test_a_generated_archive_passes_check_data(archive_1k: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-data", str(archive_1k)]) == 0
    assert "ok, 1000 releases, 7 topics" in capsys.readouterr().out


def test_feeds_render_from_a_generated_archive(archive_1k: Path) -> None:
    app = create_app({"FEEDSVC_DATA": str(archive_1k), "FEEDSVC_BASE_URL": "https://x.test/"})
    client = app.test_client()
    for url in ("/feeds/all.rss", "/feeds/countries/th.atom?topic=social-security",
                "/feeds/topics/labour-migration.rss?q=migrant&since=2010-01-01"):
        response = client.get(url)
        assert response.status_code == 200, url
        parsed = feedparser.parse(response.data)
        assert not parsed.bozo, (url, parsed.get("bozo_exception"))
        assert 1 <= len(parsed.entries) <= 20
    body = client.get("/feeds/countries/kh.json?limit=100").get_json()
    assert len(body["items"]) == 100


def test_the_cli_writes_the_same_bytes_for_the_same_seed(tmp_path: Path) -> None:
    assert main(["synth", "50", str(tmp_path / "a.yaml")]) == 0
    assert main(["synth", "50", str(tmp_path / "b.yaml")]) == 0
    assert main(["synth", "50", str(tmp_path / "c.yaml"), "--seed", "9"]) == 0
    a, b, c = ((tmp_path / f"{n}.yaml").read_bytes() for n in "abc")
    assert a == b != c


def test_split_writes_one_file_per_release_with_the_same_releases(tmp_path: Path) -> None:
    split = write_archive(200, tmp_path / "split", split=True)
    bundle = write_archive(200, tmp_path / "bundle.yaml")
    assert len(list((split / "releases").glob("*.yaml"))) == 200
    assert (split / "site.yaml").is_file() and (split / "topics.yaml").is_file()
    assert load_dataset(split).releases == load_dataset(bundle).releases


def test_releases_look_like_the_office_archive(archive_1k: Path) -> None:
    releases = load_dataset(archive_1k).releases
    countries = Counter(len(r.countries) for r in releases)
    assert set(countries) == {0, 1, 2, 3} and countries[1] > countries[2] > 0
    assert {len(r.topics) for r in releases} == {1, 2, 3}
    codes = Counter(c for r in releases for c in r.countries)
    assert codes.most_common(1)[0][0] == "TH"
    assert sum(codes[c] for c in ("CH", "US", "GB")) < 0.05 * sum(codes.values())
    years = {r.published.year for r in releases}
    assert min(years) == 2004 and max(years) >= 2023
    assert 0.05 < sum(r.updated is not None for r in releases) / len(releases) < 0.25
    assert 0.1 < sum(r.dateline is not None for r in releases) / len(releases) < 0.6
    assert any(r.body for r in releases) and any(r.url for r in releases)
    assert len({r.title for r in releases}) > 900
