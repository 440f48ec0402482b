"""A full load spread over processes gives what a load in one process gives, problems included."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from feedsvc.dataset import DatasetError, fanout, loader, snapshot
from feedsvc.dataset.assemble import assemble, build
from feedsvc.dataset.facts import _facts, facts
from feedsvc.dataset.loader import Catalog
from feedsvc.dataset.stored import StoredReleases

LIMIT = 1 << 20


@pytest.fixture(autouse=True)
def few_files_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spread even the small test dataset: one file a process is enough."""
    monkeypatch.setattr(fanout, "PER_PROCESS", 1)


def assert_same(spread: Catalog, alone: Catalog) -> None:
    assert list(spread.files) == list(alone.files)  # path order
    assert spread == alone


def readers(monkeypatch: pytest.MonkeyPatch, log: Path) -> None:
    """Note in `log` the process id of every process that reads files."""
    read_files = loader.read_files

    def noted(root: Path, names: list[str], limit: int) -> list[loader.Read]:
        with log.open("a") as out:
            out.write(f"{os.getpid()}\n")
        return read_files(root, names, limit)
    monkeypatch.setattr(loader, "read_files", noted)


@pytest.mark.parametrize("processes", [2, 3, 5])
def test_a_spread_load_equals_a_load_in_one_process(dataset_dir: Path, processes: int,
                                                    tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    alone = loader.load(dataset_dir, LIMIT)
    readers(monkeypatch, tmp_path / "readers")
    spread = fanout.load(dataset_dir, LIMIT, processes, "fork")
    pids = set((tmp_path / "readers").read_text().split())
    assert len(pids) == processes and str(os.getpid()) not in pids  # nothing read here
    assert_same(spread, alone)
    # The vocabulary (site.yaml, topics.yaml) sorts last: read by the last process, it was
    # still what every process checked its releases against.
    assert assemble(spread).releases == assemble(alone).releases
    assert len(assemble(spread).releases) == 10


def test_problems_name_the_same_file_line_release_and_field(dataset_dir: Path) -> None:
    releases = dataset_dir / "releases"
    (releases / "pr-2004-001.yaml").write_text("id: [\n")
    bad = releases / "pr-2005-002.yaml"
    bad.write_text(bad.read_text().replace("published:", "published: 2005-02-30\nold:"))
    (releases / "dangling.yaml").symlink_to(dataset_dir / "nowhere.yaml")
    alone = loader.load(dataset_dir, LIMIT)
    spread = fanout.load(dataset_dir, LIMIT, 3)
    assert_same(spread, alone)
    with pytest.raises(DatasetError) as one:
        assemble(alone)
    with pytest.raises(DatasetError) as many:
        assemble(spread)
    assert many.value.report() == one.value.report()
    report = many.value.report()
    assert "pr-2004-001.yaml" in report and "malformed YAML" in report
    assert "pr-2005-002.yaml" in report and "dangling.yaml" in report
    assert spread.linked


def test_a_vocabulary_problem_is_reported_as_in_one_process(dataset_dir: Path) -> None:
    (dataset_dir / "releases" / "more-topics.yaml").write_text(
        (dataset_dir / "topics.yaml").read_text())  # every topic defined twice
    alone, spread = loader.load(dataset_dir, LIMIT), fanout.load(dataset_dir, LIMIT, 4)
    assert_same(spread, alone)
    assert spread.problems and any("defined twice" in p.message for p in spread.problems)


def test_a_failed_process_means_a_load_in_one_process(dataset_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    parent, read_files = os.getpid(), loader.read_files

    def failing_in_a_child(root: Path, names: list[str], limit: int) -> list[loader.Read]:
        if os.getpid() != parent:
            raise RuntimeError("disk on fire")
        return read_files(root, names, limit)

    monkeypatch.setattr(loader, "read_files", failing_in_a_child)
    caplog.set_level(logging.WARNING, "feedsvc.fanout")
    spread = fanout.load(dataset_dir, LIMIT, 3, "fork")
    assert "parallel load failed (RuntimeError: disk on fire)" in caplog.text
    assert_same(spread, loader.load(dataset_dir, LIMIT))


def test_a_single_file_or_a_single_core_loads_in_one_process(dataset_dir: Path) -> None:
    topics = dataset_dir / "topics.yaml"
    assert_same(fanout.load(topics, LIMIT, 4), loader.load(topics, LIMIT))
    assert_same(fanout.load(dataset_dir, LIMIT, 1), loader.load(dataset_dir, LIMIT))


def lifecycle(dataset_dir: Path) -> None:
    """Give the bundled releases what the facts look at: updated, withdrawn, a draft."""
    releases = dataset_dir / "releases"
    for name, extra in (("pr-2004-002", "updated: 2004-12-01\n"),
                        ("pr-2004-005", "updated: 2005-01-03T10:00:00+07:00\n"),
                        ("pr-2005-001", "withdrawn: 2005-06-01\nwithdrawn_note: Issued in error.\n"),
                        ("pr-2004-007", "draft: true\n")):
        file = releases / f"{name}.yaml"
        file.write_text(file.read_text() + extra)


@pytest.mark.parametrize("processes", [2, 3])
def test_a_spread_load_is_indexed_as_one_process_indexes_it(dataset_dir: Path,
                                                            processes: int) -> None:
    """The index merged from the processes' runs is the one build_index makes, and making
    it made no release but the withdrawn one (its tombstone)."""
    lifecycle(dataset_dir)
    catalog, merged = fanout.read(dataset_dir, LIMIT, processes, "fork")
    assert merged is not None
    spread, alone = build(catalog, merged).index, build(loader.load(dataset_dir, LIMIT)).index
    assert isinstance(spread.releases, StoredReleases)
    made = [r for r in spread.releases.store.made if r is not None]
    assert [r.id for r in made] == ["pr-2005-001"]
    assert list(spread.releases) == list(alone.releases)
    assert (spread.by_id, spread.labels, spread.sort_keys) == \
        (alone.by_id, alone.labels, alone.sort_keys)
    assert (spread.by_country, spread.by_topic, spread.by_word) == \
        (alone.by_country, alone.by_topic, alone.by_word)
    assert spread.version == alone.version
    assert facts(spread) == _facts(alone)
    assert_same(catalog, loader.load(dataset_dir, LIMIT))


def test_an_id_used_in_two_runs_is_reported_as_in_one_process(dataset_dir: Path) -> None:
    releases = dataset_dir / "releases"
    (releases / "pr-2005-009.yaml").write_text((releases / "pr-2004-001.yaml").read_text())
    catalog, merged = fanout.read(dataset_dir, LIMIT, 3, "fork")
    assert merged is not None and catalog.site is not None
    with pytest.raises(DatasetError) as spread:
        build(catalog, merged)
    with pytest.raises(DatasetError) as alone:
        build(loader.load(dataset_dir, LIMIT))
    assert spread.value.report() == alone.value.report()
    assert "duplicate id" in spread.value.report()


def test_without_a_snapshot_directory_a_large_load_is_spread_too(dataset_dir: Path) -> None:
    lifecycle(dataset_dir)
    spread = snapshot.load(dataset_dir, None, LIMIT, child_over=0).index
    assert isinstance(spread.releases, StoredReleases)  # merged from the processes' runs
    assert list(spread.releases) == list(build(loader.load(dataset_dir, LIMIT)).index.releases)
