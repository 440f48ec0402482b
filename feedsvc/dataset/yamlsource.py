"""Read YAML dataset files safely, keeping the line of every mapping and key."""
from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .problems import Problem

# The C loader parses ~6x faster; the pure-Python one is the fallback.
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SUFFIXES = (".yaml", ".yml")
# A release nests four levels deep (bundle, list, release, list); deeper is not a dataset.
MAX_DEPTH = 32
DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024


class LocatedMap(dict[str, Any]):
    """A YAML mapping that remembers its own line and the line of each key."""

    line: int
    key_lines: dict[str, int]
    duplicates: list[tuple[str, int]]


class DatasetLoader(_Base):  # type: ignore[misc]
    """A safe loader that resolves YAML 1.2-style: dates stay text, only true/false are booleans.

    Dates are parsed by the validator so that an impossible date is a precise problem,
    not a loader crash; `NO` (Norway) stays a country code, not `False`.

    Aliases (`*name`) are refused, and so YAML 1.1 merge keys (`<<: *name`) are not
    supported: one alias of a list of aliases is enough for a "billion laughs" bomb that
    costs memory and time exponential in the file's size (a validator printing such a
    value, or merging such mappings, would expand it), and a newsroom dataset has no use
    for them. Nesting deeper than MAX_DEPTH is refused before Python's recursion limit.
    """

    yaml_implicit_resolvers: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {}
    _depth = 0
    # Set by PyYAML's BaseConstructor: what is built, or being built, and what is left to do.
    constructed_objects: dict[yaml.Node, Any]
    recursive_objects: dict[yaml.Node, None]
    state_generators: list[Iterator[Any]]

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if node in self.constructed_objects or node in self.recursive_objects:
            raise yaml.constructor.ConstructorError(
                None, None, "this value is used again by an alias (*name): aliases are not "
                "allowed, write the value out in full", node.start_mark)
        if self._depth >= MAX_DEPTH:
            raise yaml.constructor.ConstructorError(
                None, None, f"nested more than {MAX_DEPTH} levels deep", node.start_mark)
        self._depth += 1
        try:
            return super().construct_object(node, deep)
        finally:
            self._depth -= 1

    def get_single_data(self) -> Any:
        """Construct the one document, its strings, lists and mappings by the fast path.

        PyYAML's generic constructor spends most of a release file's parse dispatching
        on tags; the strings, lists and mappings a dataset is made of are built here
        directly, with the same checks (an alias, nesting past MAX_DEPTH: see _build); any
        other node (a number, a boolean, an explicit tag) goes the generic way.
        """
        node = self.get_single_node()
        if node is None:
            return None
        try:
            data = self._build(node, -1, False)
            while self.state_generators:  # left by generic nodes, as construct_document does
                generators, self.state_generators = self.state_generators, []
                for generator in generators:
                    for _ in generator:
                        pass
        finally:
            self.constructed_objects, self.recursive_objects = {}, {}
            self.deep_construct, self._depth = False, 0
        return data

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        """Return a node's tag, as PyYAML's Resolver does without path resolvers (none is
        ever added here): asked for every node by the C parser, so kept to one lookup."""
        if kind is yaml.ScalarNode:
            if implicit[0]:
                for tag, regexp in _IMPLICIT.get(value[:1], ()):
                    if regexp.match(value):
                        return tag
            return _STR
        return _SEQ if kind is yaml.SequenceNode else _MAP

    def descend_resolver(self, current_node: yaml.Node | None, current_index: Any) -> None:
        """Nothing to track: there are no path resolvers (see resolve)."""

    def ascend_resolver(self) -> None:
        """Nothing to track: there are no path resolvers (see resolve)."""

    def _build(self, node: yaml.Node, depth: int, deep: bool) -> Any:
        """Construct `node`, `depth` levels below the document (counted as the generic
        constructor counts them below the top: it builds the document's own children
        after it, at its level, so its count is one less from there)."""
        tag = node.tag
        if node in self.constructed_objects or depth >= MAX_DEPTH:
            self._depth = depth
            self.construct_object(node)  # raises the alias or the depth problem
        if tag == _STR and type(node) is yaml.ScalarNode:
            self.constructed_objects[node] = node.value
            return node.value
        if _KINDS.get(tag) is not type(node):  # another tag, or "!!map [a]": the generic way
            self._depth, self.deep_construct = max(depth, 0), deep
            return self.construct_object(node, deep=deep)
        below = depth + 1
        if tag == _SEQ:
            items: list[Any] = []
            self.constructed_objects[node] = items
            items += [self._build(item, below, deep) for item in node.value]
            return items
        data = self.constructed_objects[node] = LocatedMap()
        _fill_map(data, node, lambda child: self._build(child, below, True))
        return data


_STR, _SEQ, _MAP = (f"tag:yaml.org,2002:{kind}" for kind in ("str", "seq", "map"))
_KINDS = {_SEQ: yaml.SequenceNode, _MAP: yaml.MappingNode}


for _first, _resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items():
    DatasetLoader.yaml_implicit_resolvers[_first] = [
        (tag, rx) for tag, rx in _resolvers
        if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool",
                       "tag:yaml.org,2002:merge")
    ]
DatasetLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
assert not DatasetLoader.yaml_path_resolvers and None not in DatasetLoader.yaml_implicit_resolvers, \
    "DatasetLoader.resolve ignores path resolvers, and resolvers for any first character"
# The implicit resolvers a plain scalar is tried against, by its first character ("" for an
# empty one).
_IMPLICIT = DatasetLoader.yaml_implicit_resolvers


def _fill_map(data: LocatedMap, node: yaml.Node,
              construct: Callable[[yaml.Node], Any]) -> None:
    """Put the node's pairs into `data`, keeping its line, each key's line and every repeated key."""
    data.line, data.key_lines, data.duplicates = node.start_mark.line + 1, {}, []
    for key_node, value_node in node.value:
        key = str(construct(key_node))  # `2004: year`, `true: yes`: a text key
        line = key_node.start_mark.line + 1
        if key in data.key_lines:
            data.duplicates.append((key, line))
        else:
            data.key_lines[key] = line
        data[key] = construct(value_node)


def _construct_map(loader: Any, node: yaml.Node) -> Iterator[dict[str, Any]]:
    if not isinstance(node, yaml.MappingNode):  # "!!map [a]": PyYAML's own error is raised
        yield from loader.construct_yaml_map(node)
        return
    data = LocatedMap()
    yield data
    _fill_map(data, node, lambda child: loader.construct_object(child, deep=True))


DatasetLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One YAML file of the dataset: its name as reported, and its parsed document."""

    name: str
    document: Any


def find_files(root: Path, links: list[str] | None = None, ordered: bool = True) -> list[str]:
    """Return the paths of the dataset's YAML files: the file itself, or every one below a folder.

    Hidden files and directories are skipped (editor swap files, a Kubernetes ConfigMap's
    `..data` payload); symbolic links are followed, as a mounted ConfigMap needs, once each.
    Files come in path order (by parts), as plain strings: building and sorting pathlib
    objects cost ~2 s of CPU at 100,000 files, on every start and every reload check.
    With `links`, every folder reached through a symbolic link is added to it; with
    ordered=False the same names come in the order the folders were walked (cheaper).
    """
    if not root.is_dir():
        return [str(root)]
    top = str(root)
    walked: list[str] = []
    seen: set[str] = set()
    for folder, dirs, files in os.walk(top, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link loop, or a directory reached twice through links
            dirs.clear()
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # which link wins: stable
        if links is not None:
            links += [os.path.join(folder, d) for d in dirs if os.path.islink(os.path.join(folder, d))]
        prefix = folder if folder.endswith(os.sep) else folder + os.sep  # os.path.join's
        walked += [prefix + f for f in files if f.endswith(SUFFIXES) and not f.startswith(".")]
    if ordered:  # by parts: "\0" sorts before any character a name can hold
        walked.sort(key=lambda name: name.replace(os.sep, "\0"))
    return walked


def links_out(root: str) -> Callable[[str, bool | None], bool]:
    """Return a test: does a file found below the folder `root` resolve outside it, by a link?

    Such a file is refused: a link to /proc/self/status or /etc/... would put that file's
    content into the problem report. A Kubernetes ConfigMap's links (name -> ..data/name ->
    ..<timestamp>/name) stay inside the folder and pass. Costs an lstat per file, and a
    realpath per folder and per link.
    """
    top = os.path.realpath(root)

    def inside(real: str) -> bool:
        return real == top or real.startswith(top.rstrip(os.sep) + os.sep)

    @cache
    def folder_out(folder: str) -> bool:
        return not inside(os.path.realpath(folder))

    def test(path: str, link: bool | None = None) -> bool:
        """`link`: whether the path is a symbolic link, if the caller has just looked."""
        return folder_out(os.path.dirname(path)) or (
            (os.path.islink(path) if link is None else link)
            and not inside(os.path.realpath(path)))
    return test


def read_source(path: str, name: str, limit: int,
                opened: tuple[int, os.stat_result] | None = None
                ) -> tuple[bytes | None, Problem | None]:
    """Read one file of at most `limit` bytes; anything else becomes a problem, not a crash.
    `opened`: a descriptor the caller opened on it (closed here), and its fstat.

    A FIFO or a device named *.yaml would block or never end: the file is opened without
    blocking and checked through its descriptor (no race with a swap). A file that vanishes
    or cannot be read is reported like any other problem of the dataset. Unbuffered os calls:
    ~2x faster than pathlib over 100,000 small files, and one read a file.
    """
    try:
        if opened is None:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            opened = fd, os.fstat(fd)
    except FileNotFoundError:  # vanished, or a dangling link
        return None, Problem(name, None, None, None, "not a regular file")
    except OSError as exc:
        return None, Problem(name, None, None, None, f"cannot be read: {exc.strerror or exc}")
    fd, status = opened
    try:
        if not stat.S_ISREG(status.st_mode):
            return None, Problem(name, None, None, None, "not a regular file")
        if status.st_size > limit:
            return None, _too_large(name, limit)
        # One byte more than its size, one read: a regular file's read is short only at its
        # end, so a full one means it has grown since (or 1 GiB: Linux reads < 2 GiB a call).
        asked = min(status.st_size + 1, 1 << 30)
        raw = os.read(fd, asked)
        if len(raw) == asked:  # read on, to limit + 1 bytes at most: growing past it is seen
            raw += _read_on(fd, limit + 1 - asked)
    except OSError as exc:
        return None, Problem(name, None, None, None, f"cannot be read: {exc.strerror or exc}")
    finally:
        os.close(fd)
    return (None, _too_large(name, limit)) if len(raw) > limit else (raw, None)


def _too_large(name: str, limit: int) -> Problem:
    return Problem(name, None, None, None, f"larger than {limit} bytes (FEEDSVC_MAX_FILE_BYTES); "
                                           "split it into several files")


def _read_on(fd: int, most: int) -> bytes:
    """Read on to the end of the file, `most` bytes at most."""
    chunks: list[bytes] = []
    while most > 0 and (chunk := os.read(fd, min(most, 1 << 16))):
        chunks.append(chunk)
        most -= len(chunk)
    return b"".join(chunks)


def parse(name: str, raw: bytes) -> SourceFile | Problem:
    """Parse one file's bytes; a decoding or syntax error becomes a located problem."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        where = raw.count(b"\n", 0, exc.start) + 1
        return Problem(name, where, None, None, f"not UTF-8 text (byte {exc.start})")
    try:
        document = yaml.load(text, Loader=DatasetLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line: int | None = mark.line + 1 if mark is not None else None
        reason = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        return Problem(name, line, None, None, f"malformed YAML: {reason}")
    except yaml.YAMLError as exc:
        return Problem(name, None, None, None, f"malformed YAML: {exc}")
    except RecursionError:  # the pure-Python composer recurses before MAX_DEPTH is checked
        return Problem(name, None, None, None, "malformed YAML: nested too deeply")
    except MemoryError:
        return Problem(name, None, None, None, "too large to load in memory")
    return SourceFile(name, document)


def file_digest(raw: bytes) -> bytes:
    """Return the hash of one file's bytes (what the dataset version is made of)."""
    return hashlib.sha256(raw).digest()[:16]
