"""The Layout of docs/architecture.md matches the code: every module of feedsvc/ is listed where it is, and
nothing listed is missing."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def listed() -> set[str]:
    """Return the paths of the tree in the Layout section of docs/architecture.md (folders end in /)."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = re.search(r"^## Layout\n(.*?)(?=^## )", text, flags=re.S | re.M)
    assert section, "docs/architecture.md has a Layout section"
    block = re.search(r"^```\n(.*?)^```", section.group(1), flags=re.S | re.M)
    assert block, "the Layout shows the tree in a code block"
    paths: set[str] = set()
    parents: list[str] = []
    for line in block.group(1).splitlines():
        depth = (len(line) - len(line.lstrip(" "))) // 2
        name = line.split()[0]
        parents[depth:] = [name]
        paths.add("".join(parents))
    return paths


def docstring_only(path: Path) -> bool:
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)


def test_every_module_is_listed_where_it_is() -> None:
    modules = {path.relative_to(ROOT).as_posix() for path in (ROOT / "feedsvc").rglob("*.py")
               if "views" not in path.parts  # views/ is listed as one folder of blueprints
               and not docstring_only(path)}  # a folder's __init__.py that only says what it holds
    shown = listed()
    assert modules - shown == set(), "modules missing from the Layout"
    assert {p for p in shown if p.startswith("feedsvc/") and p.endswith(".py")} - modules == set(), \
        "the Layout lists modules that are not there"
    folders = {p for p in shown if p.endswith("/")}
    assert {"feedsvc/", "feedsvc/views/", "tests/"} <= folders
    assert all((ROOT / folder).is_dir() for folder in folders)


def test_tests_do_not_import_the_benchmarks() -> None:
    """The tests share servers with bench/ through tests/servers.py, never the other way."""
    importers = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            if any(name == "bench" or name.startswith("bench.") for name in names):
                importers.append(path.name)
    assert importers == []
