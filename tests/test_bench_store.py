"""The store's benches run against the current schema (a column added to `releases` broke
one once): each, on a tiny archive, prints its table (the figures themselves are not checked:
the machine is shared)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .servers import ROOT


def table_rows(tmp_path: Path, *argv: str) -> list[list[str]]:
    """Run a bench script; return the cells of every row of the tables it printed."""
    env = dict(os.environ, FEEDSVC_BENCH_DIR=str(tmp_path / "archives"))
    done = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, check=True, text=True,
                          capture_output=True, timeout=600)
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in done.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("|---")]


@pytest.mark.parametrize("script", ["bench/store_queries.py", "bench/store_ingest.py"])
def test_the_store_benches_run(tmp_path: Path, script: str) -> None:
    argv = ["--releases", "200"] + (["--runs", "1"] if script.endswith("queries.py") else [])
    assert len(table_rows(tmp_path, script, *argv)) > 2
