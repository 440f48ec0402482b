"""`--before TREE` of bench/startup.py and bench/publish.py: both codes measured in one run, on
a tiny archive (the figures themselves are not checked: the machine is shared)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .servers import ROOT


@pytest.fixture(scope="module")
def before_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of this checkout's code elsewhere: another tree, as a `git worktree` of main is."""
    tree = tmp_path_factory.mktemp("before") / "feedsvc-before"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("feedsvc", "deploy"):
        shutil.copytree(ROOT / name, tree / name, ignore=ignore)
    shutil.copy(ROOT / "wsgi.py", tree / "wsgi.py")
    return tree


def bench(tmp_path: Path, *argv: str) -> list[list[str]]:
    """Run a benchmark script; return the cells of every table row it wrote to --out."""
    out = tmp_path / "result.md"
    env = dict(os.environ, FEEDSVC_BENCH_DIR=str(tmp_path / "archives"))
    subprocess.run([sys.executable, *argv, "--out", str(out)], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, timeout=600)
    lines = out.read_text(encoding="utf-8").splitlines()
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines
            if line.startswith("| ") and not line.startswith("| what |")]


def test_startup_measures_both_codes_and_their_ratio(tmp_path: Path, before_tree: Path) -> None:
    rows = [row for row in bench(tmp_path, "bench/startup.py", "sample,200", "--runs", "1",
                                 "--before", str(before_tree)) if row[0] != "releases"]
    codes = ["this", "before", "this / before"]
    starts = [row[:2] for row in rows if len(row) == 15]
    assert starts == [[size, code] for size in ("sample", "200") for code in codes]
    ratios = rows[[row[:2] for row in rows].index(["200", "this / before"])]
    assert all(cell.endswith("×") for cell in ratios[2:13])
    # Restart under the shipped config, start to first feed; 200 against the sample's goal.
    restarts = {tuple(row[:2]): row for row in rows if len(row) == 5}
    assert list(restarts) == [(size, code) for size in ("sample", "200") for code in codes]
    assert float(restarts["200", "this"][2]) > 0
    assert restarts["200", "this"][4].startswith(("met", "MISSED by"))
    assert restarts["200", "this / before"][2].endswith("×")
    served = [row[:3] for row in rows if row[0] in ("1", "2")]
    # Each worker count's memory beside the floor's (a minimal Flask app, the same settings).
    assert served == [[w, "restart", code] for w in ("1", "2") for code in (*codes, "floor")]


def test_publish_measures_both_codes_and_their_ratio(tmp_path: Path, before_tree: Path) -> None:
    rows = bench(tmp_path, "bench/publish.py", "200", "2", "--idle", "1",
                 "--before", str(before_tree))
    named = {row[0]: row for row in rows}
    assert "one release deleted: served by every worker, s" in named
    for what in ("cold start, s", "restart to app ready, s",
                 "one release added: served by every worker, s"):
        _, _, this, before, ratio = named[what]
        assert float(this) > 0 and float(before) > 0, what
        assert ratio.endswith("×"), what
    # The restart is started as shipped (start check in the background): the check is timed
    # apart, and at 200 files may take under 5 ms (0.00 s).
    _, _, this, before, _ = named["restart's start check, s"]
    assert float(this) >= 0 and float(before) >= 0
    # An edit of 200 releases in the store may cost under a clock tick (0.00 CPU-s): a figure,
    # and a ratio where the code before spent any.
    _, _, this, before, ratio = named["one release edited: CPU of the process tree, s"]
    assert float(this) >= 0 and float(before) >= 0
    assert ratio.endswith("×") or (ratio == "" and float(before) == 0)


def test_a_tree_without_feedsvc_is_refused(tmp_path: Path) -> None:
    """A --before that does not run its own code would compare this code with itself."""
    empty = tmp_path / "empty"
    empty.mkdir()
    env = dict(os.environ, FEEDSVC_BENCH_DIR=str(tmp_path / "archives"))
    done = subprocess.run([sys.executable, "bench/startup.py", "200", "--runs", "1", "--before",
                           str(empty), "--out", str(tmp_path / "out.md")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 1
    assert f"{empty}: the probe ran the feedsvc of {ROOT}" in done.stderr
    assert not (tmp_path / "out.md").exists()
