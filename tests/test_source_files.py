"""Which files make up a dataset, in which order, and under which names (what the version hashes)."""
from __future__ import annotations

import shutil
from pathlib import Path

from feedsvc.dataset import load_dataset, read_files
from feedsvc.yamlsource import content_hash


def test_files_come_in_path_order_by_parts(dataset_dir: Path) -> None:
    releases = dataset_dir / "releases"
    (releases / "a").mkdir()
    shutil.move(releases / "pr-2005-001.yaml", releases / "a" / "pr-2005-001.yml")
    shutil.move(releases / "pr-2005-002.yaml", releases / "a-c.yaml")
    (releases / "notes.txt").write_text("not: [valid")
    names = [str(Path(name).relative_to(dataset_dir)) for name, _ in read_files(dataset_dir)]
    # By parts, "a/..." sorts before "a-c.yaml" (as a string, "-" would sort before "/").
    assert names[:2] == ["releases/a/pr-2005-001.yml", "releases/a-c.yaml"]
    assert names[-2:] == ["site.yaml", "topics.yaml"]
    assert len(load_dataset(dataset_dir).releases) == 10


def test_a_folder_reached_twice_through_links_is_read_once_from_its_first_path(
        dataset_dir: Path) -> None:
    (dataset_dir / "again").symlink_to("releases")
    (dataset_dir / "zzz").symlink_to("releases")
    names = [str(Path(name).relative_to(dataset_dir)) for name, _ in read_files(dataset_dir)]
    assert len(names) == 12 and names[0] == "again/pr-2004-001.yaml"
    assert not any(name.startswith(("releases/", "zzz/")) for name in names)


def test_names_and_version_do_not_depend_on_how_the_path_is_written(dataset_dir: Path) -> None:
    versions = {content_hash(read_files(path), path) for path in (dataset_dir, Path(f"{dataset_dir}/"))}
    assert len(versions) == 1
    assert read_files(dataset_dir)[0][0] == f"{dataset_dir}/releases/pr-2004-001.yaml"
    single = dataset_dir / "releases" / "pr-2004-001.yaml"
    assert [name for name, _ in read_files(single)] == [str(single)]


def test_the_version_does_not_depend_on_where_the_data_lives(dataset_dir: Path,
                                                              tmp_path: Path) -> None:
    elsewhere = shutil.copytree(dataset_dir, tmp_path / "another" / "place")
    assert load_dataset(elsewhere).version == load_dataset(dataset_dir).version
    (Path(elsewhere) / "releases" / "pr-2004-001.yaml").rename(
        Path(elsewhere) / "releases" / "renamed.yaml")
    assert load_dataset(elsewhere).version != load_dataset(dataset_dir).version
