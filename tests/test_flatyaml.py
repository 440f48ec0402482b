"""A flat release file read without PyYAML gives what PyYAML gives, problems included."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from feedsvc import dataset, flatyaml, loader
from feedsvc.assemble import problems_of
from feedsvc.synth import write_archive
from feedsvc.yamlsource import DatasetLoader, LocatedMap, find_files

LIMIT = 1 << 20


def by_pyyaml(raw: bytes) -> Any:
    return yaml.load(raw.decode("utf-8-sig"), Loader=DatasetLoader)


def assert_same_mapping(flat: LocatedMap, generic: Any) -> None:
    assert isinstance(generic, LocatedMap)
    assert flat == generic
    assert [type(v) for v in flat.values()] == [type(v) for v in generic.values()]
    assert (flat.line, flat.key_lines, flat.duplicates) == \
        (generic.line, generic.key_lines, generic.duplicates)


def test_every_release_file_synth_writes_is_flat_and_read_the_same(tmp_path: Path) -> None:
    root = write_archive(300, tmp_path / "data", split=True)
    names = [n for n in find_files(root) if "/releases/" in n]
    assert len(names) == 300
    for name in names:
        raw = Path(name).read_bytes()
        flat = flatyaml.flat_document(raw)
        assert flat is not None, name
        assert_same_mapping(flat, by_pyyaml(raw))


def test_the_bundled_yaml_is_not_flat_and_goes_to_pyyaml() -> None:
    release = Path(__file__).resolve().parent.parent / "data" / "releases" / "pr-2004-001.yaml"
    assert flatyaml.flat_document(release.read_bytes()) is None


def test_problems_of_a_flat_file_are_those_pyyaml_would_give(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_archive(20, tmp_path / "data", split=True)
    releases = sorted((root / "releases").iterdir())
    first = releases[0].read_text()
    releases[0].write_text(first.replace('published: "', 'published: "2005-02-30', 1)
                           + 'id: "pr-again"\nlanguage: "English!"\n')
    releases[1].write_text(releases[1].read_text().replace('topics: [', 'topics: ["no-such", '))
    flat = problems_of(loader.load(root, LIMIT))
    monkeypatch.setattr(dataset, "flat_document", lambda raw: None)
    generic = problems_of(loader.load(root, LIMIT))
    assert flat == generic
    assert {p.field for p in flat} >= {"published", "language", "topics"}
    assert all(p.line is not None and p.release for p in flat)


KEYS = st.sampled_from(["id", "title", "summary", "topics", "null", "true", "false", "True",
                        "no", "on", "a_b", "x" * 70, "Id"])
# Characters YAML treats apart (line breaks, BOM, controls), quotes and backslashes.
CHARS = st.sampled_from(list("aé中 \"\\'#:-[],{}&*!|>%@`") + ["\n", "\t", "\r", "\x85", "\u2028",
                                                              "\ufeff", "\x01", "\x7f", "😀"])
TEXTS = st.lists(CHARS, max_size=12).map("".join)


def _value(text: str, style: int) -> str:
    if style == 0:
        return json.dumps(text, ensure_ascii=False)
    if style == 1:
        return json.dumps(text)  # \uXXXX escapes: left to PyYAML
    return "[" + ", ".join(json.dumps(part, ensure_ascii=False) for part in text.split(":")) + "]"


LINES = st.lists(st.tuples(KEYS, TEXTS, st.integers(0, 2)), min_size=1, max_size=6)


@given(LINES, st.sampled_from(["\n", "\r\n", "\n\n"]), st.booleans(), st.booleans())
@example([("id", "a\\b\"c\nd\te", 0), ("id", "x", 2)], "\n", True, False)  # escapes, repeats
@example([("null", "x", 0)], "\n", True, False)
@example([("title", "a\u2028b", 0)], "\n", True, False)
@example([("title", "a\x85b", 0)], "\n", True, False)  # NEL: a line break, folded to a space
@example([("title", "a\x7fb", 0)], "\n", True, False)  # refused by the YAML reader
def test_a_flat_file_is_read_as_pyyaml_reads_it(lines: list[tuple[str, str, int]], newline: str,
                                                 last_newline: bool, bom: bool) -> None:
    text = newline.join(f"{key}: {_value(value, style)}" for key, value, style in lines)
    raw = ("\ufeff" if bom else "").encode() + (text + (newline if last_newline else "")).encode()
    flat = flatyaml.flat_document(raw)
    if flat is not None:  # whatever the fast path reads, PyYAML reads the same way
        assert_same_mapping(flat, by_pyyaml(raw))
