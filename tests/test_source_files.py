"""Which files make up a dataset, in which order, and under which names (what the version hashes)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from feedsvc.dataset import load_dataset
from feedsvc.dataset.loader import raw_files
from feedsvc.dataset.yamlsource import DEFAULT_MAX_FILE_BYTES as LIMIT
from feedsvc.dataset.yamlsource import DatasetLoader, LocatedMap, read_source

RELEASE_TEXT = (Path(__file__).resolve().parent.parent / "data" / "releases"
                / "pr-2004-001.yaml").read_text()


def test_files_come_in_path_order_by_parts(dataset_dir: Path) -> None:
    releases = dataset_dir / "releases"
    (releases / "a").mkdir()
    shutil.move(releases / "pr-2005-001.yaml", releases / "a" / "pr-2005-001.yml")
    shutil.move(releases / "pr-2005-002.yaml", releases / "a-c.yaml")
    (releases / "notes.txt").write_text("not: [valid")
    names = [str(Path(name).relative_to(dataset_dir)) for name, _ in raw_files(dataset_dir, LIMIT)]
    # By parts, "a/..." sorts before "a-c.yaml" (as a string, "-" would sort before "/").
    assert names[:2] == ["releases/a/pr-2005-001.yml", "releases/a-c.yaml"]
    assert names[-2:] == ["site.yaml", "topics.yaml"]
    assert len(load_dataset(dataset_dir).releases) == 10


def test_a_folder_reached_twice_through_links_is_read_once_from_its_first_path(
        dataset_dir: Path) -> None:
    (dataset_dir / "again").symlink_to("releases")
    (dataset_dir / "zzz").symlink_to("releases")
    names = [str(Path(name).relative_to(dataset_dir)) for name, _ in raw_files(dataset_dir, LIMIT)]
    assert len(names) == 12 and names[0] == "again/pr-2004-001.yaml"
    assert not any(name.startswith(("releases/", "zzz/")) for name in names)


def test_names_and_version_do_not_depend_on_how_the_path_is_written(dataset_dir: Path) -> None:
    versions = {load_dataset(path).version for path in (dataset_dir, Path(f"{dataset_dir}/"))}
    assert len(versions) == 1
    assert raw_files(dataset_dir, LIMIT)[0][0] == f"{dataset_dir}/releases/pr-2004-001.yaml"
    single = dataset_dir / "releases" / "pr-2004-001.yaml"
    assert [name for name, _ in raw_files(single, LIMIT)] == [str(single)]


def test_the_version_does_not_depend_on_where_the_data_lives(dataset_dir: Path,
                                                              tmp_path: Path) -> None:
    elsewhere = shutil.copytree(dataset_dir, tmp_path / "another" / "place")
    assert load_dataset(elsewhere).version == load_dataset(dataset_dir).version
    (Path(elsewhere) / "releases" / "pr-2004-001.yaml").rename(
        Path(elsewhere) / "releases" / "renamed.yaml")
    assert load_dataset(elsewhere).version != load_dataset(dataset_dir).version


class GenericLoader(DatasetLoader):
    """The dataset loader with PyYAML's own construction, which the fast path must match."""

    get_single_data = yaml.constructor.BaseConstructor.get_single_data


def built(text: str, loader: type[DatasetLoader]) -> object:
    """Return a document as built, with every mapping's lines; or the problem it raised."""
    def plain(value: object) -> object:
        if isinstance(value, LocatedMap):
            return ("map", value.line, value.key_lines, value.duplicates,
                    {key: plain(item) for key, item in value.items()})
        if isinstance(value, list):
            return [plain(item) for item in value]
        return (type(value).__name__, value)
    try:
        return plain(yaml.load(text, Loader=loader))
    except yaml.MarkedYAMLError as error:
        return ("error", str(error))


@pytest.mark.parametrize("text", [
    RELEASE_TEXT,
    "site: {title: T, link: 'https://x.example/'}\ntopics:\n  - {slug: a, label: A}\n",
    "- {id: a, n: 1}\n- [x, 2.5, true, ~, NO, 2004-10-01]\n- !!set {a, b}\n",
    "a: 1\na: 2\n2004: year\ntrue: yes\n~: none\n[x]: odd\n",
    "a: !!binary aGVsbG8=\nb: !!str 12\nc: !!int '7'\nd: !!omap [x: 1]\n",
    "",
    "just text",
    "a: &x [1]\nb: *x\n",
    "- &x {a: 1}\n- *x\n",
    "a: &x {b: *x}\n",
    "a: !!set {? &y k}\nb: *y\n",
    "a: " + "[" * 40 + "]" * 40 + "\n",
    "a: " + "{b: " * 40 + "x" + "}" * 40 + "\n",
    "a: !!map [x, y]\n",
    "a: !!seq {x: 1}\n",
    "!!map [[x, y]]\n",
])
def test_the_fast_construction_builds_what_pyyaml_builds(text: str) -> None:
    assert built(text, DatasetLoader) == built(text, GenericLoader)


class ResolvingLoader(DatasetLoader):
    """The dataset loader with PyYAML's own tag resolution, which its one lookup must match."""

    resolve = yaml.resolver.BaseResolver.resolve
    descend_resolver = yaml.resolver.BaseResolver.descend_resolver
    ascend_resolver = yaml.resolver.BaseResolver.ascend_resolver


SCALARS = ["", "x", "NO", "no", "yes", "Yes", "on", "off", "y", "true", "True", "TRUE", "false",
           "FALSE", "~", "null", "Null", "NULL", "0", "-1", "+1", "0x1F", "0o17", "017", "0b101",
           "1_000", "190:20:30", "1.5", "-.5", "1e3", "1.0e+3", ".inf", "-.Inf", ".NaN", "<<",
           "=", "2004-10-18", "2004-10-18T10:00:00+07:00", "TH", "pr-2004-001", "a b", "é"]


@pytest.mark.parametrize("quote", ["", "'", '"'])
def test_tags_are_resolved_as_pyyaml_resolves_them(quote: str) -> None:
    text = "".join(f"k{n}: {quote}{value}{quote}\n" for n, value in enumerate(SCALARS))
    text += "list: [" + ", ".join(f"{quote}{value}{quote}" for value in SCALARS if value) + "]\n"
    assert built(text, DatasetLoader) == built(text, ResolvingLoader)


def test_lists_nested_at_the_top_are_refused_past_the_limit_too() -> None:
    # PyYAML's own construction builds the items of a list at the top after the list, so
    # its count of levels started again there: the fast path counts every level.
    text = "- " * 40 + "x\n"
    assert built(text, DatasetLoader) == (
        "error", 'nested more than 32 levels deep\n  in "<unicode string>", line 1, column 67')
    assert built("- " * 30 + "x\n", DatasetLoader) == built("- " * 30 + "x\n", GenericLoader)


@pytest.mark.parametrize("limit", [LIMIT, 100_000])
def test_a_file_grown_after_its_stat_is_read_to_its_end_within_the_limit(
        tmp_path: Path, limit: int) -> None:
    path = tmp_path / "growing.yaml"
    path.write_bytes(b"a: 1\n")
    fd = os.open(path, os.O_RDONLY)
    status = os.fstat(fd)  # the stat a look takes before reading
    with path.open("ab") as out:  # then the writer goes on, past one read of 64 KiB
        out.write(b"b: 2\n" * 30_000)
    raw, problem = read_source(str(path), "growing.yaml", limit, (fd, status))
    if limit == LIMIT:
        assert (raw, problem) == (path.read_bytes(), None)
    else:
        assert raw is None and problem is not None
        assert problem.message.startswith("larger than 100000 bytes")
    with pytest.raises(OSError):  # the descriptor given is closed
        os.fstat(fd)
